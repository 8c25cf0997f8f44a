// F1-style flash controller (STM32F103, STM32F303): PM0075, RM0316 section 4.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include "chip.hpp"
#include "clock.hpp"
#include "flash_controller.hpp"

namespace probefarm::sim {
namespace {

constexpr std::uint32_t kKeyr = 0x04;
constexpr std::uint32_t kOptkeyr = 0x08;
constexpr std::uint32_t kSr = 0x0C;
constexpr std::uint32_t kCr = 0x10;
constexpr std::uint32_t kAr = 0x14;
constexpr std::uint32_t kObr = 0x1C;
constexpr std::uint32_t kWrpr = 0x20;

constexpr std::uint32_t kBsy = 1u << 0;
constexpr std::uint32_t kPgerr = 1u << 2;
constexpr std::uint32_t kWrprterr = 1u << 4;
constexpr std::uint32_t kEop = 1u << 5;

constexpr std::uint32_t kPg = 1u << 0;
constexpr std::uint32_t kPer = 1u << 1;
constexpr std::uint32_t kMer = 1u << 2;
constexpr std::uint32_t kStrt = 1u << 6;
constexpr std::uint32_t kLock = 1u << 7;
constexpr std::uint32_t kOptwre = 1u << 9;

constexpr std::uint32_t kKey1 = 0x45670123;
constexpr std::uint32_t kKey2 = 0xCDEF89AB;

// DS5319 / DS9118 flash characteristics: tprog typ, tERASE and tME min.
constexpr Picoseconds kF103Program = 52'500 * kNanosecond;
constexpr Picoseconds kF303Program = 53'500 * kNanosecond;
constexpr Picoseconds kPageErase = 20 * kMillisecond;

class F1Rig {
 public:
  explicit F1Rig(std::string_view name)
      : chip_(*find_chip(name)),
        flash(chip_.flash_size, 0xFF),
        option_bytes(chip_.option_bytes_reset) {
    fc = make_flash_controller(FlashContext{chip_, clock, counters, flash, option_bytes,
                                            [this](std::uint32_t offset, std::uint32_t length) {
                                              changes.emplace_back(offset, length);
                                            }});
  }

  const ChipInfo& chip() const { return chip_; }
  std::uint32_t reg(std::uint32_t offset) { return fc->read(offset, 4); }
  void set(std::uint32_t offset, std::uint32_t value) { fc->write(offset, value, 4); }
  void unlock() {
    set(kKeyr, kKey1);
    set(kKeyr, kKey2);
  }
  std::uint32_t flash16(std::uint32_t offset) const {
    return flash[offset] | (std::uint32_t{flash[offset + 1]} << 8);
  }
  void page_erase(std::uint32_t offset) {
    set(kCr, kPer);
    set(kAr, chip_.flash_base + offset);
    set(kCr, kPer | kStrt);
  }
  void protect_wrp_bit(unsigned bit) {
    auto& wrp = option_bytes[8 + 2 * (bit / 8)];
    wrp = static_cast<std::uint8_t>(wrp & ~(1u << (bit % 8)));
    option_bytes[9 + 2 * (bit / 8)] = static_cast<std::uint8_t>(~wrp);
  }

 private:
  const ChipInfo& chip_;

