// A simulated board as a debugger sees it through the AHB-AP: identification registers,
// the demo firmware programmed through the flash interface and run, system resets (AIRCR,
// nRST, power), persistent flash, and the bus responses (error, stall). References: ARMv7-M
// Architecture Reference Manual (ARM DDI 0403E.b, "ARMv7-M ARM"), ST reference manuals
// RM0008 (F103), RM0316 (F303), RM0090 (F407), RM0385 (F746) and PM0075 (F1 flash).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "board.hpp"
#include "bus.hpp"
#include "chip.hpp"
#include "clock.hpp"
#include "debugger.hpp"

namespace probefarm::sim::test {
namespace {

constexpr std::uint32_t kFpCtrl = 0xE0002000;
constexpr std::uint32_t kDbgmcuIdcode = 0xE0042000;

// firmware/README.md "What tests can rely on".
constexpr std::uint32_t kDemoCounter = 0x20002000;
constexpr std::uint32_t kDemoPattern = 0x20002004;
constexpr std::uint32_t kDemoTableWord = 0x20002044;

// firmware/README.md: demo_table[i] = fmix32((i + 1) * 0x9E3779B9).
std::uint32_t demo_table(std::uint32_t i) {
  std::uint32_t h = (i + 1) * 0x9E3779B9u;
  h ^= h >> 16;
  h *= 0x85EBCA6Bu;
  h ^= h >> 13;
  h *= 0xC2B2AE35u;
  h ^= h >> 16;
  return h;
}

class BoardChip : public ::testing::TestWithParam<const char*> {
 protected:
  BoardChip()
      : board_(chip_named(GetParam()),
               BoardOptions{.serial = "PFBOARD1", .uid_seed = 0, .state_dir = {}}) {}

  // Halts the blank chip, programs the demo image and checks its first words.
  void load_demo() {
    image_ = demo_image(GetParam());
    ASSERT_GT(image_.size(), 0x40u);
    dbg_.halt();
    ASSERT_NO_FATAL_FAILURE(dbg_.program_flash(0, image_));
  }
  std::uint32_t initial_sp() const { return word_at(image_, 0); }
  std::uint32_t reset_pc() const { return word_at(image_, 4) & ~1u; }

