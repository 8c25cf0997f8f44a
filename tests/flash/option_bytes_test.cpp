// Option bytes (flash/option_bytes.hpp) on the simulated boards through SimDapProbe: the
// factory values, user bits, write protection per group, read protection 0 -> 1 -> 0, the
// errors a flash/erase/read meets on a protected chip, and the refusal of level 2.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/sim_dap_probe.hpp"
#include "flash/option_bytes.hpp"
#include "flash/programmer.hpp"
#include "flash/stm32_flash.hpp"
#include "flash/target.hpp"
#include "probe/error.hpp"

namespace probefarm::flash {
namespace {

using probefarm::test::SimDapProbe;
using probefarm::test::SimTarget;

constexpr std::uint32_t kFlash = 0x08000000;

// The Error `f` throws; fails the test when it throws none.
std::optional<Error> error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no probefarm::Error thrown";
  return std::nullopt;
}

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

// A board (optionally holding `preload` at the flash base), its probe and a Target.
class Bench {
 public:
  explicit Bench(const std::string& chip, std::vector<std::uint8_t> preload = {})
      : sim_(chip, preload), probe_(sim_.board()) {
    attach();
  }
  void attach() {
    target_.reset();
    target_ = std::make_unique<Target>(probe_);
  }
  sim::Board& board() { return sim_.board(); }
  Target& target() { return *target_; }
  std::vector<std::uint8_t> flash(std::uint32_t address, std::size_t n) {
    const auto f = board().flash();
    return {f.begin() + (address - kFlash), f.begin() + (address - kFlash) + n};
  }
  std::vector<std::uint8_t> option_storage() {
    const auto ob = board().option_bytes();
    return {ob.begin(), ob.end()};
  }

 private:
  SimTarget sim_;
  SimDapProbe probe_;
  std::unique_ptr<Target> target_;
};

std::vector<std::uint8_t> pattern(std::size_t n, std::uint8_t seed) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i)
    v[i] = static_cast<std::uint8_t>(seed + i * 7);
  return v;
}

Image image_of(std::uint32_t address, std::vector<std::uint8_t> bytes) {
  Image image;
  image.segments.push_back({address, std::move(bytes)});
  image.name = "test";
  return image;
}

OptionBytes set(Target& t, std::initializer_list<std::pair<const char*, const char*>> kvs) {
  OptionBytes ob = read_option_bytes(t);
  for (const auto& [k, v] : kvs)
    apply_assignment(t.chip(), ob, k, v);
  return write_option_bytes(t, ob).after;
}

TEST(OptionBytes, FactoryValuesOfEveryFamily) {
  {
    Bench b("stm32f103c8");
    const OptionBytes ob = read_option_bytes(b.target());
    EXPECT_EQ(ob.rdp, 0xA5u);  // PM0075 2.5
    EXPECT_EQ(ob.rdp_level, 0u);
    EXPECT_EQ(ob.user, 0xFFu);
    EXPECT_EQ(ob.data0, 0xFFu);
    EXPECT_EQ(ob.wrp, 0xFFFFFFFFu);
  }
  {
    Bench b("stm32f303vc");
    const OptionBytes ob = read_option_bytes(b.target());
    EXPECT_EQ(ob.rdp, 0xAAu);
    EXPECT_EQ(ob.rdp_level, 0u);
    EXPECT_EQ(ob.user, 0xFFu);
  }
  {
    Bench b("stm32f407vg");
    const OptionBytes ob = read_option_bytes(b.target());
    EXPECT_EQ(ob.rdp, 0xAAu);
    EXPECT_EQ(ob.user, 0xECu);  // RM0090 3.9.6 reset value 0x0FFFAAED
    EXPECT_EQ(ob.wrp, 0xFFFu);
    const auto fields = describe(b.target().chip(), ob);
    ASSERT_EQ(fields[1].key, "BOR_LEV");
    EXPECT_EQ(fields[1].value, 3u);
  }
  {
    Bench b("stm32f746ng");
    const OptionBytes ob = read_option_bytes(b.target());
    EXPECT_EQ(ob.user, 0xC00000FCu);  // RM0385 3.7.6 reset value 0xC0FFAAFD
    EXPECT_EQ(ob.wrp, 0xFFu);
    EXPECT_EQ(ob.optcr1, 0x00400080u);  // RM0385 3.7.7
  }
}

