// The programming pipeline (flash/programmer.hpp, flash/target.hpp) on the simulated boards
// through SimDapProbe: the demo firmware is flashed, verified, skipped when unchanged,
// kept around, read, erased, corrupted and found out, and finally run.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/sim_dap_probe.hpp"
#include "flash/loader.hpp"
#include "flash/loader_session.hpp"
#include "flash/programmer.hpp"
#include "flash/stm32_flash.hpp"
#include "flash/target.hpp"
#include "image_test_util.hpp"
#include "probe/error.hpp"
#include "protocol/cortex_m.hpp"

namespace probefarm::flash {
namespace {

using probefarm::test::SimDapProbe;
using probefarm::test::SimTarget;
using testing::expect_error;

constexpr std::uint32_t kFlash = 0x08000000;
constexpr std::uint32_t kDemoCounter = 0x20002000;  // firmware/demo/demo.h

Image demo_image(const std::string& chip) {
  return load_image_file(std::string(PROBEFARM_FIRMWARE_DIR) + "/demo_" + chip + ".elf");
}

// The demo's bytes as a flat vector from the flash base (the ELF has one flash segment).
std::vector<std::uint8_t> flat(const Image& image) {
  std::vector<std::uint8_t> out;
  for (const Segment& s : image.segments) {
    if (s.address < kFlash) continue;
    out.resize(std::max<std::size_t>(out.size(), s.address - kFlash + s.data.size()), 0xFF);
    std::copy(s.data.begin(), s.data.end(), out.begin() + (s.address - kFlash));
  }
  return out;
}

Image image_of(std::uint32_t address, std::vector<std::uint8_t> bytes) {
  Image image;
  image.segments.push_back({address, std::move(bytes)});
  image.name = "test";
  return image;
}

struct Snapshot {
  std::uint64_t programmed, pages, sectors, mass;
  explicit Snapshot(sim::Board& b)
      : programmed(b.counters().bytes_programmed),
        pages(b.counters().pages_erased),
        sectors(b.counters().sectors_erased),
        mass(b.counters().mass_erases) {}
  std::uint64_t erases() const { return pages + sectors + mass; }
};

// One board, its probe and an attached Target. `preload` goes into the flash first.
class Bench {
 public:
  explicit Bench(const std::string& chip, std::span<const std::uint8_t> preload = {},
                 SimDapProbe::Options options = {})
      : sim_(chip, preload), probe_(sim_.board(), options) {
    target_ = std::make_unique<Target>(probe_);
  }
  sim::Board& board() { return sim_.board(); }
  SimDapProbe& probe() { return probe_; }
  Target& target() { return *target_; }
  std::vector<std::uint8_t> flash(std::uint32_t address, std::size_t n) {
    const auto f = board().flash();
    const auto off = address - kFlash;
    return {f.begin() + off, f.begin() + off + n};
  }
  bool blank(std::uint32_t address, std::size_t n) {
    for (auto b : flash(address, n)) {
      if (b != 0xFF) return false;
    }
    return true;
  }

 private:
  SimTarget sim_;
  SimDapProbe probe_;
  std::unique_ptr<Target> target_;
};

class ProgrammerChip : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    image_ = demo_image(GetParam());
    bytes_ = flat(image_);
    ASSERT_GT(bytes_.size(), 4096u);
  }
  Image image_;
  std::vector<std::uint8_t> bytes_;
};

TEST_P(ProgrammerChip, TargetIdentifiesTheChip) {
  Bench bench(GetParam());
  const ChipInfo& chip = bench.target().chip();
  const sim::ChipInfo& sim_chip = bench.board().chip();
  EXPECT_EQ(chip.dev_id, sim_chip.dbgmcu_idcode & 0xFFF);
  EXPECT_EQ(chip.flash_size, sim_chip.flash_size);
  EXPECT_EQ(chip.flash_regs, sim_chip.flash_regs);
  EXPECT_NE(chip.core.find("Cortex-M"), std::string::npos) << chip.core;
  EXPECT_TRUE(bench.target().core().is_halted());
  EXPECT_GT(bench.target().speed_khz(), 0u);
}