  Board board_;
  Debugger dbg_{board_};
  std::vector<std::uint8_t> image_;
};

std::string chip_name(const ::testing::TestParamInfo<const char*>& info) {
  return info.param;
}

// DBGMCU_IDCODE at 0xE0042000, REV_ID[31:16] | DEV_ID[11:0]: the "MCU device ID code" sections of
// RM0008 (0x410 medium density, rev Y 0x2003), RM0316 (0x422, rev Z 0x1001), RM0090 (0x413,
// rev 1 0x1007) and RM0385 (0x449, rev Z 0x1001).
TEST_P(BoardChip, DbgmcuIdcode) {
  const std::string name = GetParam();
  const std::uint32_t expect = name == "stm32f103c8"   ? 0x20036410u
                               : name == "stm32f303vc" ? 0x10016422u
                               : name == "stm32f407vg" ? 0x10076413u
                                                       : 0x10016449u;
  EXPECT_EQ(dbg_.rd(kDbgmcuIdcode), expect);
  dbg_.wr(kDbgmcuIdcode, 0);  // read-only
  EXPECT_EQ(dbg_.rd(kDbgmcuIdcode), expect);
}

// Flash size register (16 bits, KiB): RM0008 30.1 at 0x1FFFF7E0, RM0316 34.2 at 0x1FFFF7CC,
// RM0090 39.2 at 0x1FFF7A22, RM0385 41.2 at 0x1FF0F442.
TEST_P(BoardChip, FlashSizeRegister) {
  const std::string name = GetParam();
  std::uint32_t addr = 0;
  std::uint32_t kib = 0;
  if (name == "stm32f103c8") {
    addr = 0x1FFFF7E0, kib = 64;
  } else if (name == "stm32f303vc") {
    addr = 0x1FFFF7CC, kib = 256;
  } else if (name == "stm32f407vg") {
    addr = 0x1FFF7A22, kib = 1024;
  } else {
    addr = 0x1FF0F442, kib = 1024;
  }
  const std::uint32_t w = dbg_.rd(addr & ~3u);
  EXPECT_EQ((w >> (8 * (addr & 3))) & 0xFFFF, kib);
  const BusResponse h = board_.read(addr, 2);
  ASSERT_EQ(h.status, BusStatus::ok);
  EXPECT_EQ(h.value, kib);
  dbg_.wr(addr & ~3u, 0);  // system memory is read-only
  EXPECT_EQ(dbg_.rd(addr & ~3u), w);
}

// 96-bit unique ID: RM0008 30.2 (0x1FFFF7E8), RM0316 34.1 (0x1FFFF7AC), RM0090 39.1
// (0x1FFF7A10), RM0385 41.1 (0x1FF0F420). Each die has its own; the simulator derives it
// from the board's serial, so two boards differ and one board is stable.
TEST_P(BoardChip, UniqueIdIsPerBoard) {
  const std::string name = GetParam();
  const std::uint32_t uid = name == "stm32f103c8"   ? 0x1FFFF7E8u
                            : name == "stm32f303vc" ? 0x1FFFF7ACu
                            : name == "stm32f407vg" ? 0x1FFF7A10u
                                                    : 0x1FF0F420u;
  Board other(chip_named(name), BoardOptions{.serial = "PFBOARD2", .uid_seed = 0, .state_dir = {}});
  Board twin(chip_named(name), BoardOptions{.serial = "PFBOARD1", .uid_seed = 0, .state_dir = {}});
  Debugger d2(other);
  Debugger d3(twin);
  std::uint32_t a[3], b[3], c[3];
  for (std::uint32_t i = 0; i < 3; ++i) {
    a[i] = dbg_.rd(uid + 4 * i);
    b[i] = d2.rd(uid + 4 * i);
    c[i] = d3.rd(uid + 4 * i);
  }
  EXPECT_TRUE(a[0] != b[0] || a[1] != b[1] || a[2] != b[2]) << "different serials";
  EXPECT_TRUE(a[0] == c[0] && a[1] == c[1] && a[2] == c[2]) << "same serial";
  EXPECT_FALSE(a[0] == 0 && a[1] == 0 && a[2] == 0);
  EXPECT_FALSE(a[0] == 0xFFFFFFFF && a[1] == 0xFFFFFFFF && a[2] == 0xFFFFFFFF);
}

// B3.2.6 AIRCR: a write without VECTKEY = 0x05FA is ignored; with it, SYSRESETREQ resets
// the system. C1.6.5 DEMCR.VC_CORERESET with C_DEBUGEN halts the core on the first
// instruction of the reset handler (DFSR.VCATCH). B1.5.5 TakeReset: SP_main = vector 0,
// PC = vector 1 with bit 0 into EPSR.T, LR = 0xFFFFFFFF, CONTROL/PRIMASK/FAULTMASK/
// BASEPRI = 0.
TEST_P(BoardChip, SysResetReqWithVectorCatchHaltsAtResetVector) {
  ASSERT_NO_FATAL_FAILURE(load_demo());
  dbg_.set_reg(kRegPc, 0x20000100);
  dbg_.set_reg(3, 0x33333333);
  dbg_.set_vector_catch(true);
  dbg_.wr(kDfsr, kDfsrAll);
  dbg_.rd(kDhcsr);  // clear S_RESET_ST

  dbg_.wr(kAircr, kSysResetReq);               // no key
  dbg_.wr(kAircr, 0xFA050000 | kSysResetReq);  // VECTKEYSTAT is not the key
  EXPECT_EQ(dbg_.rd(kDhcsr) & kSResetSt, 0u);
  EXPECT_EQ(dbg_.rd(kDfsr), 0u);
  EXPECT_EQ(dbg_.reg(kRegPc), 0x20000100u);
  EXPECT_EQ(dbg_.reg(3), 0x33333333u);

  dbg_.wr(kAircr, kVectKey | kSysResetReq);
  const std::uint32_t dhcsr = dbg_.rd(kDhcsr);
  EXPECT_NE(dhcsr & kSHalt, 0u);
  EXPECT_NE(dhcsr & kSResetSt, 0u);
  EXPECT_EQ(dbg_.rd(kDfsr), kDfsrVCatch);
  EXPECT_EQ(dbg_.reg(kRegPc), reset_pc());
  EXPECT_EQ(dbg_.reg(kRegSp), initial_sp());
  EXPECT_EQ(dbg_.reg(kRegMsp), initial_sp());
  EXPECT_EQ(dbg_.reg(kRegLr), 0xFFFFFFFFu);
  EXPECT_EQ(dbg_.reg(kRegXpsr), 0x01000000u);
  EXPECT_EQ(dbg_.reg(kRegSpecial), 0u);
  EXPECT_EQ(dbg_.reg(3), 0u) << "R0-R12 are UNKNOWN after reset; the model zeroes them";
}

// Without vector catch the reset runs the demo: demo_counter advances with virtual time,
// the pattern carries its tag, the table word is the table entry for the count
// (firmware/README.md), and a halted core stops counting (C1.5).
TEST_P(BoardChip, DemoRunsAfterReset) {
  ASSERT_NO_FATAL_FAILURE(load_demo());
  dbg_.set_vector_catch(false);
  dbg_.wr(kAircr, kVectKey | kSysResetReq);
  EXPECT_FALSE(dbg_.halted()) << "no vector catch: the core runs";
  board_.advance(5 * kMillisecond);
  const std::uint32_t c1 = dbg_.rd(kDemoCounter);
  EXPECT_GT(c1, 10u);
  board_.advance(5 * kMillisecond);
  const std::uint32_t c2 = dbg_.rd(kDemoCounter);
  EXPECT_GT(c2, c1);
  // Equal time slices give (nearly) equal progress.
  EXPECT_NEAR(static_cast<double>(c2 - c1), static_cast<double>(c1), c1 * 0.05 + 2);

  dbg_.halt();
  const std::uint32_t n = dbg_.rd(kDemoCounter);
  for (std::uint32_t i = 0; i < 16; ++i)
    EXPECT_EQ(dbg_.rd(kDemoPattern + 4 * i) >> 8, 0xC0FFEEu) << i;
  const std::uint32_t p0 = dbg_.rd(kDemoPattern) & 0xFF;
  EXPECT_TRUE(p0 == (n & 0xFF) || p0 == ((n - 1) & 0xFF)) << p0 << " vs " << n;
  const std::uint32_t t = dbg_.rd(kDemoTableWord);
  EXPECT_TRUE(t == demo_table(n % 1536) || t == demo_table((n - 1) % 1536)) << std::hex << t;
  board_.advance(2 * kMillisecond);
  EXPECT_EQ(dbg_.rd(kDemoCounter), n);
  dbg_.resume();
  board_.advance(kMillisecond);
  EXPECT_GT(dbg_.rd(kDemoCounter), n);
}

// RM0008 7.1 / RM0316 9.1 / RM0090 6.1 / RM0385 5.1 (system reset): nRST low is a system reset
// that holds the core in reset until released, then it runs from the reset vector; the
// debug domain keeps its state and DHCSR.S_RESET_ST reports the reset (C1.6.2). SRAM is
// not cleared by a system reset.
TEST_P(BoardChip, NrstHeldKeepsCoreInReset) {
  ASSERT_NO_FATAL_FAILURE(load_demo());
  dbg_.set_vector_catch(false);
  dbg_.wr(kAircr, kVectKey | kSysResetReq);
  board_.advance(20 * kMillisecond);
  const std::uint32_t before = dbg_.rd(kDemoCounter);
  ASSERT_GT(before, 10u);

  board_.set_nrst(true);
  EXPECT_TRUE(board_.nrst_asserted());
  board_.advance(20 * kMillisecond);
  std::uint32_t dhcsr = dbg_.rd(kDhcsr);
  EXPECT_NE(dhcsr & kSResetSt, 0u);
  EXPECT_EQ(dhcsr & kSHalt, 0u);
  EXPECT_NE(dhcsr & kCDebugEn, 0u) << "debug domain not reset by nRST";
  dhcsr = dbg_.rd(kDhcsr);
  EXPECT_NE(dhcsr & kSResetSt, 0u) << "still held in reset";

  board_.set_nrst(false);
  EXPECT_FALSE(board_.nrst_asserted());
  EXPECT_EQ(dbg_.rd(kDemoCounter), before) << "nothing ran while nRST was held";
  // The reset handler clears the demo state, then the count starts again.
  board_.advance(5 * kMillisecond);
  const std::uint32_t after = dbg_.rd(kDemoCounter);
  EXPECT_GT(after, 0u);
  EXPECT_LT(after, before);
  board_.advance(5 * kMillisecond);
  EXPECT_GT(dbg_.rd(kDemoCounter), after);
}

// Connect under reset: with VC_CORERESET set while nRST is held, release halts the core
// at the reset vector (C1.6.5) before any instruction of the firmware runs.
TEST_P(BoardChip, NrstReleaseWithVectorCatchHalts) {
  ASSERT_NO_FATAL_FAILURE(load_demo());
  board_.set_nrst(true);
  dbg_.wr(kDhcsr, kDbgKey | kCDebugEn);
  dbg_.set_vector_catch(true);
  dbg_.wr(kDfsr, kDfsrAll);
  board_.advance(kMillisecond);
  board_.set_nrst(false);
  EXPECT_TRUE(dbg_.halted());
  EXPECT_EQ(dbg_.rd(kDfsr), kDfsrVCatch);
  EXPECT_EQ(dbg_.reg(kRegPc), reset_pc());
  EXPECT_EQ(dbg_.reg(kRegMsp), initial_sp());
}

// Power-on reset: SRAM and the debug domain lose their contents (DHCSR, DEMCR, FPB are
// reset only by a power-on reset, ARMv7-M ARM C1.6.2/C1.6.5/C1.11.3); flash keeps the
// program, which runs again from its reset vector.
TEST_P(BoardChip, PowerCycleClearsSramKeepsFlash) {
  ASSERT_NO_FATAL_FAILURE(load_demo());
  dbg_.wr(0x20000100, 0xDEADBEEF);
  dbg_.wr(kDemcr, kVcCoreReset);
  dbg_.wr(kFpCtrl, 3);
  board_.power_cycle();
  EXPECT_EQ(dbg_.rd(0x20000100), 0u);
  EXPECT_EQ(dbg_.rd(kDemcr), 0u);
  EXPECT_EQ(dbg_.rd(kFpCtrl) & 1u, 0u);
  const std::uint32_t dhcsr = dbg_.rd(kDhcsr);
  EXPECT_EQ(dhcsr & (kCDebugEn | kSHalt), 0u);
  EXPECT_NE(dhcsr & kSResetSt, 0u);
  for (std::uint32_t off = 0; off < image_.size(); off += 4)
    ASSERT_EQ(dbg_.rd(board_.chip().flash_base + off), word_at(image_, off)) << off;
  board_.advance(5 * kMillisecond);
  EXPECT_GT(dbg_.rd(kDemoCounter), 10u) << "the demo runs after power-up";
}

// A read of the flash array while an erase is in progress stalls the AHB (RM0090 3.6 and
// RM0385 3.3 "erase and program operations", PM0075 2.3: a read while BSY is set stalls
// the bus until the operation completes): the bus answers busy until the erase ends. The
// erase is a page erase (PM0075 2.3.4: PER, AR, STRT) on F1-style parts and a sector erase
// (RM0090 3.6.3: SER, SNB, STRT) on F4/F7.
TEST_P(BoardChip, FlashReadDuringEraseStalls) {
  dbg_.halt();
  const ChipInfo& chip = board_.chip();
  const std::uint32_t unit = dbg_.f1() ? chip.page_size : chip.sector_sizes[0];
  const std::uint32_t target = chip.flash_base + unit;  // page / sector 1
  ASSERT_NO_FATAL_FAILURE(dbg_.program_flash(unit, {0x11, 0x22, 0x33, 0x44}));
  ASSERT_EQ(dbg_.rd(target), 0x44332211u);

  ASSERT_NO_FATAL_FAILURE(dbg_.unlock_flash());
  if (dbg_.f1()) {
    dbg_.wr(dbg_.flash_cr(), 1u << 1);  // PER
    dbg_.wr(board_.chip().flash_regs + 0x14, target);
    dbg_.wr(dbg_.flash_cr(), (1u << 1) | (1u << 6));  // PER | STRT
  } else {
    const std::uint32_t cr = (1u << 1) | (1u << 3) | (2u << 8);  // SER, SNB 1, x32
    dbg_.wr(dbg_.flash_cr(), cr);
    dbg_.wr(dbg_.flash_cr(), cr | (1u << 16));  // STRT
  }
  EXPECT_NE(dbg_.rd(dbg_.flash_sr()) & dbg_.bsy(), 0u);
  const BusResponse r = board_.read(target, 4);
  ASSERT_EQ(r.status, BusStatus::busy);
  EXPECT_GT(r.busy_until, board_.now());
  // Erase times are milliseconds (the datasheets' tERASE / tME).
  EXPECT_GT(r.busy_until - board_.now(), kMillisecond);
  EXPECT_EQ(board_.read(chip.flash_base, 4).status, BusStatus::busy) << "whole array stalls";
  EXPECT_EQ(board_.read(0x20000000, 4).status, BusStatus::ok) << "SRAM does not";

  board_.advance(r.busy_until - board_.now());
  const BusResponse done = board_.read(target, 4);
  ASSERT_EQ(done.status, BusStatus::ok);
  EXPECT_EQ(done.value, 0xFFFFFFFFu);
  EXPECT_EQ(dbg_.rd(dbg_.flash_sr()) & dbg_.bsy(), 0u);
  dbg_.lock_flash();
}

// AIRCR.SYSRESETREQ resets the whole system, the flash interface included (FLASH_CR
// locks again: PM0075 3.5 reset value 0x80, RM0090 3.9.5 0x80000000), while
// AIRCR.VECTRESET is a local reset of the core only (B1.5.5 / B3.2.6).
TEST_P(BoardChip, SysResetReqResetsFlashInterfaceVectResetDoesNot) {
  ASSERT_NO_FATAL_FAILURE(load_demo());
  const std::uint32_t lock = dbg_.f1() ? 0x80u : 0x80000000u;
  dbg_.set_vector_catch(true);
  ASSERT_NO_FATAL_FAILURE(dbg_.unlock_flash());
  dbg_.set_reg(kRegPc, 0x20000100);
  dbg_.wr(kAircr, kVectKey | kVectReset);
  EXPECT_TRUE(dbg_.halted());
  EXPECT_EQ(dbg_.reg(kRegPc), reset_pc()) << "VECTRESET reset the core";
  EXPECT_EQ(dbg_.rd(dbg_.flash_cr()) & lock, 0u) << "VECTRESET left the flash unlocked";
  dbg_.wr(kAircr, kVectKey | kSysResetReq);
  EXPECT_EQ(dbg_.rd(dbg_.flash_cr()) & lock, lock) << "SYSRESETREQ locked the flash";
}

// Firmware may request the reset itself: a store to AIRCR with VECTKEY|SYSRESETREQ from
// the core (B3.2.6) resets the system; with vector catch the core halts at the reset
// vector of the flash image.
TEST_P(BoardChip, SysResetReqFromFirmware) {
  ASSERT_NO_FATAL_FAILURE(load_demo());
  // 0x20000000: LDR r0,[pc,#8]; LDR r1,[pc,#12]; STR r1,[r0]; B . ; NOP; NOP
  // 0x2000000C: 0xE000ED0C (AIRCR), 0x20000010: 0x05FA0004 (VECTKEY | SYSRESETREQ)
  const std::uint16_t code[] = {0x4802, 0x4903, 0x6001, 0xE7FE, 0xBF00, 0xBF00};
  for (std::uint32_t i = 0; i < 6; ++i)
    dbg_.wr16(0x20000000 + 2 * i, code[i]);
  dbg_.wr(0x2000000C, kAircr);
  dbg_.wr(0x20000010, kVectKey | kSysResetReq);
  dbg_.set_reg(kRegPc, 0x20000000);
  dbg_.set_reg(kRegMsp, 0x20001000);
  dbg_.set_reg(kRegXpsr, 0x01000000);
  dbg_.set_vector_catch(true);
  dbg_.wr(kDfsr, kDfsrAll);
  dbg_.resume();
  board_.advance(100 * kMicrosecond);
  ASSERT_TRUE(dbg_.halted());
  EXPECT_EQ(dbg_.rd(kDfsr), kDfsrVCatch);
  EXPECT_EQ(dbg_.reg(kRegPc), reset_pc());
  EXPECT_EQ(dbg_.reg(0), 0u) << "core registers were reset";
}

// Boot from main flash (BOOT0 low): the flash also answers at 0x00000000 (RM0008 3.4,
// RM0316 3.5, RM0090 2.4); the F746 shows it on the ITCM interface at 0x00200000
// (RM0385 2.4 boot configuration, 3.3.2).
TEST_P(BoardChip, FlashAliasMirrorsFlash) {
  ASSERT_NO_FATAL_FAILURE(load_demo());
  const std::uint32_t alias =
      board_.chip().flash_style == FlashStyle::f7 ? 0x00200000u : 0x00000000u;
  for (std::uint32_t off = 0; off < 0x40; off += 4)
    EXPECT_EQ(dbg_.rd(alias + off), word_at(image_, off)) << off;
}

INSTANTIATE_TEST_SUITE_P(Board, BoardChip, ::testing::ValuesIn(kAllChips), chip_name);

// An access to an address no slave decodes gets an AHB ERROR response (the MEM-AP turns
// it into CSW/CTRL_STAT STICKYERR, ADIv5 MEM-AP chapter); 0x30000000 is reserved on all four parts
// (RM0008 3.3, RM0316 3.2.2, RM0090 2.3, RM0385 2.2.2).
TEST(Board, UnmappedAddressAnswersError) {
  for (const char* name : kAllChips) {
    Board board(chip_named(name), BoardOptions{.serial = "PFBUS", .uid_seed = 0, .state_dir = {}});
    EXPECT_EQ(board.read(0x30000000, 4).status, BusStatus::error) << name;
    EXPECT_EQ(board.write(0x30000000, 1, 4).status, BusStatus::error) << name;
    EXPECT_EQ(board.read(0x20000000, 4).status, BusStatus::ok) << name;
  }
  // 0x10000000 is CCM SRAM on the F303 and F407 (RM0316 3.2.2, RM0090 2.3) and reserved on
  // the F103 (RM0008 3.3).
  Board f103(chip_named("stm32f103c8"),
             BoardOptions{.serial = "PFBUS", .uid_seed = 0, .state_dir = {}});
  EXPECT_EQ(f103.read(0x10000000, 4).status, BusStatus::error);
  Board f303(chip_named("stm32f303vc"),
             BoardOptions{.serial = "PFBUS", .uid_seed = 0, .state_dir = {}});
  EXPECT_EQ(f303.write(0x10000000, 0x12345678, 4).status, BusStatus::ok);
  EXPECT_EQ(f303.read(0x10000000, 4).value, 0x12345678u);
}

// With a state directory, flash written by one board is there for the next board built on
// the same directory (a simulator restart); a board on another directory starts blank.
TEST(Board, StateDirKeepsFlashAcrossBoards) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) /
                                    ("probefarm_board_state_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  const ChipInfo& chip = chip_named("stm32f103c8");
  const std::vector<std::uint8_t> image = demo_image("stm32f103c8");
  ASSERT_GT(image.size(), 0x40u);
  {
    Board board(chip, BoardOptions{.serial = "PFSTATE", .uid_seed = 0, .state_dir = dir / "a"});
    Debugger dbg(board);
    dbg.halt();
    ASSERT_NO_FATAL_FAILURE(dbg.program_flash(0, image));
    board.save_state();
  }
  {
    Board board(chip, BoardOptions{.serial = "PFSTATE", .uid_seed = 0, .state_dir = dir / "a"});
    ASSERT_GE(board.flash().size(), image.size());
    for (std::size_t i = 0; i < image.size(); ++i)
      ASSERT_EQ(board.flash()[i], image[i]) << i;
    Debugger dbg(board);
    EXPECT_EQ(dbg.rd(0x08000004), word_at(image, 4));
    board.advance(5 * kMillisecond);
    EXPECT_GT(dbg.rd(kDemoCounter), 10u) << "the persisted demo runs from reset";
  }
  {
    Board board(chip, BoardOptions{.serial = "PFSTATE", .uid_seed = 0, .state_dir = dir / "b"});
    Debugger dbg(board);
    EXPECT_EQ(dbg.rd(0x08000000), 0xFFFFFFFFu);
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace probefarm::sim::test