TEST(OptionBytes, UserBitsAreWrittenReloadedAndStored) {
  {
    Bench b("stm32f103c8");
    const OptionBytes after = set(b.target(), {{"nRST_STOP", "0"}, {"DATA0", "0x42"}});
    EXPECT_EQ(after.user, 0xFDu);
    EXPECT_EQ(after.data0, 0x42u);
    EXPECT_EQ(after.rdp_level, 0u);
    // PM0075 2.5: value and complement pairs in the option-byte area.
    const auto raw = b.option_storage();
    EXPECT_EQ(raw[0], 0xA5);
    EXPECT_EQ(raw[1], 0x5A);
    EXPECT_EQ(raw[2], 0xFD);
    EXPECT_EQ(raw[3], 0x02);
    EXPECT_EQ(raw[4], 0x42);
    EXPECT_EQ(raw[5], 0xBD);
    // A fresh attach sees the same values.
    b.attach();
    EXPECT_EQ(read_option_bytes(b.target()), after);
  }
  {
    Bench b("stm32f303vc");  // OBL_LAUNCH path
    const OptionBytes after = set(b.target(), {{"WDG_SW", "0"}, {"DATA1", "7"}});
    EXPECT_EQ(after.user, 0xFEu);
    EXPECT_EQ(after.data1, 7u);
    EXPECT_EQ(b.option_storage()[2], 0xFE);
  }
  {
    Bench b("stm32f407vg");
    const OptionBytes after = set(b.target(), {{"BOR_LEV", "1"}, {"wdg_sw", "0"}});
    EXPECT_EQ(after.user, 0xC4u);  // BOR_LEV 01 in [3:2], WDG_SW (bit 5) clear
    EXPECT_EQ(b.option_storage()[0], 0xC4);
    EXPECT_EQ(after.rdp, 0xAAu);
  }
  {
    Bench b("stm32f746ng");
    const OptionBytes after = set(b.target(), {{"IWDG_STOP", "0"}, {"BOOT_ADD0", "0x2000"}});
    EXPECT_EQ(after.user, 0x400000FCu);
    EXPECT_EQ(after.optcr1 & 0xFFFF, 0x2000u);
  }
}