TEST_P(ProgrammerChip, FlashesBlankChipWithoutEraseAndVerifies) {
  Bench bench(GetParam());
  const Snapshot before(bench.board());
  std::set<std::string> phases;
  Progress last_program;
  Programmer programmer(bench.target(), [&](const Progress& p) {
    phases.insert(std::string(p.phase));
    if (p.phase == "program") last_program = p;
  });
  const FlashReport report = programmer.flash(image_, FlashOptions{});
  EXPECT_TRUE(report.verified);
  EXPECT_EQ(bench.flash(kFlash, bytes_.size()), bytes_);
  const Snapshot after(bench.board());
  EXPECT_EQ(after.erases(), before.erases()) << "blank sectors are programmed without erase";
  EXPECT_GE(after.programmed - before.programmed, bytes_.size() - 64)
      << "all image bytes (but erased-looking ones) were programmed";
  EXPECT_EQ(report.sectors_erased, 0u);
  EXPECT_FALSE(report.plan.mass_erase);
  for (const auto& sp : report.plan.sectors)
    EXPECT_EQ(sp.action, SectorAction::program);
  EXPECT_TRUE(phases.count("plan") && phases.count("program") && phases.count("verify"));
  EXPECT_EQ(last_program.done, last_program.total);
  EXPECT_GE(last_program.total, bytes_.size());
}

TEST_P(ProgrammerChip, SecondFlashOfTheSameImageTouchesNothing) {
  Bench bench(GetParam());
  Programmer programmer(bench.target());
  programmer.flash(image_, FlashOptions{});
  const Snapshot before(bench.board());
  const FlashReport report = programmer.flash(image_, FlashOptions{});
  const Snapshot after(bench.board());
  EXPECT_EQ(after.programmed, before.programmed);
  EXPECT_EQ(after.erases(), before.erases());
  EXPECT_EQ(report.bytes_programmed, 0u);
  EXPECT_EQ(report.sectors_skipped, report.plan.sectors.size());
  EXPECT_TRUE(report.verified);
}

TEST_P(ProgrammerChip, ReflashOverOlderFirmwareErases) {
  std::vector<std::uint8_t> old = bytes_;
  for (std::size_t i = 0; i < old.size(); i += 3)
    old[i] ^= 0x5A;
  Bench bench(GetParam(), old);
  const Snapshot before(bench.board());
  Programmer programmer(bench.target());
  const FlashReport report = programmer.flash(image_, FlashOptions{});
  EXPECT_TRUE(report.verified);
  EXPECT_EQ(bench.flash(kFlash, bytes_.size()), bytes_);
  const Snapshot after(bench.board());
  EXPECT_GT(after.erases(), before.erases());
  if (bench.target().chip().style == FlashStyle::f1) {
    // Several 1-2 KiB pages against one mass erase of the same duration: mass erase.
    EXPECT_TRUE(report.plan.mass_erase);
    EXPECT_EQ(after.mass, before.mass + 1);
  } else {
    // One sector against an 8 s mass erase: the sector.
    EXPECT_FALSE(report.plan.mass_erase);
    EXPECT_EQ(after.sectors, before.sectors + 1);
  }
}

TEST_P(ProgrammerChip, KeepPreservesTheRestOfTheSector) {
  const sim::ChipInfo& info = *sim::find_chip(GetParam());
  const std::uint32_t sector0 = info.page_size != 0 ? info.page_size : info.sector_sizes[0];
  const std::uint32_t half = sector0 / 2;
  const std::uint32_t data = std::min<std::uint32_t>(1024, half / 2);
  // Old content: data all over the first half of sector 0, `data` bytes at the start of
  // its second half and of sector 1. (Blank elsewhere, which keeps the simulated
  // programming time short: the loader skips erased units.)
  std::vector<std::uint8_t> old(sector0 + data, 0xFF);
  for (std::size_t i = 0; i < old.size(); ++i) {
    if (i < half + data || i >= sector0) old[i] = static_cast<std::uint8_t>(i * 13 + 7);
  }
  Bench bench(GetParam(), old);
  std::set<std::string> phases;
  // The image: the first half of sector 0, new data followed by erased bytes.
  std::vector<std::uint8_t> image(half, 0xFF);
  for (std::size_t i = 0; i < data; ++i)
    image[i] = static_cast<std::uint8_t>(0xA0 ^ i);
  Programmer programmer(bench.target(),
                        [&](const Progress& p) { phases.insert(std::string(p.phase)); });
  const FlashReport report = programmer.flash(image_of(kFlash, image), FlashOptions{});
  ASSERT_EQ(report.plan.sectors.size(), 1u);
  EXPECT_EQ(report.plan.sectors[0].action, SectorAction::erase_program);
  EXPECT_TRUE(report.plan.sectors[0].keep);
  EXPECT_EQ(report.sectors_erased, 1u);
  EXPECT_EQ(phases, (std::set<std::string>{"plan", "read", "erase", "program", "verify"}));
  EXPECT_EQ(bench.flash(kFlash, half), image);
  const std::vector<std::uint8_t> rest(old.begin() + half, old.end());
  EXPECT_EQ(bench.flash(kFlash + half, rest.size()), rest)
      << "the other half of sector 0 and sector 1 are unchanged";
}

