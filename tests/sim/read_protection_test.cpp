// Read protection on whole boards, as a debugger meets it: locking with the option bytes,
// the power cycle, flash reads that end in AHB errors (seen on the wire as SWD FAULT and
// STICKYERR), the registers and areas that stay readable, the CPU that keeps running, and
// unlocking with its mass erase. References: PM0075 2.3-2.5 (F103), RM0316 4.3 (F303, quoted
// from its twin RM0364 3.3), RM0090 3.7 (F407), RM0385 3.4 (F746), ADIv5.2 (IHI 0031) B2/C2.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "board.hpp"
#include "bus.hpp"
#include "chip.hpp"
#include "clock.hpp"
#include "cortex_m.hpp"
#include "debugger.hpp"
#include "flash_controller.hpp"
#include "sw_dp.hpp"

namespace probefarm::sim::test {
namespace {

// ADIv5.2 B2.2 DP registers, C2.6 MEM-AP registers.
constexpr unsigned kDpAbort = 0x0;
constexpr unsigned kDpCtrlStat = 0x4;
constexpr unsigned kDpSelect = 0x8;
constexpr unsigned kDpRdbuff = 0xC;
constexpr std::uint32_t kStkErrClr = 1u << 2;
constexpr std::uint32_t kStickyErr = 1u << 5;
constexpr std::uint32_t kPowerUpReq = 0x50000000;  // CSYSPWRUPREQ | CDBGPWRUPREQ
constexpr unsigned kApCsw = 0x0;
constexpr unsigned kApTar = 0x4;
constexpr unsigned kApDrw = 0xC;
constexpr std::uint32_t kCswWord = 0x23000002;  // HPROT as OpenOCD sets it, 32-bit, no increment

// Option keys: PM0075 2.3 (F1 style: the FLASH_KEYR keys into FLASH_OPTKEYR), RM0090 3.7.2
// (F4/F7 style).
constexpr std::uint32_t kOptKey1 = 0x08192A3B;
constexpr std::uint32_t kOptKey2 = 0x4C5D6E7F;
// F1 style FLASH_CR (PM0075 3.5, RM0316 4.5.4) and FLASH_OBR (PM0075 3.7, RM0316 4.5.6).
constexpr std::uint32_t kF1Obr = 0x1C;
constexpr std::uint32_t kF1Optpg = 1u << 4;
constexpr std::uint32_t kF1Opter = 1u << 5;
constexpr std::uint32_t kF1Strt = 1u << 6;
constexpr std::uint32_t kF1Optwre = 1u << 9;
constexpr std::uint32_t kF1OblLaunch = 1u << 13;
constexpr std::uint32_t kF1Wrprterr = 1u << 4;
// F4/F7 style FLASH_OPTCR (RM0090 3.9.6) and FLASH_SR.WRPERR (3.9.4).
constexpr std::uint32_t kOptcr = 0x14;
constexpr std::uint32_t kOptstrt = 1u << 1;
constexpr std::uint32_t kOptlock = 1u << 0;
constexpr std::uint32_t kF4Wrperr = 1u << 4;

// firmware/README.md "What tests can rely on".
constexpr std::uint32_t kDemoCounter = 0x20002000;

// The debugger's side of the wire: SWD packets into the board's SW-DP, the way a probe's
// SWD engine sends them (ADIv5.2 B4).
class SwdLink {
 public:
  explicit SwdLink(SwDp& dp) : dp_(dp) {}

