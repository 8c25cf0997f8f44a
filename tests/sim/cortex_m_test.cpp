// The Cortex-M core model seen from a debugger: every access goes through the board's
// DebugBus exactly as an AHB-AP would issue it (32-bit reads and writes of the SCS, DWT,
// FPB and ROM table), and time passes only through Board::advance(). References: ARMv7-M
// Architecture Reference Manual (ARM DDI 0403E.b, "ARMv7-M ARM" below), the Cortex-M3/M4/M7
// TRMs (DDI 0337, DDI 0439, DDI 0489) and ARM IHI 0029 (CoreSight) / IHI 0031 (ADIv5).
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "board.hpp"
#include "bus.hpp"
#include "chip.hpp"
#include "clock.hpp"
#include "debugger.hpp"

namespace probefarm::sim::test {
namespace {

// ARMv7-M ARM B3.2.3 CPUID, B4 (CPUID scheme) MVFR0/MVFR1; the debug registers are in
// debugger.hpp.
constexpr std::uint32_t kCpuid = 0xE000ED00;
constexpr std::uint32_t kMvfr0 = 0xE000EF40;
constexpr std::uint32_t kMvfr1 = 0xE000EF44;
// C1.6.3 DCRSR REGSEL of the FP registers.
constexpr std::uint32_t kRegFpscr = 0x21;
constexpr std::uint32_t kRegS0 = 0x40;

// C1.8 DWT, C1.11 FPB.
constexpr std::uint32_t kDwtCtrl = 0xE0001000;
constexpr std::uint32_t kDwtCyccnt = 0xE0001004;
constexpr std::uint32_t kDwtPcsr = 0xE000101C;
constexpr std::uint32_t kDwtComp0 = 0xE0001020;
constexpr std::uint32_t kDwtMask0 = 0xE0001024;
constexpr std::uint32_t kDwtFunction0 = 0xE0001028;
constexpr std::uint32_t kDwtMatched = 1u << 24;
constexpr std::uint32_t kFpCtrl = 0xE0002000;
constexpr std::uint32_t kFpComp0 = 0xE0002008;
constexpr std::uint32_t kFpKey = 1u << 1;
constexpr std::uint32_t kFpEnable = 1u << 0;

constexpr std::uint32_t kRomTable = 0xE00FF000;

// Work area in SRAM: the demo firmware never touches 0x20000000-0x20001FFF.
constexpr std::uint32_t kCode = 0x20000000;
constexpr std::uint32_t kStack = 0x20001000;

// Thumb encodings (ARMv7-M ARM A7.7).
constexpr std::uint16_t kAddsR0_1 = 0x3001;  // ADDS r0, #1 (T2)
constexpr std::uint16_t kAddsR1_1 = 0x3101;  // ADDS r1, #1 (T2)
constexpr std::uint16_t kBMinus4 = 0xE7FC;   // B to the instruction 4 bytes back (T2)
constexpr std::uint16_t kMovsR0_5 = 0x2005;  // MOVS r0, #5 (T1)
constexpr std::uint16_t kMovsR0_6 = 0x2006;  // MOVS r0, #6 (T1)
constexpr std::uint16_t kBkpt1 = 0xBE01;     // BKPT #1
constexpr std::uint16_t kNop = 0xBF00;       // NOP (T1)

Board make_board(const std::string& name, const std::string& serial = "PFCORE01") {
  return Board(chip_named(name), BoardOptions{.serial = serial, .uid_seed = 7, .state_dir = {}});
}

// A tiny flash image: vector table (SP, reset PC), then at 0x08000008
//   loop: ADDS r0,#1 ; ADDS r1,#1 ; B loop ; NOP
// so 0x08000008 is the lower and 0x0800000A the upper half-word of one word.
constexpr std::uint32_t kFlashLoop = 0x08000008;
std::vector<std::uint8_t> flash_loop_image() {
  std::vector<std::uint8_t> img;
  auto put32 = [&](std::uint32_t v) {
    for (int i = 0; i < 4; ++i)
      img.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  };
  auto put16 = [&](std::uint16_t v) {
    img.push_back(static_cast<std::uint8_t>(v));
    img.push_back(static_cast<std::uint8_t>(v >> 8));
  };
  put32(kStack);
  put32(kFlashLoop | 1);
  put16(kAddsR0_1);
  put16(kAddsR1_1);
  put16(kBMinus4);
  put16(kNop);
  return img;
}

class CortexMChip : public ::testing::TestWithParam<const char*> {
 protected:
  Board board_ = make_board(GetParam());
  Debugger dbg_{board_};
  bool m3() const { return board_.chip().core == CoreKind::cortex_m3; }
  bool m7() const { return board_.chip().core == CoreKind::cortex_m7; }
};

std::string chip_name(const ::testing::TestParamInfo<const char*>& info) {
  return info.param;
}

// --- Identification ---------------------------------------------------------------------

// ARMv7-M ARM B3.2.3 CPUID; values from the core TRMs (Cortex-M3 r1p1, Cortex-M4 r0p1,
// Cortex-M7 r1p0): implementer 0x41, architecture 0xF, part 0xC23/0xC24/0xC27.
// Behaviour that only some cores have gets its own instantiation, so that no test runs
// on a chip it does not apply to.
class CortexMFpuChip : public CortexMChip {};      // M4F, M7: FP extension
class CortexMFpbRev0Chip : public CortexMChip {};  // M3, M4: FPB revision 0
class CortexMFpbRev1Chip : public CortexMChip {};  // M7: FPB revision 1

TEST_P(CortexMChip, CpuidIdentifiesTheCore) {
  const std::string name = GetParam();
  const std::uint32_t expect = name == "stm32f103c8"   ? 0x411FC231u
                               : name == "stm32f746ng" ? 0x411FC270u
                                                       : 0x410FC241u;
  EXPECT_EQ(dbg_.rd(kCpuid), expect);
  dbg_.wr(kCpuid, 0);  // read-only
  EXPECT_EQ(dbg_.rd(kCpuid), expect);
}

// ARMv7-M ARM B4 (CPUID scheme), Media and FP Feature Registers MVFR0/MVFR1: present with the FP
// extension (Cortex-M4F FPv4-SP, Cortex-M7 FPv5-SP as on the STM32F746); the Cortex-M3 has no FPU
// and reads zero.
TEST_P(CortexMChip, MvfrReportsTheFpu) {
  if (m3()) {
    EXPECT_EQ(dbg_.rd(kMvfr0), 0u);
    EXPECT_EQ(dbg_.rd(kMvfr1), 0u);
  } else {
    // Cortex-M4 and Cortex-M7 TRMs, FPU programmers' model (single precision): 0x10110021,
    // 0x11000011.
    EXPECT_EQ(dbg_.rd(kMvfr0), 0x10110021u);
    EXPECT_EQ(dbg_.rd(kMvfr1), 0x11000011u);
  }
}

std::uint32_t cidr(Debugger& d, std::uint32_t base) {
  std::uint32_t v = 0;
  for (std::uint32_t i = 0; i < 4; ++i)
    v |= (d.rd(base + 0xFF0 + 4 * i) & 0xFF) << (8 * i);
  return v;
}

std::uint64_t pidr(Debugger& d, std::uint32_t base) {
  std::uint64_t v = d.rd(base + 0xFD0) & 0xFF;  // PIDR4 -> bits [39:32]
  v <<= 32;
  for (std::uint32_t i = 0; i < 4; ++i)
    v |= std::uint64_t{d.rd(base + 0xFE0 + 4 * i) & 0xFF} << (8 * i);
  return v;
}

// ARMv7-M ARM C1.2 (debug ROM table) and ADIv5 (IHI 0031) chapter D3 (ROM tables): the ROM table at
// 0xE00FF000 lists the SCS, DWT, FPB, ITM and TPIU as signed 4 KiB offsets with the present (bit 0)
// and 32-bit format (bit 1) flags, ends with a zero entry, and identifies as a class 1 component.
TEST_P(CortexMChip, RomTableListsDebugComponents) {
  EXPECT_EQ(dbg_.rd(kRomTable + 0x00), 0xFFF0F003u);  // SCS  0xE000E000
  EXPECT_EQ(dbg_.rd(kRomTable + 0x04), 0xFFF02003u);  // DWT  0xE0001000
  EXPECT_EQ(dbg_.rd(kRomTable + 0x08), 0xFFF03003u);  // FPB  0xE0002000
  EXPECT_EQ(dbg_.rd(kRomTable + 0x0C), 0xFFF01003u);  // ITM  0xE0000000
  EXPECT_EQ(dbg_.rd(kRomTable + 0x10), 0xFFF41003u);  // TPIU 0xE0040000
  // The table ends at the first zero entry (an ETM entry may precede it on real parts).
  bool ended = false;
  for (std::uint32_t off = 0x14; off < 0x20 && !ended; off += 4) {
    const std::uint32_t e = dbg_.rd(kRomTable + off);
    ended = e == 0;
    if (!ended) {
      EXPECT_EQ(e & 0x2u, 0x2u) << "entry at +" << off;
    }
  }
  EXPECT_TRUE(ended);
  // CoreSight (IHI 0029) component identification: CIDR preamble 0xB105_000D with class 0x1 (ROM
  // table).
  EXPECT_EQ(cidr(dbg_, kRomTable), 0xB105100Du);
  // MEMTYPE.SYSMEM: system memory is present on the bus (ADIv5 chapter D3, MEMTYPE).
  EXPECT_EQ(dbg_.rd(kRomTable + 0xFCC) & 1u, 1u);
  // The STM32 ROM table carries ST's JEP106 code (0x20, bank 0) and the DEV_ID as the
  // part number (RM0090 and RM0008 debug chapters, "MCU ROM table"): PIDR = 0x00000A0<dev>.
  const std::uint64_t id = pidr(dbg_, kRomTable);
  EXPECT_EQ(id & 0xFFF, board_.chip().dbgmcu_idcode & 0xFFF);
  EXPECT_EQ((id >> 12) & 0x7F, 0x20u) << "JEP106 identity code";
  EXPECT_EQ((id >> 19) & 1, 1u) << "JEDEC-assigned";
  EXPECT_EQ((id >> 32) & 0xF, 0u) << "JEP106 continuation";
}

// CoreSight (IHI 0029) component identification: SCS, DWT, FPB and ITM are generic IP components
// (class 0xE) designed by Arm (JEP106 0x3B, continuation 4), which is how debuggers recognise them.
TEST_P(CortexMChip, ComponentIdsOfCoreDebugBlocks) {
  for (std::uint32_t base : {0xE000E000u, 0xE0001000u, 0xE0002000u, 0xE0000000u}) {
    EXPECT_EQ(cidr(dbg_, base), 0xB105E00Du) << std::hex << base;
    const std::uint64_t id = pidr(dbg_, base);
    EXPECT_EQ((id >> 12) & 0x7F, 0x3Bu) << std::hex << base;
    EXPECT_EQ((id >> 32) & 0xF, 4u) << std::hex << base;
  }
  // Part numbers (TRMs, "identification registers"): SCS 0x000 on the M3, 0x00C on the M4
  // and M7; DWT 0x002; FPB 0x003 on M3/M4, 0x00E on the M7 (FPB revision 1).
  EXPECT_EQ(pidr(dbg_, 0xE000E000) & 0xFFF, m3() ? 0x000u : 0x00Cu);
  EXPECT_EQ(pidr(dbg_, 0xE0001000) & 0xFFF, 0x002u);
  EXPECT_EQ(pidr(dbg_, 0xE0002000) & 0xFFF, m7() ? 0x00Eu : 0x003u);
}

// --- DHCSR ------------------------------------------------------------------------------

// C1.6.2: a write whose bits [31:16] are not DBGKEY (0xA05F) is ignored.
TEST_P(CortexMChip, DhcsrWriteWithoutKeyIsIgnored) {
  dbg_.wr(kDhcsr, kCDebugEn | kCHalt);
  const std::uint32_t v = dbg_.rd(kDhcsr);
  EXPECT_EQ(v & (kCDebugEn | kCHalt), 0u);
  EXPECT_EQ(v & kSHalt, 0u);
  dbg_.wr(kDhcsr, 0x12340000 | kCDebugEn | kCHalt);
  EXPECT_EQ(dbg_.rd(kDhcsr) & (kCDebugEn | kCHalt | kSHalt), 0u);
  // The key also guards the way out: halted, a keyless write does not resume.
  dbg_.halt();
  dbg_.wr(kDhcsr, kCDebugEn);
  board_.advance(100 * kMicrosecond);
  EXPECT_TRUE(dbg_.halted());
}

// C1.6.2 / C1.5: C_DEBUGEN|C_HALT enters Debug state (S_HALT) and C1.6.1 records the
// halt request in DFSR.HALTED; C_HALT alone without C_DEBUGEN has no effect.
TEST_P(CortexMChip, HaltRequestEntersDebugState) {
  dbg_.wr(kDfsr, kDfsrAll);
  EXPECT_EQ(dbg_.rd(kDfsr), 0u);
  dbg_.wr(kDhcsr, kDbgKey | kCHalt);
  EXPECT_EQ(dbg_.rd(kDhcsr) & kSHalt, 0u) << "C_HALT needs C_DEBUGEN";
  dbg_.wr(kDhcsr, kDbgKey | kCDebugEn | kCHalt);
  const std::uint32_t v = dbg_.rd(kDhcsr);
  EXPECT_EQ(v & (kSHalt | kCDebugEn | kCHalt), kSHalt | kCDebugEn | kCHalt);
  EXPECT_NE(v & kSRegRdy, 0u) << "no transfer pending in Debug state";
  EXPECT_EQ(dbg_.rd(kDfsr), kDfsrHalted);
  // DFSR bits are write-one-to-clear (C1.6.1).
  dbg_.wr(kDfsr, kDfsrHalted);
  EXPECT_EQ(dbg_.rd(kDfsr), 0u);
}

// C1.6.2 S_RESET_ST: set when the core has been reset since DHCSR was last read, cleared
// by the read. The board was reset when it was built.
TEST_P(CortexMChip, ResetStatusIsStickyUntilRead) {
  EXPECT_NE(dbg_.rd(kDhcsr) & kSResetSt, 0u);
  EXPECT_EQ(dbg_.rd(kDhcsr) & kSResetSt, 0u);
  dbg_.wr(kDemcr, kVcCoreReset);
  dbg_.wr(kDhcsr, kDbgKey | kCDebugEn);
  dbg_.wr(kAircr, kVectKey | kSysResetReq);
  const std::uint32_t v = dbg_.rd(kDhcsr);
  EXPECT_NE(v & kSResetSt, 0u);
  EXPECT_NE(v & kSHalt, 0u);
  EXPECT_EQ(dbg_.rd(kDhcsr) & kSResetSt, 0u);
}

// C1.6.2 S_RETIRE_ST: set when an instruction has retired since the last DHCSR read,
// cleared by the read.
TEST_P(CortexMChip, RetireStatusIsStickyUntilRead) {
  dbg_.prepare(kCode, {kAddsR0_1, kAddsR1_1, kBMinus4}, kStack);
  dbg_.rd(kDhcsr);
  EXPECT_EQ(dbg_.rd(kDhcsr) & kSRetireSt, 0u) << "nothing retired while halted";
  dbg_.step();
  EXPECT_NE(dbg_.rd(kDhcsr) & kSRetireSt, 0u);
  EXPECT_EQ(dbg_.rd(kDhcsr) & kSRetireSt, 0u);
  dbg_.resume();
  board_.advance(50 * kMicrosecond);
  const std::uint32_t v = dbg_.rd(kDhcsr);
  EXPECT_EQ(v & kSHalt, 0u);
  EXPECT_NE(v & kSRetireSt, 0u);
}

// --- DCRSR / DCRDR ----------------------------------------------------------------------

// C1.6.3 Table C1-15: REGSEL 0-12 R0-R12, 13 SP, 14 LR, 15 DebugReturnAddress, 16 xPSR,
// 17 MSP, 18 PSP. With CONTROL.SPSEL = 0 the current SP is the MSP (B1.4.1).
TEST_P(CortexMChip, CoreRegistersReadBack) {
  dbg_.halt();
  for (std::uint32_t r = 0; r <= 12; ++r)
    dbg_.set_reg(r, 0x11110000u * (r + 1) + r);
  for (std::uint32_t r = 0; r <= 12; ++r)
    EXPECT_EQ(dbg_.reg(r), 0x11110000u * (r + 1) + r) << "R" << r;
  dbg_.set_reg(kRegLr, 0x08000123);
  EXPECT_EQ(dbg_.reg(kRegLr), 0x08000123u);
  dbg_.set_reg(kRegPc, 0x20000100);
  EXPECT_EQ(dbg_.reg(kRegPc), 0x20000100u);
  dbg_.set_reg(kRegMsp, 0x20000800);
  EXPECT_EQ(dbg_.reg(kRegMsp), 0x20000800u);
  EXPECT_EQ(dbg_.reg(kRegSp), 0x20000800u) << "SP is SP_main";
  dbg_.set_reg(kRegSp, 0x20000C00);
  EXPECT_EQ(dbg_.reg(kRegMsp), 0x20000C00u);
  dbg_.set_reg(kRegPsp, 0x20000400);
  EXPECT_EQ(dbg_.reg(kRegPsp), 0x20000400u);
  EXPECT_EQ(dbg_.reg(kRegMsp), 0x20000C00u) << "PSP is a separate register";
  // xPSR: APSR.NZCVQ [31:27] and EPSR.T [24]; IPSR is 0 in Thread mode.
  dbg_.set_reg(kRegXpsr, 0xF9000000);
  EXPECT_EQ(dbg_.reg(kRegXpsr), 0xF9000000u);
  dbg_.set_reg(kRegXpsr, 0x01000000);
  EXPECT_EQ(dbg_.reg(kRegXpsr), 0x01000000u);
  // A register read leaves the core halted and the others untouched.
  EXPECT_TRUE(dbg_.halted());
  EXPECT_EQ(dbg_.reg(0), 0x11110000u);
}

// C1.6.3: REGSEL 0b10100 transfers CONTROL[31:24], FAULTMASK[23:16], BASEPRI[15:8] and
// PRIMASK[7:0] in one word. CONTROL has nPRIV and SPSEL, plus FPCA with the FP extension
// (B1.4.4). ST implements 4 priority bits, so BASEPRI keeps bits [7:4] only (PM0056 2.1.3,
// PM0214 2.1.3, PM0253 2.1.3).
TEST_P(CortexMChip, SpecialRegisterWord) {
  dbg_.halt();
  EXPECT_EQ(dbg_.reg(kRegSpecial), 0u) << "all clear out of reset (B1.5.5)";
  dbg_.set_reg(kRegSpecial, 0x0001A001);  // FAULTMASK, BASEPRI 0xA0, PRIMASK
  EXPECT_EQ(dbg_.reg(kRegSpecial), 0x0001A001u);
  dbg_.set_reg(kRegSpecial, 0x00005000);  // BASEPRI only
  EXPECT_EQ(dbg_.reg(kRegSpecial), 0x00005000u);
  dbg_.set_reg(kRegSpecial, 0x00000000);
  EXPECT_EQ(dbg_.reg(kRegSpecial), 0u);
  // CONTROL.SPSEL (B1.4.4): in Thread mode the current SP becomes SP_process.
  dbg_.set_reg(kRegMsp, 0x20000800);
  dbg_.set_reg(kRegPsp, 0x20000400);
  dbg_.set_reg(kRegSpecial, 0x02000000);
  EXPECT_EQ(dbg_.reg(kRegSpecial), 0x02000000u);
  EXPECT_EQ(dbg_.reg(kRegSp), 0x20000400u) << "SP is SP_process";
  EXPECT_EQ(dbg_.reg(kRegMsp), 0x20000800u);
  dbg_.set_reg(kRegSpecial, 0);
  EXPECT_EQ(dbg_.reg(kRegSp), 0x20000800u) << "SP is SP_main again";
  if (!m3()) {
    // CONTROL.FPCA exists with the FP extension (B1.4.4).
    dbg_.set_reg(kRegSpecial, 0x04000000);
    EXPECT_EQ(dbg_.reg(kRegSpecial), 0x04000000u);
  }
}

// C1.6.3: DCRSR/DCRDR transfers are debugger accesses, not MSR/MRS executed by the core,
// so CONTROL.nPRIV (unprivileged Thread mode, B1.4.4) must not hide or protect PRIMASK,
// BASEPRI, FAULTMASK, CONTROL, MSP or PSP from the debugger. A debugger that halts an RTOS
// task running unprivileged has to be able to read and restore them.
TEST_P(CortexMChip, RegisterTransferIgnoresCorePrivilege) {
  dbg_.halt();
  dbg_.set_reg(kRegSpecial, 0x0101A001);  // nPRIV, FAULTMASK, BASEPRI 0xA0, PRIMASK
  EXPECT_EQ(dbg_.reg(kRegSpecial), 0x0101A001u);
  dbg_.set_reg(kRegMsp, 0x20000C00);
  EXPECT_EQ(dbg_.reg(kRegMsp), 0x20000C00u);
  dbg_.set_reg(kRegPsp, 0x20000600);
  EXPECT_EQ(dbg_.reg(kRegPsp), 0x20000600u);
  dbg_.set_reg(kRegSpecial, 0);
  EXPECT_EQ(dbg_.reg(kRegSpecial), 0u) << "the debugger can return to privileged";
}

// The STM32s implement 4 priority bits, so every priority field keeps bits [7:4] and reads
// bits [3:0] as zero: BASEPRI (PM0056 2.1.3 "Base priority mask register", PM0214 2.1.3,
// PM0253 2.1.3; ARMv7-M ARM B1.4.3), NVIC_IPRn (PM0056 NVIC_IPRx, ARMv7-M ARM B3.4 NVIC) and
// SHPRn (PM0056 SHPRx, ARMv7-M ARM B3.2 SCB). Debuggers and CMSIS find the number of
// implemented bits by writing 0xFF and reading back.
TEST_P(CortexMChip, PriorityFieldsKeepFourImplementedBits) {
  dbg_.halt();
  dbg_.set_reg(kRegSpecial, 0x0000A500);
  EXPECT_EQ(dbg_.reg(kRegSpecial), 0x0000A000u) << "BASEPRI";
  dbg_.wr(0xE000E400, 0xFFFFFFFF);  // NVIC_IPR0
  EXPECT_EQ(dbg_.rd(0xE000E400), 0xF0F0F0F0u) << "NVIC_IPR0";
  dbg_.wr(0xE000ED20, 0xFFFF0000);  // SHPR3: PendSV, SysTick
  EXPECT_EQ(dbg_.rd(0xE000ED20), 0xF0F00000u) << "SHPR3";
}

// C1.6.3: with the FP extension REGSEL 0b0100001 is FPSCR and 0b1000000-0b1011111 are
// S0-S31. The Cortex-M3 has none of them.
TEST_P(CortexMFpuChip, FloatingPointRegistersOnFpuCores) {
  dbg_.halt();
  for (std::uint32_t i = 0; i < 32; ++i)
    dbg_.set_reg(kRegS0 + i, 0x3F800000u + (i << 12) + i);
  for (std::uint32_t i = 0; i < 32; ++i)
    EXPECT_EQ(dbg_.reg(kRegS0 + i), 0x3F800000u + (i << 12) + i) << "S" << i;
  // FPSCR (B1.4.4 / A2.5.3 on ARMv7-M): N Z C V, AHP, DN, FZ, RMode, IDC and the cumulative
  // exception flags IXC UFC OFC DZC IOC.
  dbg_.set_reg(kRegFpscr, 0xF7C0009F);
  EXPECT_EQ(dbg_.reg(kRegFpscr), 0xF7C0009Fu);
  dbg_.set_reg(kRegFpscr, 0x00400000);
  EXPECT_EQ(dbg_.reg(kRegFpscr), 0x00400000u);
  EXPECT_EQ(dbg_.reg(kRegS0 + 31), 0x3F81F01Fu);
}

// C1.6.3: register transfers take place only in Debug state; written while the core
// runs, DCRSR changes nothing.
TEST_P(CortexMChip, RegisterTransferIgnoredWhileRunning) {
  dbg_.prepare(kCode, {kAddsR0_1, kAddsR1_1, kBMinus4}, kStack);
  dbg_.set_reg(5, 0x55555555);
  dbg_.resume();
  board_.advance(20 * kMicrosecond);
  ASSERT_FALSE(dbg_.halted());
  dbg_.wr(kDcrdr, 0xDEADBEEF);
  dbg_.wr(kDcrsr, 5 | kRegWrite);
  dbg_.wr(kDcrsr, kRegPc | kRegWrite);
  board_.advance(20 * kMicrosecond);
  dbg_.halt();
  EXPECT_EQ(dbg_.reg(5), 0x55555555u);
  const std::uint32_t pc = dbg_.reg(kRegPc);
  EXPECT_GE(pc, kCode);
  EXPECT_LT(pc, kCode + 6);
}

// --- Running code -----------------------------------------------------------------------

// The core executes at the RCC clock (reset: HSI, the RCC "clocks" sections of RM0008 /
// RM0316 / RM0090 / RM0385) and virtual time paces it: a 2-instruction loop makes at most one
// iteration per 2 cycles (no Cortex-M instruction takes less than one cycle) and, with ADDS 1 cycle
// and B at most 4 (TRMs "instruction timings"), at least one per 5; twice the time gives
// twice the iterations.
TEST_P(CortexMChip, LoopInSramRunsWithVirtualTime) {
  dbg_.prepare(kCode, {kAddsR0_1, kAddsR1_1, kBMinus4}, kStack);
  const std::uint64_t hz = board_.chip().reset_hz;
  const Picoseconds t0 = board_.now();
  dbg_.resume();
  board_.advance(kMillisecond);
  EXPECT_GE(board_.now(), t0 + kMillisecond);
  EXPECT_LT(board_.now(), t0 + kMillisecond + kMicrosecond) << "time overshoot";
  dbg_.halt();
  const std::uint32_t n1 = dbg_.reg(0);
  const std::uint32_t r1 = dbg_.reg(1);
  EXPECT_TRUE(r1 == n1 || r1 + 1 == n1) << "r1 follows r0: " << r1 << " vs " << n1;
  const std::uint64_t cycles = hz / 1000;
  EXPECT_LE(n1, cycles / 2 + 1);
  EXPECT_GE(n1, cycles / 5);
  // Halted: time passes, nothing executes.
  board_.advance(kMillisecond);
  EXPECT_EQ(dbg_.reg(0), n1);
  dbg_.resume();
  board_.advance(2 * kMillisecond);
  dbg_.halt();
  const std::uint32_t n3 = dbg_.reg(0);
  const double ratio = static_cast<double>(n3 - n1) / n1;
  EXPECT_NEAR(ratio, 2.0, 0.02);
}

// C1.6.2 C_STEP (C1.5, halting debug stepping): with C_HALT cleared and C_STEP set the core
// executes exactly one instruction and re-enters Debug state with DFSR.HALTED.
TEST_P(CortexMChip, StepExecutesExactlyOneInstruction) {
  dbg_.prepare(kCode, {kAddsR0_1, kAddsR1_1, kBMinus4}, kStack);
  dbg_.wr(kDfsr, kDfsrAll);
  dbg_.step();
  EXPECT_TRUE(dbg_.halted());
  EXPECT_EQ(dbg_.rd(kDfsr), kDfsrHalted);
  EXPECT_EQ(dbg_.reg(kRegPc), kCode + 2);
  EXPECT_EQ(dbg_.reg(0), 1u);
  EXPECT_EQ(dbg_.reg(1), 0u);
  dbg_.step();
  EXPECT_EQ(dbg_.reg(kRegPc), kCode + 4);
  EXPECT_EQ(dbg_.reg(1), 1u);
  dbg_.step();  // the branch
  EXPECT_EQ(dbg_.reg(kRegPc), kCode);
  EXPECT_EQ(dbg_.reg(0), 1u);
  // Steps do not depend on how much virtual time passes between them.
  board_.advance(kMillisecond);
  EXPECT_EQ(dbg_.reg(kRegPc), kCode);
  for (int i = 0; i < 30; ++i)
    dbg_.step();
  EXPECT_EQ(dbg_.reg(0), 11u);  // 30 steps = 10 iterations of 3 instructions
  EXPECT_EQ(dbg_.reg(1), 11u);
  EXPECT_EQ(dbg_.reg(kRegPc), kCode);
}

// C1.5 (debug events) / A7.7 BKPT: BKPT with halting debug enabled enters Debug state without
// executing the instruction: DFSR.BKPT, DebugReturnAddress = the BKPT's address.
TEST_P(CortexMChip, BkptInstructionHaltsAtItself) {
  dbg_.prepare(kCode + 0x100, {kMovsR0_5, kBkpt1, kMovsR0_6, kBMinus4}, kStack);
  dbg_.resume();
  board_.advance(10 * kMicrosecond);
  ASSERT_TRUE(dbg_.halted());
  EXPECT_EQ(dbg_.rd(kDfsr), kDfsrBkpt);
  EXPECT_EQ(dbg_.reg(kRegPc), kCode + 0x102);
  EXPECT_EQ(dbg_.reg(0), 5u);
  // Resuming at the BKPT hits it again: nothing advances.
  dbg_.wr(kDfsr, kDfsrAll);
  dbg_.resume();
  board_.advance(10 * kMicrosecond);
  ASSERT_TRUE(dbg_.halted());
  EXPECT_EQ(dbg_.rd(kDfsr), kDfsrBkpt);
  EXPECT_EQ(dbg_.reg(kRegPc), kCode + 0x102);
  // A debugger moves the PC past it.
  dbg_.set_reg(kRegPc, kCode + 0x104);
  dbg_.step();
  EXPECT_EQ(dbg_.reg(0), 6u);
}

// B1.5 (lockup) / B1.5.5: with erased flash the reset vector is 0xFFFFFFFF; execution faults,
// the HardFault vector is unusable too and the core locks up (S_LOCKUP, C1.6.2). A halt
// request takes it out of lockup into Debug state (C1.5).
TEST_P(CortexMChip, BlankFlashLocksUpAndHaltRecovers) {
  dbg_.rd(kDhcsr);
  board_.advance(100 * kMicrosecond);
  const std::uint32_t v = dbg_.rd(kDhcsr);
  EXPECT_NE(v & kSLockup, 0u);
  EXPECT_EQ(v & kSHalt, 0u);
  dbg_.halt();
  EXPECT_EQ(dbg_.rd(kDhcsr) & kSLockup, 0u);
  // From Debug state the core runs code the debugger loaded.
  dbg_.prepare(kCode, {kMovsR0_5, kBkpt1}, kStack);
  dbg_.resume();
  board_.advance(10 * kMicrosecond);
  ASSERT_TRUE(dbg_.halted());
  EXPECT_EQ(dbg_.reg(0), 5u);
}

// C1.6.2 S_SLEEP: after WFI with no wake-up event the core sleeps; a halt request takes it
// into Debug state with DFSR.HALTED and the WFI complete (B1.5, power management: the return
// address is the next instruction); resuming continues after it.
TEST_P(CortexMChip, WfiSleepsUntilHalted) {
  constexpr std::uint16_t kWfi = 0xBF30;
  dbg_.prepare(kCode, {kMovsR0_5, kWfi, kMovsR0_6, 0xE7FE /* B . */}, kStack);
  dbg_.resume();
  board_.advance(100 * kMicrosecond);
  std::uint32_t v = dbg_.rd(kDhcsr);
  EXPECT_NE(v & kSSleep, 0u);
  EXPECT_EQ(v & kSHalt, 0u);
  board_.advance(kMillisecond);
  EXPECT_NE(dbg_.rd(kDhcsr) & kSSleep, 0u) << "no interrupt source: still asleep";
  dbg_.halt();
  v = dbg_.rd(kDhcsr);
  EXPECT_EQ(v & kSSleep, 0u);
  EXPECT_EQ(dbg_.rd(kDfsr), kDfsrHalted);
  EXPECT_EQ(dbg_.reg(0), 5u);
  EXPECT_EQ(dbg_.reg(kRegPc), kCode + 4);
  dbg_.resume();
  board_.advance(100 * kMicrosecond);
  dbg_.halt();
  EXPECT_EQ(dbg_.reg(0), 6u);
  EXPECT_EQ(dbg_.reg(kRegPc), kCode + 6);
}

// The debugger rewrites code the core has already executed (a new flash loader, a patched
// instruction): the core runs the new instructions, not a stale copy. ADDS r0,#1 becomes
// ADDS r0,#2 (T2, imm8 = 2).
TEST_P(CortexMChip, RewrittenSramCodeTakesEffect) {
  dbg_.prepare(kCode, {kAddsR0_1, kAddsR1_1, kBMinus4}, kStack);
  dbg_.resume();
  board_.advance(100 * kMicrosecond);
  dbg_.halt();
  ASSERT_GT(dbg_.reg(0), 10u);
  dbg_.load_thumb(kCode, {0x3002});
  dbg_.set_reg(0, 0);
  dbg_.set_reg(1, 0);
  dbg_.set_reg(kRegPc, kCode);
  dbg_.resume();
  board_.advance(100 * kMicrosecond);
  dbg_.halt();
  const std::uint32_t r0 = dbg_.reg(0);
  const std::uint32_t r1 = dbg_.reg(1);
  EXPECT_GT(r1, 10u);
  EXPECT_TRUE(r0 == 2 * r1 || r0 == 2 * r1 + 2) << r0 << " vs " << r1;
}

// ARMv7-M ARM C1.8, DWT_PCSR (Program Counter Sample Register): while the core
// runs it returns the address of a recently executed instruction; in Debug state it reads
// 0xFFFFFFFF.
TEST_P(CortexMChip, PcsrSamplesThePc) {
  dbg_.prepare(kCode, {kAddsR0_1, kAddsR1_1, kBMinus4}, kStack);
  EXPECT_EQ(dbg_.rd(kDwtPcsr), 0xFFFFFFFFu);
  dbg_.wr(kDemcr, kTrcEna);
  dbg_.resume();
  for (int i = 0; i < 5; ++i) {
    board_.advance(7 * kMicrosecond);
    const std::uint32_t pc = dbg_.rd(kDwtPcsr);
    EXPECT_TRUE(pc == kCode || pc == kCode + 2 || pc == kCode + 4) << std::hex << pc;
  }
}

// --- FPB --------------------------------------------------------------------------------

// C1.11.3 FP_CTRL: NUM_CODE[14:12,7:4], NUM_LIT[11:8], REV[31:28]. Cortex-M3/M4 TRMs:
// FPB revision 0 with 6 instruction and 2 literal comparators; Cortex-M7 TRM: revision 1
// with 8 instruction comparators and no literal comparators.
TEST_P(CortexMChip, FpCtrlDescribesComparators) {
  const std::uint32_t v = dbg_.rd(kFpCtrl);
  EXPECT_EQ(v & kFpEnable, 0u) << "disabled out of reset";
  const std::uint32_t num_code = ((v >> 8) & 0x70) | ((v >> 4) & 0xF);
  const std::uint32_t num_lit = (v >> 8) & 0xF;
  if (m7()) {
    EXPECT_EQ(v >> 28, 1u);
    EXPECT_EQ(num_code, 8u);
    EXPECT_EQ(num_lit, 0u);
  } else {
    EXPECT_EQ(v >> 28, 0u);
    EXPECT_EQ(num_code, 6u);
    EXPECT_EQ(num_lit, 2u);
  }
}

// C1.11.3: FP_CTRL writes are ignored unless KEY (bit 1) is 1; KEY reads as zero.
TEST_P(CortexMChip, FpCtrlNeedsKey) {
  dbg_.wr(kFpCtrl, kFpEnable);
  EXPECT_EQ(dbg_.rd(kFpCtrl) & kFpEnable, 0u);
  dbg_.wr(kFpCtrl, kFpKey | kFpEnable);
  EXPECT_EQ(dbg_.rd(kFpCtrl) & (kFpKey | kFpEnable), kFpEnable);
  dbg_.wr(kFpCtrl, 0);  // no KEY: ignored, stays enabled
  EXPECT_EQ(dbg_.rd(kFpCtrl) & kFpEnable, kFpEnable);
  dbg_.wr(kFpCtrl, kFpKey);
  EXPECT_EQ(dbg_.rd(kFpCtrl) & kFpEnable, 0u);
}

// The FP_COMP value that breaks on the instruction at `addr`: revision 0 (C1.11.5,
// FP_COMPn) takes the word address in COMP[28:2] and REPLACE[31:30] = 01 for the lower
// and 10 for the upper half-word; revision 1 takes BPADDR[31:1] with BE in bit 0.
std::uint32_t fp_comp_for(bool rev1, std::uint32_t addr) {
  if (rev1) return addr | 1u;
  const std::uint32_t replace = (addr & 2) ? 2u : 1u;
  return (replace << 30) | (addr & 0x1FFFFFFC) | 1u;
}

// C1.11 / C1.5: an enabled FPB comparator matching an instruction fetch from the Code
// region halts before that instruction executes, with DFSR.BKPT.
TEST_P(CortexMChip, FpbBreakpointInFlashHalts) {
  dbg_.halt();
  ASSERT_NO_FATAL_FAILURE(dbg_.program_flash(0, flash_loop_image()));
  dbg_.reset_halt();
  ASSERT_EQ(dbg_.reg(kRegPc), kFlashLoop);
  dbg_.wr(kDfsr, kDfsrAll);
  dbg_.wr(kFpComp0 + 4, fp_comp_for(m7(), kFlashLoop + 4));  // the B
  dbg_.wr(kFpCtrl, kFpKey | kFpEnable);
  dbg_.resume();
  ASSERT_TRUE(dbg_.run_until_halted(kMillisecond));
  EXPECT_EQ(dbg_.rd(kDfsr), kDfsrBkpt);
  EXPECT_EQ(dbg_.reg(kRegPc), kFlashLoop + 4);
  EXPECT_EQ(dbg_.reg(0), 1u);
  EXPECT_EQ(dbg_.reg(1), 1u);
  // With the FPB disabled the same comparator no longer breaks.
  dbg_.wr(kFpCtrl, kFpKey);
  dbg_.resume();
  board_.advance(100 * kMicrosecond);
  EXPECT_FALSE(dbg_.halted());
  dbg_.halt();
  EXPECT_GT(dbg_.reg(0), 10u);
}

// C1.11.5 FP_COMPn (FPB revision 0, Cortex-M3/M4): REPLACE = 10 breaks on the upper
// half-word of the compared word only, 01 on the lower only, 11 on both.
TEST_P(CortexMFpbRev0Chip, FpbReplaceSelectsHalfWord) {
  dbg_.halt();
  ASSERT_NO_FATAL_FAILURE(dbg_.program_flash(0, flash_loop_image()));
  dbg_.reset_halt();
  ASSERT_EQ(dbg_.reg(kRegPc), kFlashLoop);
  dbg_.wr(kFpCtrl, kFpKey | kFpEnable);

  // Upper half (0x0800000A, ADDS r1): the lower half at the current PC runs first.
  dbg_.wr(kFpComp0, (2u << 30) | kFlashLoop | 1u);
  dbg_.wr(kDfsr, kDfsrAll);
  dbg_.resume();
  ASSERT_TRUE(dbg_.run_until_halted(kMillisecond));
  EXPECT_EQ(dbg_.rd(kDfsr), kDfsrBkpt);
  EXPECT_EQ(dbg_.reg(kRegPc), kFlashLoop + 2);
  EXPECT_EQ(dbg_.reg(0), 1u);
  EXPECT_EQ(dbg_.reg(1), 0u);

  // Lower half (0x08000008, ADDS r0): ADDS r1 and B run, then the break.
  dbg_.wr(kFpComp0, (1u << 30) | kFlashLoop | 1u);
  dbg_.resume();
  ASSERT_TRUE(dbg_.run_until_halted(kMillisecond));
  EXPECT_EQ(dbg_.reg(kRegPc), kFlashLoop);
  EXPECT_EQ(dbg_.reg(0), 1u);
  EXPECT_EQ(dbg_.reg(1), 1u);

  // Both halves: from the B, the loop head breaks; placed on the upper half, that breaks.
  dbg_.wr(kFpComp0, (3u << 30) | kFlashLoop | 1u);
  dbg_.set_reg(kRegPc, kFlashLoop + 4);
  dbg_.resume();
  ASSERT_TRUE(dbg_.run_until_halted(kMillisecond));
  EXPECT_EQ(dbg_.reg(kRegPc), kFlashLoop);
  EXPECT_EQ(dbg_.reg(0), 1u);
  dbg_.set_reg(kRegPc, kFlashLoop + 2);
  dbg_.wr(kDfsr, kDfsrAll);
  dbg_.resume();
  ASSERT_TRUE(dbg_.run_until_halted(kMillisecond));
  EXPECT_EQ(dbg_.rd(kDfsr), kDfsrBkpt);
  EXPECT_EQ(dbg_.reg(kRegPc), kFlashLoop + 2);
  EXPECT_EQ(dbg_.reg(1), 1u);

  // A disabled comparator (ENABLE = 0) never breaks.
  dbg_.wr(kFpComp0, (3u << 30) | kFlashLoop);
  dbg_.resume();
  board_.advance(100 * kMicrosecond);
  EXPECT_FALSE(dbg_.halted());
}

// Cortex-M7 TRM (FPB revision 1, ARMv7-M ARM C1.11.5 for FP_CTRL.REV = 1): BPADDR[31:1]
// names any half-word, including the upper half of a word.
TEST_P(CortexMFpbRev1Chip, FpbRevision1BreaksOnHalfWordAddress) {
  dbg_.halt();
  ASSERT_NO_FATAL_FAILURE(dbg_.program_flash(0, flash_loop_image()));
  dbg_.reset_halt();
  dbg_.wr(kFpComp0 + 4 * 7, (kFlashLoop + 2) | 1u);  // the last of the 8 comparators
  dbg_.wr(kFpCtrl, kFpKey | kFpEnable);
  dbg_.wr(kDfsr, kDfsrAll);
  dbg_.resume();
  ASSERT_TRUE(dbg_.run_until_halted(kMillisecond));
  EXPECT_EQ(dbg_.rd(kDfsr), kDfsrBkpt);
  EXPECT_EQ(dbg_.reg(kRegPc), kFlashLoop + 2);
  EXPECT_EQ(dbg_.reg(0), 1u);
  EXPECT_EQ(dbg_.reg(1), 0u);
}

// --- DWT --------------------------------------------------------------------------------

// C1.8 DWT_CTRL.NUMCOMP[31:28]: 4 comparators on the Cortex-M3, M4 and M7 (TRMs).
TEST_P(CortexMChip, DwtCtrlReportsFourComparators) {
  EXPECT_EQ(dbg_.rd(kDwtCtrl) >> 28, 4u);
  EXPECT_EQ(dbg_.rd(kDwtCtrl) & 1u, 0u) << "CYCCNTENA off out of reset";
  dbg_.wr(kDwtCtrl, 0);
  EXPECT_EQ(dbg_.rd(kDwtCtrl) >> 28, 4u) << "NUMCOMP is read-only";
}

// C1.8 DWT_CYCCNT: with DEMCR.TRCENA and DWT_CTRL.CYCCNTENA it counts core clock cycles
// while the core runs, and does not count in Debug state.
TEST_P(CortexMChip, CyccntCountsCoreCycles) {
  dbg_.prepare(kCode, {kAddsR0_1, kAddsR1_1, kBMinus4}, kStack);
  dbg_.wr(kDemcr, kTrcEna);
  dbg_.wr(kDwtCyccnt, 0);
  dbg_.wr(kDwtCtrl, dbg_.rd(kDwtCtrl) | 1u);
  const Picoseconds t0 = board_.now();
  dbg_.resume();
  board_.advance(kMillisecond);
  dbg_.halt();
  const Picoseconds elapsed = board_.now() - t0;
  const std::uint32_t cyc = dbg_.rd(kDwtCyccnt);
  const std::uint64_t expect = elapsed * board_.chip().reset_hz / kSecond;
  EXPECT_NEAR(static_cast<double>(cyc), static_cast<double>(expect), 2.0);
  board_.advance(kMillisecond);
  EXPECT_EQ(dbg_.rd(kDwtCyccnt), cyc) << "halted: no cycles";
}

// C1.8 DWT_FUNCTIONn = 0b0110 (watchpoint on write) with halting debug: a write to the
// compared address halts the core (C1.5) with DFSR.DWTTRAP; FUNCTION.MATCHED[24] is set
// and cleared by reading DWT_FUNCTION. The demo firmware writes demo_counter (0x20002000)
// once per loop, so each halt sees the next count.
TEST_P(CortexMChip, WriteWatchpointOnDemoCounter) {
  const std::vector<std::uint8_t> image = demo_image(GetParam());
  ASSERT_FALSE(image.empty());
  dbg_.halt();
  ASSERT_NO_FATAL_FAILURE(dbg_.program_flash(0, image));
  dbg_.reset_halt();
  dbg_.wr(kDemcr, kTrcEna);
  dbg_.resume();
  board_.advance(2 * kMillisecond);
  ASSERT_FALSE(dbg_.halted());
  ASSERT_GT(dbg_.rd(0x20002000), 0u) << "demo running";

  dbg_.wr(kDwtComp0, 0x20002000);
  dbg_.wr(kDwtMask0, 0);
  dbg_.wr(kDwtFunction0, 6);
  dbg_.wr(kDfsr, kDfsrAll);
  ASSERT_TRUE(dbg_.run_until_halted(kMillisecond));
  EXPECT_EQ(dbg_.rd(kDfsr), kDfsrDwtTrap);
  const std::uint32_t count = dbg_.rd(0x20002000);
  EXPECT_EQ(dbg_.rd(kDwtFunction0), kDwtMatched | 6u);
  EXPECT_EQ(dbg_.rd(kDwtFunction0), 6u) << "MATCHED cleared by the read";
  const std::uint32_t pc = dbg_.reg(kRegPc);
  EXPECT_GE(pc, 0x08000000u);
  EXPECT_LT(pc, 0x08000000u + image.size());

  dbg_.wr(kDfsr, kDfsrAll);
  dbg_.resume();
  ASSERT_TRUE(dbg_.run_until_halted(kMillisecond));
  EXPECT_EQ(dbg_.rd(kDfsr), kDfsrDwtTrap);
  EXPECT_EQ(dbg_.rd(0x20002000), count + 1);
  EXPECT_NE(dbg_.rd(kDwtFunction0) & kDwtMatched, 0u);

  // A read watchpoint (FUNCTION = 0b0101) on a word the demo only writes never matches.
  dbg_.wr(kDwtComp0, 0x20002004 + 4 * 15);
  dbg_.wr(kDwtFunction0, 5);
  dbg_.resume();
  board_.advance(kMillisecond);
  EXPECT_FALSE(dbg_.halted());
  const std::uint32_t later = dbg_.rd(0x20002000);
  EXPECT_GT(later, count + 1);
}

// The debug logic is reset by a power-on reset only (ARMv7-M ARM B1.5.5 / C1.6: a Local
// or system reset leaves DHCSR.C_DEBUGEN, DEMCR, the FPB and the DWT as they were). So a
// breakpoint on the reset handler placed before SYSRESETREQ halts the restarted core there:
// OpenOCD's "reset halt" fallback when vector catch is not used.
TEST_P(CortexMChip, DebugLogicSurvivesSystemReset) {
  const std::vector<std::uint8_t> image = flash_loop_image();
  dbg_.halt();
  ASSERT_NO_FATAL_FAILURE(dbg_.program_flash(0, image));
  const std::uint32_t comp = fp_comp_for(m7(), kFlashLoop + 2);
  dbg_.wr(kFpComp0 + 8, comp);
  dbg_.wr(kFpCtrl, kFpKey | kFpEnable);
  dbg_.wr(kDwtComp0, 0x20001234);
  dbg_.wr(kDwtFunction0, 5);
  dbg_.wr(kDemcr, kTrcEna);
  dbg_.wr(kDfsr, kDfsrAll);
  dbg_.wr(kAircr, kVectKey | kSysResetReq);
  EXPECT_NE(dbg_.rd(kDhcsr) & kCDebugEn, 0u);
  EXPECT_EQ(dbg_.rd(kDemcr), kTrcEna);
  EXPECT_EQ(dbg_.rd(kFpComp0 + 8), comp);
  EXPECT_EQ(dbg_.rd(kFpCtrl) & kFpEnable, kFpEnable);
  EXPECT_EQ(dbg_.rd(kDwtComp0), 0x20001234u);
  EXPECT_EQ(dbg_.rd(kDwtFunction0) & 0xF, 5u);
  ASSERT_TRUE(dbg_.run_until_halted(kMillisecond));
  EXPECT_EQ(dbg_.rd(kDfsr), kDfsrBkpt);
  EXPECT_EQ(dbg_.reg(kRegPc), kFlashLoop + 2);
  EXPECT_EQ(dbg_.reg(0), 1u);
  EXPECT_EQ(dbg_.reg(kRegMsp), kStack);
}

INSTANTIATE_TEST_SUITE_P(CortexM, CortexMChip, ::testing::ValuesIn(kAllChips), chip_name);
INSTANTIATE_TEST_SUITE_P(CortexM, CortexMFpuChip,
                         ::testing::Values("stm32f303vc", "stm32f407vg", "stm32f746ng"), chip_name);
INSTANTIATE_TEST_SUITE_P(CortexM, CortexMFpbRev0Chip,
                         ::testing::Values("stm32f103c8", "stm32f303vc", "stm32f407vg"), chip_name);
INSTANTIATE_TEST_SUITE_P(CortexM, CortexMFpbRev1Chip, ::testing::Values("stm32f746ng"), chip_name);

// --- Single-chip tests ------------------------------------------------------------------

// B3.2.6 AIRCR: reads return VECTKEYSTAT 0xFA05 in [31:16]; writes without VECTKEY
// (0x05FA) are ignored, so PRIGROUP keeps its value.
TEST(CortexM, AircrKeyAndPrigroup) {
  Board board = make_board("stm32f407vg");
  Debugger dbg(board);
  EXPECT_EQ(dbg.rd(kAircr), 0xFA050000u);
  dbg.wr(kAircr, kVectKey | (5u << 8));
  EXPECT_EQ(dbg.rd(kAircr), 0xFA050500u);
  dbg.wr(kAircr, 3u << 8);
  EXPECT_EQ(dbg.rd(kAircr), 0xFA050500u);
  // PRIGROUP belongs to the SCB, which a system reset returns to its reset value.
  dbg.wr(kDhcsr, kDbgKey | kCDebugEn | kCHalt);
  dbg.wr(kAircr, kVectKey | (5u << 8) | kSysResetReq);
  EXPECT_EQ(dbg.rd(kAircr), 0xFA050000u);
}

// C1.6.5 DEMCR keeps VC_CORERESET and TRCENA as written; DFSR is write-one-to-clear per
// bit (C1.6.1).
TEST(CortexM, DemcrAndDfsrBits) {
  Board board = make_board("stm32f103c8");
  Debugger dbg(board);
  dbg.wr(kDemcr, kTrcEna | kVcCoreReset);
  EXPECT_EQ(dbg.rd(kDemcr), kTrcEna | kVcCoreReset);
  dbg.reset_halt();
  dbg.wr(kDhcsr, kDbgKey | kCDebugEn | kCHalt);  // halt request on top of the catch
  const std::uint32_t dfsr = dbg.rd(kDfsr);
  EXPECT_NE(dfsr & kDfsrVCatch, 0u);
  dbg.wr(kDfsr, kDfsrHalted);
  EXPECT_EQ(dbg.rd(kDfsr), dfsr & ~kDfsrHalted);
  dbg.wr(kDfsr, kDfsrVCatch);
  EXPECT_EQ(dbg.rd(kDfsr) & kDfsrVCatch, 0u);
}

}  // namespace
}  // namespace probefarm::sim::test