TEST_P(ProgrammerChip, ReadReturnsTheFlash) {
  Bench bench(GetParam(), bytes_);
  Programmer programmer(bench.target());
  std::vector<std::uint8_t> out(bytes_.size() + 100);
  programmer.read(kFlash, out);
  EXPECT_EQ(out, bench.flash(kFlash, out.size()));
  EXPECT_EQ(std::vector<std::uint8_t>(out.begin(), out.begin() + bytes_.size()), bytes_);
}

TEST_P(ProgrammerChip, EraseWholeSectorsOnly) {
  Bench bench(GetParam(), bytes_);
  const ChipInfo& chip = bench.target().chip();
  Programmer programmer(bench.target());
  const FlashSector s0 = chip.sectors[0];
  expect_error([&] { programmer.erase(kFlash + 4, s0.size); }, ErrorCategory::usage,
               {"whole sectors"});
  expect_error([&] { programmer.erase(kFlash, s0.size - 1); }, ErrorCategory::usage,
               {"whole sectors"});
  const Snapshot before(bench.board());
  programmer.erase(kFlash, s0.size);
  EXPECT_TRUE(bench.blank(kFlash, s0.size));
  const Snapshot after(bench.board());
  EXPECT_EQ(after.erases(), before.erases() + 1);
  if (bytes_.size() > s0.size) {
    EXPECT_EQ(bench.flash(s0.end(), bytes_.size() - s0.size),
              std::vector<std::uint8_t>(bytes_.begin() + s0.size, bytes_.end()))
        << "the next sector is untouched";
  }
}

TEST_P(ProgrammerChip, MassErase) {
  Bench bench(GetParam(), bytes_);
  Programmer programmer(bench.target());
  const Snapshot before(bench.board());
  programmer.mass_erase();
  EXPECT_EQ(Snapshot(bench.board()).mass, before.mass + 1);
  EXPECT_TRUE(bench.blank(kFlash, bench.target().chip().flash_size));
}

TEST_P(ProgrammerChip, VerifyFindsAChangedByte) {
  Bench bench(GetParam(), bytes_);
  Programmer programmer(bench.target());
  programmer.verify(image_);  // passes as loaded
  programmer.verify(image_, true);

  // Clear the bits of one half-word of the image in flash, through the flash interface
  // as any bus master could (KEYR keys, PG, a 16-bit write).
  std::uint32_t at = kFlash + 0x1000;
  while (bytes_[at - kFlash] == 0 && bytes_[at - kFlash + 1] == 0)
    at += 2;
  const ChipInfo& chip = bench.target().chip();
  protocol::MemAp& mem = bench.target().memory();
  mem.write32(chip.flash_regs + 0x04, 0x45670123);
  mem.write32(chip.flash_regs + 0x04, 0xCDEF89AB);
  const bool f1 = chip.style == FlashStyle::f1;
  mem.write32(chip.flash_regs + 0x10, f1 ? 0x1 : (0x1 | 1u << 8));  // PG (PSIZE x16)
  mem.write16(at, 0x0000);
  mem.write32(chip.flash_regs + 0x10, f1 ? 0x80 : 0x80000000);  // LOCK
  ASSERT_EQ(bench.flash(at, 2), (std::vector<std::uint8_t>{0, 0}));

  const std::string unit =
      std::string(f1 ? "page " : "sector ") + std::to_string(chip.sector_index(at));
  const std::string crc_msg = expect_error([&] { programmer.verify(image_); },
                                           ErrorCategory::verify, {unit, "first difference"});
  char where[16];
  std::snprintf(where, sizeof where, "0x%08X", bytes_[at - kFlash] != 0 ? at : at + 1);
  EXPECT_NE(crc_msg.find(where), std::string::npos) << crc_msg;
  expect_error([&] { programmer.verify(image_, true); }, ErrorCategory::verify, {where});
}