  // JTAG-to-SWD select and line reset (B4.3.2), DPIDR, debug power-up (B2.2.2), AP 0.
  void connect() {
    bits(~0ull, 56);
    bits(0xE79E, 16);
    bits(~0ull, 56);
    bits(0, 8);
    ASSERT_EQ(dp_.transfer(false, true, 0, 0).ack, SwdAck::ok);
    ASSERT_EQ(dp_.transfer(false, false, kDpCtrlStat, kPowerUpReq).ack, SwdAck::ok);
    ASSERT_EQ(dp_.transfer(false, false, kDpSelect, 0).ack, SwdAck::ok);
    ASSERT_EQ(dp_.transfer(true, false, kApCsw, kCswWord).ack, SwdAck::ok);
  }
  // A word read through TAR/DRW; AP reads are posted, so the data comes with RDBUFF.
  SwdResult read(std::uint32_t addr) {
    EXPECT_EQ(dp_.transfer(true, false, kApTar, addr).ack, SwdAck::ok);
    EXPECT_EQ(dp_.transfer(true, true, kApDrw, 0).ack, SwdAck::ok);
    return dp_.transfer(false, true, kDpRdbuff, 0);
  }
  std::uint32_t ctrl_stat() { return dp_.transfer(false, true, kDpCtrlStat, 0).data; }
  SwdAck clear_sticky() { return dp_.transfer(false, false, kDpAbort, kStkErrClr).ack; }

 private:
  void bits(std::uint64_t value, unsigned count) {
    std::vector<std::uint8_t> bytes((count + 7) / 8);
    for (unsigned i = 0; i < count; ++i)
      bytes[i / 8] |= static_cast<std::uint8_t>(((value >> i) & 1) << (i % 8));
    dp_.sequence(bytes.data(), count);
  }
  SwDp& dp_;
};

// A board with the register-level flows OpenOCD's stm32f1x and stm32f2x drivers use to
// lock and unlock, issued through the AHB-AP path (Board::read/write).
class RdpBoard {
 public:
  explicit RdpBoard(const std::string& chip, std::filesystem::path state_dir = {})
      : board(chip_named(chip),
              BoardOptions{.serial = "PFRDP", .uid_seed = 0, .state_dir = std::move(state_dir)}) {}

  bool f1() const { return board.chip().flash_style == FlashStyle::f1; }
  std::uint32_t flash_reg(std::uint32_t offset) const { return board.chip().flash_regs + offset; }
  BusResponse read_flash(std::uint32_t offset = 0) {
    return board.read(board.chip().flash_base + offset, 4);
  }

