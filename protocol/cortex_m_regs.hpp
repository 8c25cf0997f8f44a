#pragma once
// Cortex-M debug register addresses and bits shared by cortex_m.cpp and
// cortex_m_debug.cpp. ARMv7-M ARM (ARM DDI 0403E.b): B3.2 (SCB), C1.6 (debug registers),
// C1.8 (DWT), C1.11 (FPB); ARMv6-M ARM (ARM DDI 0419) C1 uses the same addresses.
#include <cstdint>

namespace probefarm::protocol::cortex_m_regs {

// B3.2.2 SCB.
constexpr std::uint32_t kCpuid = 0xE000ED00;
constexpr std::uint32_t kAircr = 0xE000ED0C;
constexpr std::uint32_t kDfsr = 0xE000ED30;
// C1.6 debug registers.
constexpr std::uint32_t kDhcsr = 0xE000EDF0;
constexpr std::uint32_t kDcrsr = 0xE000EDF4;
constexpr std::uint32_t kDcrdr = 0xE000EDF8;
constexpr std::uint32_t kDemcr = 0xE000EDFC;
// B4.6 floating-point feature register MVFR0.
constexpr std::uint32_t kMvfr0 = 0xE000EF40;

// ARM IHI 0031 ADIv5.2 C2.6 "BDn": MEM-AP banked data registers BD0..BD3 at AP addresses
// 0x10..0x1C access TAR[31:4] with bits [3:2] = n and never change TAR. With TAR anywhere in
// 0xE000EDF0..0xE000EDFF they reach DHCSR, DCRSR, DCRDR and DEMCR in one AP access each,
// with no TAR write between them (the debug-register block is 16-byte aligned, C1.6).
constexpr std::uint32_t kDebugBlock = 0xE000EDF0;
constexpr std::uint8_t kBdDhcsr = 0x10;
constexpr std::uint8_t kBdDcrsr = 0x14;
constexpr std::uint8_t kBdDcrdr = 0x18;

// C1.6.2 DHCSR: writes need DBGKEY in [31:16].
constexpr std::uint32_t kDbgKey = 0xA05F0000;
constexpr std::uint32_t kCDebugEn = 1u << 0;
constexpr std::uint32_t kCHalt = 1u << 1;
constexpr std::uint32_t kCStep = 1u << 2;
constexpr std::uint32_t kCMaskInts = 1u << 3;
constexpr std::uint32_t kSRegRdy = 1u << 16;
constexpr std::uint32_t kSHalt = 1u << 17;
constexpr std::uint32_t kSSleep = 1u << 18;
constexpr std::uint32_t kSLockup = 1u << 19;
constexpr std::uint32_t kSResetSt = 1u << 25;

// C1.6.1 DFSR (write one to clear).
constexpr std::uint32_t kDfsrHalted = 1u << 0;
constexpr std::uint32_t kDfsrBkpt = 1u << 1;
constexpr std::uint32_t kDfsrDwtTrap = 1u << 2;
constexpr std::uint32_t kDfsrVCatch = 1u << 3;
constexpr std::uint32_t kDfsrExternal = 1u << 4;
constexpr std::uint32_t kDfsrAll = 0x1F;

// C1.6.3 DCRSR.REGWnR.
constexpr std::uint32_t kRegWnR = 1u << 16;

// C1.6.5 DEMCR.
constexpr std::uint32_t kVcCoreReset = 1u << 0;
constexpr std::uint32_t kTrcEna = 1u << 24;

// B3.2.6 AIRCR: VECTKEY in [31:16] on writes; PRIGROUP [10:8] kept.
constexpr std::uint32_t kVectKey = 0x05FA0000;
constexpr std::uint32_t kVectReset = 1u << 0;
constexpr std::uint32_t kSysResetReq = 1u << 2;
constexpr std::uint32_t kPrigroupMask = 0x700;

// C1.11 FPB: FP_CTRL, FP_COMPn.
constexpr std::uint32_t kFpCtrl = 0xE0002000;
constexpr std::uint32_t kFpComp0 = 0xE0002008;
constexpr std::uint32_t kFpKey = 1u << 1;
constexpr std::uint32_t kFpEnable = 1u << 0;

// C1.8 DWT: DWT_CTRL, and per comparator n COMP/MASK/FUNCTION at 0x20 + 16n.
constexpr std::uint32_t kDwtCtrl = 0xE0001000;
constexpr std::uint32_t kDwtComp0 = 0xE0001020;
constexpr std::uint32_t kDwtStride = 16;

}  // namespace probefarm::protocol::cortex_m_regs