TEST_P(ProgrammerChip, DemoRunsAfterFlashAndReset) {
  Bench bench(GetParam());
  Programmer programmer(bench.target());
  programmer.flash(image_, FlashOptions{});
  protocol::CortexM& core = bench.target().core();
  core.reset(protocol::ResetKind::sysresetreq, false);
  protocol::MemAp& mem = bench.target().memory();
  const std::uint32_t first = mem.read32(kDemoCounter);
  std::uint32_t later = first;
  for (int i = 0; i < 20 && later <= first; ++i)
    later = mem.read32(kDemoCounter);
  EXPECT_GT(later, first) << "the demo's counter advances";
  EXPECT_FALSE(core.is_halted());
}

INSTANTIATE_TEST_SUITE_P(Chips, ProgrammerChip,
                         ::testing::Values("stm32f103c8", "stm32f303vc", "stm32f407vg",
                                           "stm32f746ng"));

TEST(Programmer, ImageOutsideFlashFailsBeforeTouchingTheTarget) {
  Bench bench("stm32f103c8");
  Programmer programmer(bench.target());
  const auto flushes = bench.probe().stats().flushes;
  const Snapshot before(bench.board());
  expect_error(
      [&] { programmer.flash(image_of(0x08010000 - 8, std::vector<std::uint8_t>(16, 1)), {}); },
      ErrorCategory::image, {"outside"});
  EXPECT_EQ(bench.probe().stats().flushes, flushes) << "no probe traffic at all";
  EXPECT_EQ(Snapshot(bench.board()).programmed, before.programmed);
}

TEST(Programmer, EraseAllMassErasesAndProgramsEverything) {
  const Image image = demo_image("stm32f103c8");
  Bench bench("stm32f103c8", flat(image));
  Programmer programmer(bench.target());
  FlashOptions options;
  options.erase = EraseMode::all;
  const Snapshot before(bench.board());
  const FlashReport report = programmer.flash(image, options);
  EXPECT_TRUE(report.plan.mass_erase);
  EXPECT_EQ(Snapshot(bench.board()).mass, before.mass + 1);
  EXPECT_EQ(bench.flash(kFlash, flat(image).size()), flat(image));
}

TEST(Programmer, NoSkipReprogramsAnUnchangedImage) {
  const Image image = demo_image("stm32f407vg");
  Bench bench("stm32f407vg", flat(image));
  Programmer programmer(bench.target());
  FlashOptions options;
  options.skip_unchanged = false;
  const Snapshot before(bench.board());
  const FlashReport report = programmer.flash(image, options);
  EXPECT_EQ(report.sectors_skipped, 0u);
  EXPECT_EQ(Snapshot(bench.board()).sectors, before.sectors + 1);
  EXPECT_EQ(bench.flash(kFlash, flat(image).size()), flat(image));
}

TEST(Programmer, WorksThroughNativeMemoryProbes) {
  // ST-Link style: block memory access by the probe's own commands.
  SimDapProbe::Options options;
  options.native_memory = true;
  const Image image = demo_image("stm32f303vc");
  Bench bench("stm32f303vc", {}, options);
  Programmer programmer(bench.target());
  const FlashReport report = programmer.flash(image, FlashOptions{});
  EXPECT_TRUE(report.verified);
  EXPECT_EQ(bench.flash(kFlash, flat(image).size()), flat(image));
}

TEST(Programmer, ReadbackVerifyAndLowSupplyParallelism) {
  const Image image = demo_image("stm32f746ng");
  Bench bench("stm32f746ng");
  Programmer programmer(bench.target());
  FlashOptions options;
  options.readback_verify = true;
  options.supply_mv = 1800;  // x8 writes
  const FlashReport report = programmer.flash(image, options);
  EXPECT_TRUE(report.verified);
  EXPECT_EQ(report.plan.psize, 0u);
  EXPECT_EQ(bench.flash(kFlash, flat(image).size()), flat(image));
}