  // F1 style: OPTER + STRT, then OPTPG and one half-word per option byte pair (PM0075 2.3
  // "Option byte programming", "Erase procedure"): RDP first, then USER and WRP as erased
  // values OpenOCD writes back.
  void f1_write_options(std::uint8_t rdp) {
    ASSERT_NO_FATAL_FAILURE(dbg.unlock_flash());
    dbg.wr(flash_reg(kFlashOptkeyr), kFlashKey1);
    dbg.wr(flash_reg(kFlashOptkeyr), kFlashKey2);
    dbg.wr(dbg.flash_cr(), kF1Opter | kF1Optwre);
    dbg.wr(dbg.flash_cr(), kF1Opter | kF1Strt | kF1Optwre);
    ASSERT_NO_FATAL_FAILURE(dbg.wait_flash_idle());
    dbg.wr(dbg.flash_cr(), kF1Optpg | kF1Optwre);
    const std::uint16_t values[8] = {rdp, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    for (std::uint32_t i = 0; i < 8; ++i) {
      dbg.wr16(board.chip().option_bytes.base + 2 * i, values[i]);
      ASSERT_NO_FATAL_FAILURE(dbg.wait_flash_idle());
    }
    EXPECT_EQ(dbg.rd(dbg.flash_sr()) & 0x14u, 0u) << "PGERR | WRPRTERR";
    dbg.lock_flash();
  }

  // F4/F7 style (RM0090 3.7.2): unlock FLASH_OPTCR, write it with the new RDP, OPTSTRT,
  // wait for BSY, relock.
  void f4_write_rdp(std::uint8_t rdp) {
    dbg.wr(flash_reg(kFlashOptkeyr), kOptKey1);
    dbg.wr(flash_reg(kFlashOptkeyr), kOptKey2);
    const std::uint32_t optcr = (dbg.rd(flash_reg(kOptcr)) & ~0xFF03u) | (std::uint32_t{rdp} << 8);
    dbg.wr(flash_reg(kOptcr), optcr);
    dbg.wr(flash_reg(kOptcr), optcr | kOptstrt);
    ASSERT_NO_FATAL_FAILURE(dbg.wait_flash_idle());
    EXPECT_EQ(dbg.rd(dbg.flash_sr()) & 0xF2u, 0u) << "error flags";
    dbg.wr(flash_reg(kOptcr), optcr | kOptlock);
  }

  void write_rdp(std::uint8_t rdp) {
    if (f1()) {
      f1_write_options(rdp);
    } else {
      f4_write_rdp(rdp);
    }
  }
  std::uint8_t level0() const {
    return board.chip().name == std::string_view{"stm32f103c8"} ? 0xA5 : 0xAA;
  }

  Board board;
  Debugger dbg{board};
};

class RdpChip : public ::testing::TestWithParam<const char*> {};

std::string chip_name(const ::testing::TestParamInfo<const char*>& info) {
  return info.param;
}

// Locking takes effect at the next option load, not at once (PM0075 2.4.1, RM0090 3.9.6);
// after the power cycle the first debugger access latches "debugger connected" and the
// flash, at both of its addresses, answers reads with an AHB error (PM0075 2.4.1, RM0316
// 4.3.1 "even a simple read access generates a bus error", RM0090 3.7.3 / RM0385 3.4.3 "a
// bus error is generated in case of read request").
TEST_P(RdpChip, LockThenPowerCycleShutsTheDebuggerOutOfTheFlash) {
  RdpBoard rig(GetParam());
  const ChipInfo& chip = rig.board.chip();
  rig.dbg.halt();
  ASSERT_NO_FATAL_FAILURE(rig.dbg.program_flash(0, {0x11, 0x22, 0x33, 0x44}));
  ASSERT_NO_FATAL_FAILURE(rig.write_rdp(0x00));
  EXPECT_EQ(rig.board.flash_controller().read_protection(), ReadProtection::level0);
  EXPECT_EQ(rig.read_flash().value, 0x44332211u) << "still level 0 until the option load";

  rig.board.power_cycle();
  EXPECT_FALSE(rig.board.debugger_attached());
  EXPECT_EQ(rig.board.flash_controller().read_protection(), ReadProtection::level1);
  const BusResponse r = rig.read_flash();
  EXPECT_EQ(r.status, BusStatus::error);
  EXPECT_EQ(r.value, 0u);
  EXPECT_TRUE(rig.board.debugger_attached());
  const std::uint32_t alias = chip.flash_style == FlashStyle::f7 ? chip.flash_alias : 0;
  EXPECT_EQ(rig.board.read(alias, 4).status, BusStatus::error);
  EXPECT_EQ(rig.board.read(chip.flash_base + chip.flash_size - 2, 2).status, BusStatus::error);
  EXPECT_EQ(rig.board.flash()[0], 0x11) << "the contents are still there";

  // What stays readable: system memory (flash size register, unique ID), the option
  // bytes, the flash interface registers, DBGMCU_IDCODE, SRAM (PM0075 2.4.1, RM0316 4.3.1
  // Table "Access status versus protection level", RM0090 3.7.3 Table "Access versus read
  // protection level").
  EXPECT_EQ(rig.dbg.rd(chip.flash_size_reg & ~3u) >> (8 * (chip.flash_size_reg & 3)) & 0xFFFF,
            chip.flash_size / 1024);
  rig.dbg.rd(chip.uid_reg);
  const std::uint32_t ob = rig.dbg.rd(chip.option_bytes.base);  // PM0075 2.5, RM0090 3.7.1
  EXPECT_EQ(rig.f1() ? ob & 0xFF : (ob >> 8) & 0xFF, 0u) << "RDP byte 0x00";
  EXPECT_EQ(rig.dbg.rd(0xE0042000), chip.dbgmcu_idcode);
  rig.dbg.rd(rig.dbg.flash_sr());
  rig.dbg.wr(0x20000000, 0x12345678);
  EXPECT_EQ(rig.dbg.rd(0x20000000), 0x12345678u);
}

// Program and erase from the debugger are refused with the flag each manual names (F103:
// WRPRTERR, F303: PGERR, RM0316 4.3.1; F4/F7: WRPERR) and nothing changes.
TEST_P(RdpChip, LockedFlashRefusesProgramAndEraseFromTheDebugger) {
  RdpBoard rig(GetParam());
  const ChipInfo& chip = rig.board.chip();
  ASSERT_NO_FATAL_FAILURE(rig.write_rdp(0x00));
  rig.board.power_cycle();
  rig.dbg.halt();
  ASSERT_NO_FATAL_FAILURE(rig.dbg.unlock_flash());
  const std::uint32_t target = chip.flash_base + 0x100;
  if (rig.f1()) {
    rig.dbg.wr(rig.dbg.flash_cr(), 1u);  // PG
    EXPECT_EQ(rig.board.write(target, 0x1234, 2).status, BusStatus::ok);
    const std::uint32_t flag = chip.name == std::string_view{"stm32f303vc"} ? 0x04u : 0x10u;
    EXPECT_EQ(rig.dbg.rd(rig.dbg.flash_sr()), flag);
  } else {
    rig.dbg.wr(rig.dbg.flash_cr(), 1u | 2u << 8);  // PG, x32
    EXPECT_EQ(rig.board.write(target, 0x12345678, 4).status, BusStatus::ok);
    EXPECT_EQ(rig.dbg.rd(rig.dbg.flash_sr()), kF4Wrperr);
  }
  EXPECT_EQ(rig.board.flash()[0x100], 0xFF);
  EXPECT_EQ(rig.board.counters().bytes_programmed, 0u);
}

// The CPU is not shut out (a simplification: the silicon refuses its flash accesses too
// while a debugger is connected): the demo firmware runs from flash after the power cycle
// and the debugger watches its SRAM counter, while the debugger's own flash read fails.
TEST_P(RdpChip, CpuKeepsRunningFromLockedFlash) {
  RdpBoard rig(GetParam());
  const std::vector<std::uint8_t> image = demo_image(GetParam());
  ASSERT_GT(image.size(), 0x40u);
  rig.dbg.halt();
  ASSERT_NO_FATAL_FAILURE(rig.dbg.program_flash(0, image));
  ASSERT_NO_FATAL_FAILURE(rig.write_rdp(0x00));
  rig.board.power_cycle();
  rig.board.advance(5 * kMillisecond);
  EXPECT_GT(rig.dbg.rd(kDemoCounter), 10u);
  EXPECT_EQ(rig.read_flash().status, BusStatus::error);
  EXPECT_TRUE(rig.board.core().running());
}

// The latch is set by the debugger only and cleared by a power-on reset only: system
// resets (AIRCR, nRST) keep it; PM0075 2.4.1 / RM0316 4.3.1 ask for a power-on reset
// after setting read protection with the debugger connected.
TEST_P(RdpChip, DebuggerLatchSurvivesSystemResetsNotPowerCycles) {
  RdpBoard rig(GetParam());
  ASSERT_NO_FATAL_FAILURE(rig.write_rdp(0x00));
  rig.board.power_cycle();
  EXPECT_FALSE(rig.board.debugger_attached());
  rig.board.advance(kMillisecond);
  EXPECT_FALSE(rig.board.debugger_attached()) << "the CPU running does not set it";

  EXPECT_EQ(rig.board.read(0x20000000, 4).status, BusStatus::ok);
  EXPECT_TRUE(rig.board.debugger_attached());
  rig.dbg.wr(kAircr, kVectKey | kSysResetReq);
  EXPECT_TRUE(rig.board.debugger_attached());
  EXPECT_EQ(rig.read_flash().status, BusStatus::error);
  rig.board.set_nrst(true);
  rig.board.set_nrst(false);
  EXPECT_TRUE(rig.board.debugger_attached());
  EXPECT_EQ(rig.read_flash().status, BusStatus::error);

  rig.board.power_cycle();
  EXPECT_FALSE(rig.board.debugger_attached());
}

// OpenOCD's unlock: at level 1, debugger connected, the option bytes stay writable;
// programming the level-0 RDP value mass-erases the flash first (PM0075 2.4.1
// "Unprotection", RM0316 4.2, RM0090 3.7.3 "Level 1 to level 0 regression"). The new level
// counts from the next option load; then the debugger programs and reads the flash again.
TEST_P(RdpChip, UnlockMassErasesThenFlashIsUsableAfterPowerCycle) {
  RdpBoard rig(GetParam());
  const std::vector<std::uint8_t> image = demo_image(GetParam());
  rig.dbg.halt();
  ASSERT_NO_FATAL_FAILURE(rig.dbg.program_flash(0, image));
  ASSERT_NO_FATAL_FAILURE(rig.write_rdp(0x00));
  rig.board.power_cycle();
  rig.dbg.halt();
  ASSERT_EQ(rig.read_flash().status, BusStatus::error);
  const std::uint64_t erases = rig.board.counters().mass_erases;

  ASSERT_NO_FATAL_FAILURE(rig.write_rdp(rig.level0()));
  EXPECT_EQ(rig.board.counters().mass_erases, erases + 1);
  for (auto b : rig.board.flash())
    ASSERT_EQ(b, 0xFF);
  EXPECT_EQ(rig.read_flash().status, BusStatus::error) << "level 1 until the option load";

  rig.board.power_cycle();
  EXPECT_EQ(rig.board.flash_controller().read_protection(), ReadProtection::level0);
  rig.dbg.halt();
  ASSERT_NO_FATAL_FAILURE(rig.dbg.program_flash(0, image));
  EXPECT_EQ(rig.read_flash(4).value, word_at(image, 4));
}

INSTANTIATE_TEST_SUITE_P(Rdp, RdpChip, ::testing::ValuesIn(kAllChips), chip_name);

// Through the wire: the AHB error of a protected flash read makes the posted read's RDBUFF
// answer FAULT and sets CTRL/STAT.STICKYERR (ADIv5.2 B2.2.2, C2.2.3); the SW-DP's debug
// power-up request alone latches "debugger connected".
TEST(ReadProtection, FlashReadOverSwdFaultsWithStickyError) {
  RdpBoard rig("stm32f103c8");
  ASSERT_NO_FATAL_FAILURE(rig.dbg.program_flash(0, {0x11, 0x22, 0x33, 0x44}));
  ASSERT_NO_FATAL_FAILURE(rig.write_rdp(0x00));
  rig.board.power_cycle();
  ASSERT_FALSE(rig.board.debugger_attached());

  SwdLink swd(rig.board.swd());
  ASSERT_NO_FATAL_FAILURE(swd.connect());
  EXPECT_TRUE(rig.board.debugger_attached());

  SwdResult r = swd.read(0x1FFFF7E0);  // flash size register
  EXPECT_EQ(r.ack, SwdAck::ok);
  EXPECT_EQ(r.data & 0xFFFF, 64u);
  r = swd.read(0x08000000);
  EXPECT_EQ(r.ack, SwdAck::fault);
  EXPECT_NE(swd.ctrl_stat() & kStickyErr, 0u);
  EXPECT_EQ(swd.clear_sticky(), SwdAck::ok);
  EXPECT_EQ(swd.ctrl_stat() & kStickyErr, 0u);

  // FLASH_OBR shows the protection (PM0075 3.7 RDPRT); the option bytes read normally.
  r = swd.read(rig.flash_reg(kF1Obr));
  EXPECT_EQ(r.ack, SwdAck::ok);
  EXPECT_EQ(r.data & 2, 2u);
  r = swd.read(0x1FFFF800);
  EXPECT_EQ(r.ack, SwdAck::ok);
  EXPECT_EQ(r.data & 0xFFFF, 0xFF00u);
}

// RM0090 3.7.3 Table "Access versus read protection level": the OTP area is not readable in
// debug mode at level 1 either (F746: RM0385 3.4.3); the unique ID next to it is.
TEST(ReadProtection, F4OtpIsShutOutToo) {
  for (const char* name : {"stm32f407vg", "stm32f746ng"}) {
    RdpBoard rig(name);
    const ChipInfo& chip = rig.board.chip();
    EXPECT_EQ(rig.board.read(chip.otp.base, 4).status, BusStatus::ok) << name;
    ASSERT_NO_FATAL_FAILURE(rig.write_rdp(0x00));
    rig.board.power_cycle();
    EXPECT_EQ(rig.board.read(chip.otp.base, 4).status, BusStatus::error) << name;
    EXPECT_EQ(rig.board.read(chip.otp.base + chip.otp.size - 4, 4).status, BusStatus::error)
        << name;
    EXPECT_EQ(rig.board.read(chip.uid_reg, 4).status, BusStatus::ok) << name;
    EXPECT_EQ(rig.board.read(chip.flash_size_reg & ~3u, 4).status, BusStatus::ok) << name;
  }
}

// RM0316 4.5.4 OBL_LAUNCH from the debugger: the option bytes load at once through a system
// reset, so a debugger that is already latched loses the flash without a power cycle.
TEST(ReadProtection, F303OblLaunchAppliesTheLevelAtOnce) {
  RdpBoard rig("stm32f303vc");
  ASSERT_NO_FATAL_FAILURE(rig.dbg.program_flash(0, {0x11, 0x22, 0x33, 0x44}));
  ASSERT_NO_FATAL_FAILURE(rig.write_rdp(0x00));
  ASSERT_EQ(rig.read_flash().status, BusStatus::ok);
  rig.dbg.wr(kDhcsr, kDbgKey | kCDebugEn);
  rig.dbg.wr(kDemcr, kVcCoreReset);
  rig.dbg.wr(kDfsr, kDfsrAll);
  rig.dbg.wr(rig.dbg.flash_cr(), kF1OblLaunch);  // FLASH_CR is locked: allowed anyway
  EXPECT_EQ(rig.board.flash_controller().read_protection(), ReadProtection::level1);
  EXPECT_EQ(rig.dbg.rd(rig.flash_reg(kF1Obr)) & 6, 2u);
  EXPECT_EQ(rig.dbg.rd(kDfsr), kDfsrVCatch) << "a system reset, caught at the reset vector";
  EXPECT_EQ(rig.read_flash().status, BusStatus::error);
}

// OBL_LAUNCH from firmware: the store to FLASH_CR requests the reset in the middle of an
// instruction; the core takes it when the instruction is done (as for AIRCR.SYSRESETREQ).
TEST(ReadProtection, F303OblLaunchFromFirmware) {
  RdpBoard rig("stm32f303vc");
  ASSERT_NO_FATAL_FAILURE(rig.write_rdp(0x00));
  // 0x20000000: LDR r0,[pc,#8]; LDR r1,[pc,#12]; STR r1,[r0]; B . ; NOP; NOP
  // 0x2000000C: FLASH_CR, 0x20000010: OBL_LAUNCH
  rig.dbg.halt();
  rig.dbg.load_thumb(0x20000000, {0x4802, 0x4903, 0x6001, 0xE7FE, 0xBF00, 0xBF00});
  rig.dbg.wr(0x2000000C, rig.dbg.flash_cr());
  rig.dbg.wr(0x20000010, kF1OblLaunch);
  rig.dbg.set_reg(kRegPc, 0x20000000);
  rig.dbg.set_reg(kRegMsp, 0x20001000);
  rig.dbg.set_reg(kRegXpsr, 0x01000000);
  rig.dbg.set_vector_catch(true);
  rig.dbg.wr(kDfsr, kDfsrAll);
  rig.dbg.resume();
  rig.board.advance(100 * kMicrosecond);
  ASSERT_TRUE(rig.dbg.halted());
  EXPECT_EQ(rig.dbg.rd(kDfsr), kDfsrVCatch);
  EXPECT_EQ(rig.dbg.reg(0), 0u) << "core registers were reset";
  EXPECT_EQ(rig.board.flash_controller().read_protection(), ReadProtection::level1);
}

// Option bytes persist like the flash: a board saved at level 1 comes back at level 1 on
// the same state directory (a simulator restart is a power cycle).
TEST(ReadProtection, LevelPersistsThroughTheStateDirectory) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) /
                                    ("probefarm_rdp_state_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  for (const char* name : {"stm32f103c8", "stm32f407vg"}) {
    {
      RdpBoard rig(name, dir / name);
      ASSERT_NO_FATAL_FAILURE(rig.dbg.program_flash(0, {0x11, 0x22, 0x33, 0x44}));
      ASSERT_NO_FATAL_FAILURE(rig.write_rdp(0x00));
      rig.board.save_state();
    }
    {
      RdpBoard rig(name, dir / name);
      EXPECT_EQ(rig.board.flash_controller().read_protection(), ReadProtection::level1) << name;
      EXPECT_EQ(rig.board.flash()[0], 0x11) << name;
      EXPECT_EQ(rig.read_flash().status, BusStatus::error) << name;
      ASSERT_NO_FATAL_FAILURE(rig.write_rdp(rig.level0()));
      rig.board.save_state();
    }
    {
      RdpBoard rig(name, dir / name);
      EXPECT_EQ(rig.board.flash_controller().read_protection(), ReadProtection::level0) << name;
      const BusResponse r = rig.read_flash();
      EXPECT_EQ(r.status, BusStatus::ok) << name;
      EXPECT_EQ(r.value, 0xFFFFFFFFu) << name << ": mass erased on the way down";
    }
  }
  std::filesystem::remove_all(dir);
}

// Level 2 (0xCC) cannot be left: F303 (RM0316 4.3.1) refuses to erase the option bytes,
// F407 (RM0090 3.7.3) to change them (WRPERR in the model).
TEST(ReadProtection, Level2CannotBeUnset) {
  {
    RdpBoard rig("stm32f303vc");
    ASSERT_NO_FATAL_FAILURE(rig.f1_write_options(0xCC));
    rig.board.power_cycle();
    ASSERT_EQ(rig.board.flash_controller().read_protection(), ReadProtection::level2);
    const std::vector<std::uint8_t> before(rig.board.option_bytes().begin(),
                                           rig.board.option_bytes().end());
    ASSERT_NO_FATAL_FAILURE(rig.dbg.unlock_flash());
    rig.dbg.wr(rig.flash_reg(kFlashOptkeyr), kFlashKey1);
    rig.dbg.wr(rig.flash_reg(kFlashOptkeyr), kFlashKey2);
    rig.dbg.wr(rig.dbg.flash_cr(), kF1Opter | kF1Optwre);
    rig.dbg.wr(rig.dbg.flash_cr(), kF1Opter | kF1Strt | kF1Optwre);
    EXPECT_EQ(rig.dbg.rd(rig.dbg.flash_sr()), kF1Wrprterr);
    EXPECT_TRUE(std::equal(before.begin(), before.end(), rig.board.option_bytes().begin()));
    rig.board.power_cycle();
    EXPECT_EQ(rig.board.flash_controller().read_protection(), ReadProtection::level2);
  }
  {
    RdpBoard rig("stm32f407vg");
    ASSERT_NO_FATAL_FAILURE(rig.f4_write_rdp(0xCC));
    rig.board.power_cycle();
    ASSERT_EQ(rig.board.flash_controller().read_protection(), ReadProtection::level2);
    rig.dbg.wr(rig.flash_reg(kFlashOptkeyr), kOptKey1);
    rig.dbg.wr(rig.flash_reg(kFlashOptkeyr), kOptKey2);
    rig.dbg.wr(rig.flash_reg(kOptcr), 0x0FFFAAEC | kOptstrt);
    EXPECT_EQ(rig.dbg.rd(rig.dbg.flash_sr()), kF4Wrperr);
    EXPECT_EQ(rig.board.option_bytes()[1], 0xCC);
    rig.board.power_cycle();
    EXPECT_EQ(rig.board.flash_controller().read_protection(), ReadProtection::level2);
  }
}

}  // namespace
}  // namespace probefarm::sim::test