 public:
  VirtualClock clock;
  Counters counters;
  std::vector<std::uint8_t> flash;
  std::vector<std::uint8_t> option_bytes;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> changes;
  std::unique_ptr<FlashController> fc;
};

TEST(FlashF1Test, ResetValuesFollowTheManual) {
  F1Rig rig("stm32f103c8");
  EXPECT_EQ(rig.reg(0x00), 0x30u);  // ACR: PRFTBE | PRFTBS
  EXPECT_EQ(rig.reg(kCr), kLock);
  EXPECT_EQ(rig.reg(kSr), 0u);
  EXPECT_EQ(rig.reg(kObr), 0x03FFFFFCu);  // PM0075 3.7 reset value
  EXPECT_EQ(rig.reg(kWrpr), 0xFFFFFFFFu);
}

TEST(FlashF1Test, F303ObrHoldsUserAndDataInItsOwnLayout) {
  F1Rig rig("stm32f303vc");
  EXPECT_EQ(rig.reg(kObr), 0xFFFFFF00u);  // level 0, USER/DATA0/DATA1 = 0xFF
}

TEST(FlashF1Test, KeySequenceUnlocksAndLockBitRelocks) {
  F1Rig rig("stm32f103c8");
  rig.set(kCr, kPg);
  EXPECT_EQ(rig.reg(kCr), kLock) << "CR must ignore writes while locked";
  rig.unlock();
  EXPECT_EQ(rig.reg(kCr), 0u);
  rig.set(kCr, kPg);
  EXPECT_EQ(rig.reg(kCr), kPg);
  rig.set(kCr, kLock);
  EXPECT_EQ(rig.reg(kCr) & kLock, kLock);
  rig.set(kCr, 0);
  EXPECT_EQ(rig.reg(kCr) & kLock, kLock) << "LOCK is write-1-only";
  rig.unlock();
  EXPECT_EQ(rig.reg(kCr) & kLock, 0u);
}

TEST(FlashF1Test, WrongKeyLocksUntilReset) {
  F1Rig rig("stm32f103c8");
  rig.set(kKeyr, kKey2);  // wrong order
  rig.unlock();
  EXPECT_EQ(rig.reg(kCr) & kLock, kLock);
  rig.set(kCr, kPg);
  EXPECT_EQ(rig.reg(kCr) & kPg, 0u);
  rig.fc->reset();
  rig.unlock();
  EXPECT_EQ(rig.reg(kCr), 0u);
}

TEST(FlashF1Test, KeyWriteWhileUnlockedLocksUp) {
  F1Rig rig("stm32f103c8");
  rig.unlock();
  rig.set(kKeyr, kKey1);
  EXPECT_EQ(rig.reg(kCr) & kLock, kLock);
  rig.unlock();
  EXPECT_EQ(rig.reg(kCr) & kLock, kLock);
}

TEST(FlashF1Test, ProgramHalfWordIsBusyForTprogThenEop) {
  F1Rig rig("stm32f103c8");
  rig.clock.advance(5 * kMicrosecond);
  const Picoseconds start = rig.clock.now();
  rig.unlock();
  rig.set(kCr, kPg);
  EXPECT_EQ(rig.fc->array_write(0x100, 0xBEEF, 2).status, BusStatus::ok);
  EXPECT_TRUE(rig.fc->busy());
  EXPECT_EQ(rig.reg(kSr), kBsy);
  const auto stalled = rig.fc->array_read(0x100, 2);
  EXPECT_EQ(stalled.status, BusStatus::busy);
  EXPECT_EQ(stalled.busy_until, start + kF103Program);
  const auto write_stalled = rig.fc->array_write(0x102, 0x1234, 2);
  EXPECT_EQ(write_stalled.status, BusStatus::busy);
  EXPECT_EQ(write_stalled.busy_until, start + kF103Program);

  rig.clock.advance_to(start + kF103Program - 1);
  EXPECT_EQ(rig.reg(kSr) & kBsy, kBsy);
  rig.clock.advance_to(start + kF103Program);
  EXPECT_FALSE(rig.fc->busy());
  EXPECT_EQ(rig.reg(kSr), kEop);
  const auto r = rig.fc->array_read(0x100, 2);
  EXPECT_EQ(r.status, BusStatus::ok);
  EXPECT_EQ(r.value, 0xBEEFu);
  EXPECT_EQ(rig.flash16(0x102), 0xFFFFu) << "the stalled write must not program";
  EXPECT_EQ(rig.counters.bytes_programmed, 2u);
  ASSERT_EQ(rig.changes.size(), 1u);
  EXPECT_EQ(rig.changes[0], std::make_pair(0x100u, 2u));
}

TEST(FlashF1Test, F303UsesItsOwnProgramTime) {
  F1Rig rig("stm32f303vc");
  rig.unlock();
  rig.set(kCr, kPg);
  rig.fc->array_write(0x0, 0x1111, 2);
  rig.clock.advance(kF103Program);
  EXPECT_TRUE(rig.fc->busy());
  rig.clock.advance(kF303Program - kF103Program);
  EXPECT_FALSE(rig.fc->busy());
}

TEST(FlashF1Test, EopAndErrorFlagsAreWriteOneToClear) {
  F1Rig rig("stm32f103c8");
  rig.unlock();
  rig.set(kCr, kPg);
  rig.fc->array_write(0x0, 0x1234, 2);
  rig.clock.advance(kF103Program);
  rig.fc->array_write(0x0, 0x4321, 2);  // not erased: PGERR
  EXPECT_EQ(rig.reg(kSr), kEop | kPgerr);
  rig.set(kSr, 0);
  EXPECT_EQ(rig.reg(kSr), kEop | kPgerr);
  rig.set(kSr, kPgerr);
  EXPECT_EQ(rig.reg(kSr), kEop);
  rig.fc->write(kSr, kEop, 1);  // byte access to the same lanes
  EXPECT_EQ(rig.reg(kSr), 0u);
}

TEST(FlashF1Test, ProgrammingNotErasedHalfWordSetsPgerrAndKeepsData) {
  F1Rig rig("stm32f103c8");
  rig.unlock();
  rig.set(kCr, kPg);
  rig.fc->array_write(0x20, 0x1234, 2);
  rig.clock.advance(kF103Program);
  rig.set(kSr, kEop);
  rig.fc->array_write(0x20, 0x0034, 2);  // clears bits only, still refused
  EXPECT_EQ(rig.reg(kSr), kPgerr);
  EXPECT_FALSE(rig.fc->busy());
  EXPECT_EQ(rig.flash16(0x20), 0x1234u);
  EXPECT_EQ(rig.counters.bytes_programmed, 2u);
  // PM0075 2.3.3: 0x0000 may be programmed over anything.
  rig.set(kSr, kPgerr);
  rig.fc->array_write(0x20, 0x0000, 2);
  EXPECT_EQ(rig.reg(kSr) & kPgerr, 0u);
  rig.clock.advance(kF103Program);
  EXPECT_EQ(rig.flash16(0x20), 0x0000u);
}

TEST(FlashF1Test, NonHalfWordProgramIsBusError) {
  F1Rig rig("stm32f103c8");
  rig.unlock();
  rig.set(kCr, kPg);
  EXPECT_EQ(rig.fc->array_write(0x40, 0x11223344, 4).status, BusStatus::error);
  EXPECT_EQ(rig.fc->array_write(0x40, 0x11, 1).status, BusStatus::error);
  EXPECT_EQ(rig.flash16(0x40), 0xFFFFu);
  EXPECT_FALSE(rig.fc->busy());
}

TEST(FlashF1Test, WriteWithoutPgChangesNothing) {
  F1Rig rig("stm32f103c8");
  EXPECT_EQ(rig.fc->array_write(0x40, 0x1234, 2).status, BusStatus::ok);
  rig.unlock();
  EXPECT_EQ(rig.fc->array_write(0x40, 0x1234, 2).status, BusStatus::ok);
  EXPECT_EQ(rig.flash16(0x40), 0xFFFFu);
  EXPECT_EQ(rig.reg(kSr), 0u);
  EXPECT_TRUE(rig.changes.empty());
}

TEST(FlashF1Test, PageEraseErasesOnePageAndStallsReads) {
  F1Rig rig("stm32f103c8");
  std::fill(rig.flash.begin() + 2048, rig.flash.begin() + 5120, 0x00);  // pages 2-4
  rig.unlock();
  rig.page_erase(3 * 1024 + 10);  // any address inside page 3
  EXPECT_EQ(rig.reg(kSr), kBsy);
  EXPECT_EQ(rig.reg(kCr) & kStrt, kStrt);
  EXPECT_EQ(rig.fc->array_read(0, 4).status, BusStatus::busy);
  rig.set(kAr, 0x08000000);  // blocked while BSY
  EXPECT_EQ(rig.reg(kAr), 0x08000C0Au);
  rig.clock.advance(kPageErase - 1);
  EXPECT_EQ(rig.fc->array_read(3 * 1024, 4).status, BusStatus::busy);
  rig.clock.advance(1);
  EXPECT_EQ(rig.reg(kSr), kEop);
  EXPECT_EQ(rig.reg(kCr) & kStrt, 0u);
  for (std::uint32_t i = 3 * 1024; i < 4 * 1024; ++i)
    ASSERT_EQ(rig.flash[i], 0xFF) << i;
  EXPECT_EQ(rig.flash[3 * 1024 - 1], 0x00);
  EXPECT_EQ(rig.flash[4 * 1024], 0x00);
  EXPECT_EQ(rig.counters.pages_erased, 1u);
  ASSERT_EQ(rig.changes.size(), 1u);
  EXPECT_EQ(rig.changes[0], std::make_pair(3u * 1024, 1024u));
}

TEST(FlashF1Test, MassEraseErasesEverything) {
  F1Rig rig("stm32f103c8");
  std::fill(rig.flash.begin(), rig.flash.end(), 0x5A);
  rig.unlock();
  rig.set(kCr, kMer);
  rig.set(kCr, kMer | kStrt);
  EXPECT_TRUE(rig.fc->busy());
  rig.clock.advance(kPageErase);  // tME min equals tERASE min (20 ms)
  EXPECT_FALSE(rig.fc->busy());
  for (auto b : rig.flash)
    ASSERT_EQ(b, 0xFF);
  EXPECT_EQ(rig.counters.mass_erases, 1u);
  EXPECT_EQ(rig.counters.pages_erased, 0u);
}

TEST(FlashF1Test, WriteProtectionFromOptionBytes) {
  F1Rig rig("stm32f103c8");
  rig.protect_wrp_bit(0);  // pages 0-3 on medium density
  std::fill(rig.flash.begin(), rig.flash.begin() + 8192, 0x00);
  rig.fc->reset();
  EXPECT_EQ(rig.reg(kWrpr), 0xFFFFFFFEu);
  rig.unlock();

  rig.page_erase(3 * 1024);
  EXPECT_EQ(rig.reg(kSr), kWrprterr);
  EXPECT_EQ(rig.flash[3 * 1024], 0x00);
  rig.set(kSr, kWrprterr);

  rig.set(kCr, kMer);
  rig.set(kCr, kMer | kStrt);
  EXPECT_EQ(rig.reg(kSr), kWrprterr);
  EXPECT_EQ(rig.flash[8191], 0x00);
  EXPECT_EQ(rig.counters.mass_erases, 0u);
  rig.set(kSr, kWrprterr);

  rig.page_erase(4 * 1024);  // first unprotected page
  rig.clock.advance(kPageErase);
  EXPECT_EQ(rig.reg(kSr), kEop);
  EXPECT_EQ(rig.flash[4 * 1024], 0xFF);
  rig.set(kSr, kEop);

  rig.set(kCr, kPg);
  rig.flash[0x10] = rig.flash[0x11] = 0xFF;
  rig.fc->array_write(0x10, 0xABCD, 2);
  EXPECT_EQ(rig.reg(kSr), kWrprterr);
  EXPECT_EQ(rig.flash16(0x10), 0xFFFFu);
}

TEST(FlashF1Test, F303ProtectsTwoPagesPerBitAndTheRestWithBit31) {
  F1Rig rig("stm32f303vc");
  rig.protect_wrp_bit(1);   // pages 2-3
  rig.protect_wrp_bit(31);  // pages 62-127
  rig.fc->reset();
  rig.unlock();
  struct Case {
    std::uint32_t page;
    bool is_protected;
  };
  for (auto [page, is_protected] : {Case{1, false}, Case{2, true}, Case{3, true}, Case{4, false},
                                    Case{61, false}, Case{62, true}, Case{127, true}}) {
    rig.page_erase(page * 2048);
    rig.clock.advance(kPageErase);
    EXPECT_EQ(rig.reg(kSr), is_protected ? kWrprterr : kEop) << "page " << page;
    rig.set(kSr, kWrprterr | kEop);
  }
}

TEST(FlashF1Test, OptionBytesReadBackAndMismatchSetsOpterr) {
  F1Rig rig("stm32f103c8");
  const auto r = rig.fc->option_read(0, 4);
  EXPECT_EQ(r.status, BusStatus::ok);
  EXPECT_EQ(r.value, 0x00FF5AA5u);
  EXPECT_EQ(rig.fc->option_write(0, 0, 2).status, BusStatus::error);
  EXPECT_EQ(rig.fc->option_read(16, 2).status, BusStatus::error);

  rig.option_bytes[4] = 0x12;  // DATA0 without a matching complement
  rig.fc->reset();
  EXPECT_EQ(rig.reg(kObr) & 1, 1u);
  rig.option_bytes[5] = 0xED;
  rig.fc->reset();
  EXPECT_EQ(rig.reg(kObr), 0x03FC4BFCu);  // DATA0 = 0x12 in bits 17:10
}

TEST(FlashF1Test, OptionKeysSetOptwreOnlyWhenUnlocked) {
  F1Rig rig("stm32f103c8");
  rig.set(kOptkeyr, kKey1);
  rig.set(kOptkeyr, kKey2);
  EXPECT_EQ(rig.reg(kCr) & kOptwre, 0u);
  rig.unlock();
  rig.set(kOptkeyr, kKey1);
  rig.set(kOptkeyr, kKey2);
  EXPECT_EQ(rig.reg(kCr) & kOptwre, kOptwre);
  rig.set(kCr, 0);
  EXPECT_EQ(rig.reg(kCr) & kOptwre, 0u);
}

TEST(FlashF1Test, ResetRelocksAndAbortsTheOperation) {
  F1Rig rig("stm32f103c8");
  rig.unlock();
  rig.set(kCr, kPg);
  rig.fc->array_write(0, 0x0102, 2);
  rig.fc->reset();
  EXPECT_FALSE(rig.fc->busy());
  EXPECT_EQ(rig.reg(kCr), kLock);
  EXPECT_EQ(rig.reg(kSr), 0u);
}

}  // namespace
}  // namespace probefarm::sim