TEST(OptionBytes, BadKeysAndValuesNameTheValidOnes) {
  Bench b("stm32f407vg");
  const auto before = b.option_storage();
  OptionBytes ob = read_option_bytes(b.target());
  auto e = error_of([&] { apply_assignment(b.target().chip(), ob, "IWDG_STOP", "0"); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->category(), ErrorCategory::usage);
  EXPECT_TRUE(contains(e->hint(), "BOR_LEV")) << e->hint();
  EXPECT_TRUE(contains(e->hint(), "nWRP")) << e->hint();
  EXPECT_FALSE(contains(e->hint(), "IWDG_STOP")) << "the F407 has no IWDG_STOP: " << e->hint();
  e = error_of([&] { apply_assignment(b.target().chip(), ob, "BOR_LEV", "4"); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->category(), ErrorCategory::usage);
  EXPECT_TRUE(contains(e->hint(), "0|1|2|3")) << e->hint();
  EXPECT_EQ(b.option_storage(), before);
}

TEST(OptionBytes, ReadProtectionLevel2IsRefusedWithoutConfirmation) {
  Bench b("stm32f407vg");
  const auto before = b.option_storage();
  OptionBytes ob = read_option_bytes(b.target());
  auto e = error_of([&] { apply_assignment(b.target().chip(), ob, "RDP", "2"); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->category(), ErrorCategory::usage);
  EXPECT_TRUE(contains(e->hint(), "RDP=2-permanent")) << e->hint();
  // Even a caller that bypasses the parser cannot write level 2 without the flag.
  ob.rdp = 0xCC;
  e = error_of([&] { write_option_bytes(b.target(), ob); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->category(), ErrorCategory::usage);
  EXPECT_EQ(b.option_storage(), before);
  // The F1 has no level 2 at all.
  Bench f1("stm32f103c8");
  OptionBytes ob1 = read_option_bytes(f1.target());
  e = error_of([&] { apply_assignment(f1.target().chip(), ob1, "RDP", "2-permanent"); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->category(), ErrorCategory::usage);
}

TEST(OptionBytes, ConfirmedLevel2IsWrittenAndCannotBeLeft) {
  Bench b("stm32f407vg");
  Target& t = b.target();
  OptionBytes ob = read_option_bytes(t);
  apply_assignment(t.chip(), ob, "RDP", "2-permanent");
  EXPECT_EQ(ob.rdp, 0xCCu);
  OptionWriteOptions confirmed;
  confirmed.allow_permanent_level2 = true;
  EXPECT_EQ(write_option_bytes(t, ob, confirmed).after.rdp_level, 2u);
  auto e = error_of([&] { unlock_read_protection(t); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->category(), ErrorCategory::protection);
  EXPECT_TRUE(contains(e->message(), "level 2")) << e->message();
  OptionBytes other = read_option_bytes(t);
  other.user &= ~0x80u;
  e = error_of([&] { write_option_bytes(t, other, confirmed); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->category(), ErrorCategory::protection);
  EXPECT_EQ(b.option_storage()[1], 0xCC);
}

TEST(OptionBytes, ProtectionGroupsAndAlignment) {
  const ChipInfo f1 = chip_from_ids(0x20036410, 64);  // STM32F103 medium density, 64 KiB
  const auto groups = protection_groups(f1);
  ASSERT_EQ(groups.size(), 16u);  // 64 pages, 4 per WRPR bit
  EXPECT_EQ(groups[1].address, 0x08001000u);
  EXPECT_EQ(groups[1].size, 4096u);
  EXPECT_EQ(groups_in_range(f1, 0x08001000, 8192).size(), 2u);
  auto e = error_of([&] { groups_in_range(f1, 0x08001400, 1024); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->category(), ErrorCategory::usage);
  EXPECT_TRUE(contains(e->hint(), "0x08001000 4K")) << e->hint();
  const ChipInfo f4 = chip_from_ids(0x10076413, 1024);
  e = error_of([&] { groups_in_range(f4, 0x0800C000, 0x8000); });
  ASSERT_TRUE(e);
  EXPECT_TRUE(contains(e->hint(), "0x0800C000 80K")) << e->hint();
  EXPECT_EQ(groups_in_range(f4, 0, 0).size(), 12u);
}

TEST(OptionBytes, WriteProtectedSectorRefusesFlashingAndNamesTheFix) {
  // F407: sector 3 (0x0800C000, 16 KiB).
  Bench b("stm32f407vg");
  Target& t = b.target();
  OptionBytes ob = read_option_bytes(t);
  for (const auto& g : groups_in_range(t.chip(), 0x0800C000, 16 * 1024))
    set_group_protected(t.chip(), ob, g, true);
  const OptionBytes after = write_option_bytes(t, ob).after;
  EXPECT_EQ(after.wrp, 0xFF7u);
  EXPECT_TRUE(write_protected_sectors(t.chip(), after)[3]);
  EXPECT_FALSE(write_protected_sectors(t.chip(), after)[2]);
  EXPECT_TRUE(Stm32Flash(t.memory(), t.chip()).protection().write_protected[3]);

  const auto before = b.flash(0x0800C000, 64);
  {
    Programmer p(t);
    auto e = error_of([&] { p.flash(image_of(0x0800BF00, pattern(512, 3)), FlashOptions{}); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->category(), ErrorCategory::protection);
    EXPECT_TRUE(contains(e->message(), "sector 3 at 0x0800C000 is write-protected (WRP)"))
        << e->message();
    EXPECT_TRUE(contains(e->hint(), "probefarm protect --clear 0x0800C000 16K")) << e->hint();
  }
  EXPECT_EQ(b.flash(0x0800C000, 64), before);
  EXPECT_EQ(b.flash(0x0800BF00, 4), std::vector<std::uint8_t>(4, 0xFF)) << "sector 2 changed";

  // Clearing it lets the same image through.
  for (const auto& g : groups_in_range(t.chip(), 0, 0))
    set_group_protected(t.chip(), ob, g, false);
  EXPECT_EQ(write_option_bytes(t, ob).after.wrp, 0xFFFu);
  Programmer p(t);
  p.flash(image_of(0x0800BF00, pattern(512, 3)), FlashOptions{});
  EXPECT_EQ(b.flash(0x0800BF00, 512), pattern(512, 3));
}

TEST(OptionBytes, WriteProtectedPageGroupOnF1RefusesErase) {
  Bench b("stm32f103c8", pattern(8192, 9));
  Target& t = b.target();
  OptionBytes ob = read_option_bytes(t);
  apply_assignment(t.chip(), ob, "WRP", "0xFFFFFFFD");  // group 1: pages 4-7
  const OptionBytes after = write_option_bytes(t, ob).after;
  EXPECT_EQ(after.wrp, 0xFFFFFFFDu);
  EXPECT_EQ(b.option_storage()[8], 0xFD);
  EXPECT_EQ(b.option_storage()[9], 0x02);
  Programmer p(t);
  auto e = error_of([&] { p.erase(0x08001400, 1024); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->category(), ErrorCategory::protection);
  EXPECT_TRUE(contains(e->message(), "page 5 at 0x08001400 is write-protected (WRP)"))
      << e->message();
  EXPECT_TRUE(contains(e->hint(), "protect --clear 0x08001000 4K")) << e->hint();
  const auto preload = pattern(8192, 9);
  EXPECT_EQ(b.flash(0x08001000, 4096),
            std::vector<std::uint8_t>(preload.begin() + 4096, preload.end()))
      << "flash changed";
  // An unprotected page next to it still erases.
  p.erase(0x08000C00, 1024);
  EXPECT_EQ(b.flash(0x08000C00, 1024), std::vector<std::uint8_t>(1024, 0xFF));
}

// RDP 0 -> 1 -> 0 with the demo-sized content in flash: level 1 keeps the chip attachable
// and shuts the flash, unlock mass-erases it and restores the option bytes.
void read_protection_round_trip(const std::string& chip) {
  SCOPED_TRACE(chip);
  Bench b(chip, pattern(4096, 1));
  const OptionBytes defaults = read_option_bytes(b.target());
  {
    OptionBytes ob = defaults;
    apply_assignment(b.target().chip(), ob, "RDP", "1");
    const OptionBytes after = write_option_bytes(b.target(), ob).after;
    EXPECT_EQ(after.rdp_level, 1u);
  }
  // A new session still attaches (info works) and sees level 1.
  b.attach();
  Target& t = b.target();
  EXPECT_EQ(read_option_bytes(t).rdp_level, 1u);
  Stm32Flash driver(t.memory(), t.chip());
  EXPECT_EQ(driver.protection().rdp_level, 1u);
  auto e = error_of([&] { driver.check_readable(kFlash, 16); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->category(), ErrorCategory::protection);
  EXPECT_TRUE(contains(e->message(), "read protection level 1")) << e->message();
  EXPECT_TRUE(contains(e->hint(), "probefarm unlock --yes")) << e->hint();
  {
    Programmer p(t);
    e = error_of([&] { p.flash(image_of(kFlash, pattern(1024, 5)), FlashOptions{}); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->category(), ErrorCategory::protection);
    EXPECT_TRUE(contains(e->message(), "flash cannot be read or written over SWD")) << e->message();
    EXPECT_TRUE(contains(e->hint(), "probefarm unlock --yes")) << e->hint();
  }
  EXPECT_EQ(b.flash(kFlash, 4096), pattern(4096, 1)) << "a refused flash changed the chip";
  // The silicon itself refuses the debugger's reads of the flash.
  EXPECT_THROW(t.memory().read32(kFlash), Error);
  t.dap().invalidate();
  // RDP=0 through the option bytes is refused: it would erase without saying so.
  {
    OptionBytes ob = read_option_bytes(t);
    e = error_of([&] { apply_assignment(t.chip(), ob, "RDP", "0"); });
    ASSERT_TRUE(e);
    EXPECT_TRUE(contains(e->hint(), "unlock --yes")) << e->hint();
  }

  unsigned reports = 0;
  const UnlockReport rep =
      unlock_read_protection(t, [&](std::uint32_t, std::uint32_t) { ++reports; });
  EXPECT_TRUE(rep.changed);
  EXPECT_EQ(rep.level_before, 1u);
  EXPECT_TRUE(rep.flash_readable);
  EXPECT_TRUE(rep.flash_blank);
  EXPECT_GT(reports, 0u);
  EXPECT_EQ(b.flash(kFlash, 4096), std::vector<std::uint8_t>(4096, 0xFF));
  EXPECT_EQ(read_option_bytes(t), defaults);
  EXPECT_EQ(t.memory().read32(kFlash), 0xFFFFFFFFu);
  // Flashing works again.
  Programmer p(t);
  p.flash(image_of(kFlash, pattern(1024, 5)), FlashOptions{});
  EXPECT_EQ(b.flash(kFlash, 1024), pattern(1024, 5));
  // A second unlock changes nothing.
  const UnlockReport again = unlock_read_protection(t);
  EXPECT_FALSE(again.changed);
  EXPECT_EQ(b.flash(kFlash, 1024), pattern(1024, 5));
}

TEST(OptionBytes, ReadProtectionRoundTripF103) {
  read_protection_round_trip("stm32f103c8");
}
TEST(OptionBytes, ReadProtectionRoundTripF303) {
  read_protection_round_trip("stm32f303vc");
}
TEST(OptionBytes, ReadProtectionRoundTripF407) {
  read_protection_round_trip("stm32f407vg");
}

}  // namespace
}  // namespace probefarm::flash