// A board whose option bytes (and flash) come from a state directory, so that protection
// is in force from power-on as on a chip configured in the factory.
class OptionBench {
 public:
  OptionBench(const std::string& chip, const std::vector<std::pair<std::size_t, std::uint8_t>>& ob,
              std::span<const std::uint8_t> flash_image) {
    const sim::ChipInfo& info = *sim::find_chip(chip);
    static int sequence = 0;
    dir_ = std::filesystem::temp_directory_path() /
           ("probefarm-flash-ob-" + std::to_string(::getpid()) + "-" + std::to_string(sequence++));
    std::filesystem::create_directories(dir_);
    std::vector<std::uint8_t> option_bytes = info.option_bytes_reset;
    for (const auto& [offset, value] : ob)
      option_bytes[offset] = value;
    std::vector<std::uint8_t> flash(info.flash_size, 0xFF);
    std::copy(flash_image.begin(), flash_image.end(), flash.begin());
    write(dir_ / "option_bytes.bin", option_bytes);
    write(dir_ / "flash.bin", flash);
    sim::BoardOptions options;
    options.serial = "SIM-OB";
    options.state_dir = dir_;
    board_ = std::make_unique<sim::Board>(info, options);
    probe_ = std::make_unique<SimDapProbe>(*board_);
    target_ = std::make_unique<Target>(*probe_);
  }
  ~OptionBench() {
    target_.reset();
    probe_.reset();
    board_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  sim::Board& board() { return *board_; }
  Target& target() { return *target_; }

 private:
  static void write(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
  }
  std::filesystem::path dir_;
  std::unique_ptr<sim::Board> board_;
  std::unique_ptr<SimDapProbe> probe_;
  std::unique_ptr<Target> target_;
};

std::vector<std::uint8_t> scrambled(std::vector<std::uint8_t> bytes) {
  for (std::size_t i = 0; i < bytes.size(); i += 5)
    bytes[i] ^= 0x3C;
  return bytes;
}

TEST(Protection, WriteProtectedPageIsRefusedBeforeAnyErase) {
  const Image image = demo_image("stm32f103c8");
  // PM0075 2.5: WRP0 (offset 8, complement at 9) bit 0 clear protects pages 0-3.
  OptionBench bench("stm32f103c8", {{8, 0xFE}, {9, 0x01}}, scrambled(flat(image)));
  const Snapshot before(bench.board());
  Programmer programmer(bench.target());
  expect_error([&] { programmer.flash(image, FlashOptions{}); }, ErrorCategory::protection,
               {"page 0", "write-protected"});
  const Snapshot after(bench.board());
  EXPECT_EQ(after.erases(), before.erases());
  EXPECT_EQ(after.programmed, before.programmed);
  expect_error([&] { programmer.mass_erase(); }, ErrorCategory::protection, {"write-protected"});
}

TEST(Protection, WriteProtectedSectorOnF407) {
  const Image image = demo_image("stm32f407vg");
  // RM0090 3.7.1 Table 16: nWRP in the second option-byte row; bit 0 clear protects sector 0.
  OptionBench bench("stm32f407vg", {{8, 0xFE}, {10, 0x01}}, scrambled(flat(image)));
  Programmer programmer(bench.target());
  expect_error([&] { programmer.flash(image, FlashOptions{}); }, ErrorCategory::protection,
               {"sector 0", "write-protected"});
  expect_error([&] { programmer.erase(0x08000000, 16 * 1024); }, ErrorCategory::protection,
               {"sector 0"});
  EXPECT_EQ(Snapshot(bench.board()).erases(), 0u);
}

TEST(Protection, ReadProtectionIsReported) {
  const Image image = demo_image("stm32f103c8");
  // PM0075 2.5: any RDP value but 0xA5 is level 1.
  OptionBench bench("stm32f103c8", {{0, 0x00}, {1, 0xFF}}, flat(image));
  Programmer programmer(bench.target());
  expect_error([&] { programmer.flash(image, FlashOptions{}); }, ErrorCategory::protection,
               {"read protection level 1"});
}

TEST(Protection, DriverNamesTheFlagOfARefusedErase) {
  OptionBench f1("stm32f103c8", {{8, 0xFE}, {9, 0x01}}, {});
  Stm32Flash d1(f1.target().memory(), f1.target().chip());
  d1.unlock();
  expect_error([&] { d1.erase_sector(0, 1); }, ErrorCategory::protection, {"page 0", "WRPRTERR"});
  d1.lock();
  EXPECT_TRUE(d1.locked());

  OptionBench f4("stm32f407vg", {{8, 0xFE}, {10, 0x01}}, {});
  Stm32Flash d4(f4.target().memory(), f4.target().chip());
  d4.unlock();
  d4.unlock();  // a second unlock must not lock the F4 interface up
  EXPECT_FALSE(d4.locked());
  expect_error([&] { d4.erase_sector(0, 2); }, ErrorCategory::protection, {"sector 0", "WRPERR"});
}

TEST(LoaderSession, ProgrammingOverDataNamesPgerrAndTheAddress) {
  std::vector<std::uint8_t> old(4096, 0x00);
  Bench bench("stm32f103c8", old);
  LoaderSession session(bench.target());
  Stm32Flash driver(bench.target().memory(), bench.target().chip());
  driver.unlock();
  const std::vector<std::uint8_t> data(64, 0x42);
  expect_error([&] { session.program(0x08000100, data, 1); }, ErrorCategory::verify,
               {"PGERR", "0x08000100"});
}

TEST(LoaderSession, CrcMatchesTheHost) {
  const Image image = demo_image("stm32f746ng");
  const auto bytes = flat(image);
  Bench bench("stm32f746ng", bytes);
  LoaderSession session(bench.target());
  EXPECT_EQ(session.crc32(kFlash, static_cast<std::uint32_t>(bytes.size())), crc32(bytes));
  EXPECT_EQ(session.crc32(kFlash + 3, 1000), crc32(std::span(bytes).subspan(3, 1000)));
  const std::uint32_t first = session.crc32(kFlash, 100);
  EXPECT_EQ(session.crc32(kFlash + 100, 200, first), crc32(std::span(bytes).first(300)));
  EXPECT_GE(session.ring_size(), 16u * 1024);
  EXPECT_EQ(session.ring_size() & (session.ring_size() - 1), 0u) << "a power of two";
}

// Many CRCs in few loader runs: independent, chained and seeded requests, more of them
// than one table holds (a 1 KiB ring holds 64 entries), with chains across the boundary.
TEST(LoaderSession, CrcBatchMatchesTheHost) {
  const Image image = demo_image("stm32f407vg");
  const auto bytes = flat(image);
  Bench bench("stm32f407vg", bytes);
  LoaderSession session(bench.target(), 1024);
  ASSERT_EQ(session.ring_size(), 1024u);
  std::vector<CrcRequest> requests;
  std::vector<std::uint32_t> expected;
  std::uint32_t chain = 0;
  for (std::uint32_t i = 0; i < 150; ++i) {
    const std::uint32_t offset = (i * 37) % 4000;
    const std::uint32_t length = 1 + (i * 13) % 97;
    const auto piece = std::span(bytes).subspan(offset, length);
    if (i % 3 == 0) {
      requests.push_back({kFlash + offset, length, false, 0});
      chain = crc32(piece);
    } else if (i % 3 == 1) {
      requests.push_back({kFlash + offset, length, true, 0});
      chain = crc32(piece, chain);
    } else {
      requests.push_back({kFlash + offset, length, false, 0x1234u * i});
      chain = crc32(piece, 0x1234u * i);
    }
    expected.push_back(chain);
  }
  bench.probe().reset_stats();
  EXPECT_EQ(session.crc32_many(requests), expected);
  const std::uint64_t three_tables = bench.probe().stats().flushes;
  bench.probe().reset_stats();
  EXPECT_EQ(session.crc32_many(std::span(requests).first(64)),
            std::vector<std::uint32_t>(expected.begin(), expected.begin() + 64));
  EXPECT_LT(bench.probe().stats().flushes * 2, three_tables) << "one loader run per table";
  EXPECT_EQ(session.crc32_many(std::span(requests).first(1)),
            std::vector<std::uint32_t>{expected[0]});
  EXPECT_TRUE(session.crc32_many({}).empty());
}

// A second operation of the same Programmer reuses the loader in RAM when the core has not
// run since and the image is intact; a changed image, or a core that ran, loads it again.
TEST(Programmer, ReusesTheLoaderOnlyWhileItIsIntact) {
  const Image image = demo_image("stm32f103c8");
  Bench bench("stm32f103c8");
  Programmer programmer(bench.target());
  ASSERT_TRUE(programmer.flash(image, FlashOptions{}).verified);
  const Loader& l = loader();
  const auto loader_words = l.image.size() / 4;

  bench.probe().reset_stats();
  programmer.verify(image);
  EXPECT_LT(bench.probe().stats().ap_writes, loader_words) << "not written again";

  // A corrupted byte (as firmware or a debugger might leave it): loaded again.
  const std::uint32_t spot = l.base + static_cast<std::uint32_t>(l.image.size()) - 4;
  std::vector<std::uint8_t> original(4);
  bench.target().memory().read(spot, original);
  bench.target().memory().write32(spot, ~(original[0] | original[1] << 8 | original[2] << 16 |
                                          std::uint32_t{original[3]} << 24));
  programmer.verify(image);
  std::vector<std::uint8_t> now(4);
  bench.target().memory().read(spot, now);
  EXPECT_EQ(now, original) << "the loader was written again";

  // The core ran (a step is enough): loaded again without asking the old image.
  bench.target().memory().write32(spot, 0);
  bench.target().core().step();
  programmer.verify(image);
  bench.target().memory().read(spot, now);
  EXPECT_EQ(now, original);
}

std::vector<std::uint8_t> noise(std::size_t n, std::uint32_t seed) {
  std::vector<std::uint8_t> bytes(n);
  for (auto& b : bytes) {
    seed = seed * 1103515245 + 12345;
    b = static_cast<std::uint8_t>(seed >> 16);
  }
  return bytes;
}

TEST(Programmer, UnalignedImageAcrossSectors) {
  // Starts and ends off the 4-byte programming unit and spans sectors 0 and 1 of the F407.
  const std::vector<std::uint8_t> bytes = noise(20 * 1024 + 3, 12345);
  Bench bench("stm32f407vg");
  Programmer programmer(bench.target());
  const Image image = image_of(kFlash + 1, bytes);
  const FlashReport report = programmer.flash(image, FlashOptions{});
  EXPECT_EQ(report.plan.sectors.size(), 2u);
  EXPECT_EQ(bench.flash(kFlash + 1, bytes.size()), bytes);
  EXPECT_EQ(bench.flash(kFlash, 1), std::vector<std::uint8_t>{0xFF});
  EXPECT_EQ(bench.flash(kFlash + 1 + bytes.size(), 1), std::vector<std::uint8_t>{0xFF});
  const FlashReport again = programmer.flash(image, FlashOptions{});
  EXPECT_EQ(again.sectors_skipped, 2u);
  EXPECT_EQ(again.bytes_programmed, 0u);
}

TEST(LoaderSession, RingWrapsAround) {
  // A 2 KiB ring for 12 KiB of data: six trips around it, with the host refilling the
  // ring while the loader programs.
  const std::vector<std::uint8_t> bytes = noise(12 * 1024, 777);
  Bench bench("stm32f407vg");
  LoaderSession session(bench.target(), 2048);
  EXPECT_EQ(session.ring_size(), 2048u);
  Stm32Flash driver(bench.target().memory(), bench.target().chip());
  driver.unlock();
  std::uint64_t last = 0;
  session.program(kFlash, bytes, 2, [&](std::uint64_t done) {
    EXPECT_GE(done, last);
    last = done;
  });
  driver.lock();
  EXPECT_EQ(last, bytes.size());
  EXPECT_EQ(bench.flash(kFlash, bytes.size()), bytes);
}

TEST(Programmer, AttachWithoutHaltThenFlash) {
  // The demo runs; flashing halts the core itself before loading the loader.
  const Image image = demo_image("stm32f303vc");
  std::vector<std::uint8_t> old = flat(image);
  old[0x200] ^= 0xFF;
  SimTarget sim("stm32f303vc", old);
  SimDapProbe probe(sim.board());
  AttachOptions options;
  options.halt = false;
  Target target(probe, options);
  EXPECT_FALSE(target.core().is_halted());
  Programmer programmer(target);
  EXPECT_TRUE(programmer.flash(image, FlashOptions{}).verified);
  EXPECT_TRUE(target.core().is_halted());
  const std::vector<std::uint8_t> bytes = flat(image);
  const auto f = sim.board().flash();
  EXPECT_TRUE(std::equal(bytes.begin(), bytes.end(), f.begin()));
}

TEST(Programmer, UnverifiedFlashSaysSo) {
  const Image image = demo_image("stm32f103c8");
  Bench bench("stm32f103c8");
  Programmer programmer(bench.target());
  FlashOptions options;
  options.verify = false;
  const FlashReport report = programmer.flash(image, options);
  EXPECT_FALSE(report.verified);
  EXPECT_EQ(bench.flash(kFlash, flat(image).size()), flat(image));
}

}  // namespace
}  // namespace probefarm::flash
