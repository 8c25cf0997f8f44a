// Cortex-M hardware breakpoints (FPB, ARMv7-M ARM C1.11) and watchpoints (DWT, C1.8).
#include <cstdio>
#include <string>

#include "probe/bytes.hpp"
#include "probe/error.hpp"
#include "protocol/cortex_m.hpp"
#include "protocol/cortex_m_regs.hpp"

namespace probefarm::protocol {

using namespace cortex_m_regs;
using probe::hex32;

namespace {

// C1.11.4 FP_COMPn, FPB revision 1: COMP [28:2] word address in the Code region,
// REPLACE [31:30] = 0b01 break on the lower halfword, 0b10 on the upper, ENABLE [0].
constexpr std::uint32_t kReplaceLower = 1u << 30;
constexpr std::uint32_t kReplaceUpper = 2u << 30;
constexpr std::uint32_t kCodeRegionEnd = 0x20000000;

// C1.8.17 DWT_FUNCTIONn (ARMv7-M): 0b0101 watchpoint on read, 0b0110 on write, 0b0111
// on read or write, all generating a debug event (a halt with halting debug enabled).
std::uint32_t dwt_function(WatchKind kind) {
  switch (kind) {
    case WatchKind::read:
      return 0x5;
    case WatchKind::write:
      return 0x6;
    case WatchKind::access:
      return 0x7;
  }
  return 0x7;
}

}  // namespace

std::uint32_t CortexM::fp_comp_value(std::uint32_t address) const {
  if (fpb_rev2_) {
    // FPB revision 2 (Cortex-M7 TRM DDI 0489, ARMv8-M ARM D1.2 FP_COMPn): BPADDR [31:1],
    // BE [0] enables the breakpoint.
    return (address & ~1u) | 1u;
  }
  return (address & 0x1FFFFFFC) | ((address & 2) ? kReplaceUpper : kReplaceLower) | 1u;
}

void CortexM::fpb_prepare() {
  if (!examined_) examine();
  if (!fpb_enabled_) {
    // C1.11.3: FP_CTRL writes are ignored unless KEY (bit 1) is 1.
    mem_.write32(kFpCtrl, kFpKey | kFpEnable);
    fpb_enabled_ = true;
  }
}

void CortexM::set_breakpoint(std::uint32_t address) {
  fpb_prepare();
  address &= ~1u;
  if (!fpb_rev2_ && address >= kCodeRegionEnd) {
    throw Error(ErrorCategory::usage,
                "cannot break at " + hex32(address) +
                    ": this FPB (revision 1) only covers the "
                    "Code region below 0x20000000",
                "use a breakpoint in flash, or a BKPT instruction in RAM");
  }
  for (unsigned i = 0; i < id_.breakpoints; ++i) {
    if (breakpoint_used_[i] && breakpoints_[i] == address) return;
  }
  for (unsigned i = 0; i < id_.breakpoints; ++i) {
    if (breakpoint_used_[i]) continue;
    mem_.write32(kFpComp0 + 4 * i, fp_comp_value(address));
    breakpoint_used_[i] = true;
    breakpoints_[i] = address;
    return;
  }
  throw Error(ErrorCategory::usage,
              "no free breakpoint for " + hex32(address) + ": all " +
                  std::to_string(id_.breakpoints) + " FPB comparators are in use",
              "clear a breakpoint first");
}

void CortexM::clear_breakpoint(std::uint32_t address) {
  address &= ~1u;
  for (unsigned i = 0; i < id_.breakpoints; ++i) {
    if (breakpoint_used_[i] && breakpoints_[i] == address) {
      mem_.write32(kFpComp0 + 4 * i, 0);
      breakpoint_used_[i] = false;
    }
  }
}

// Resuming or stepping from an address with an FPB breakpoint would stop there again
// without executing anything: step that one instruction with its comparator off.
bool CortexM::step_over_breakpoint() {
  bool any = false;
  for (unsigned i = 0; i < id_.breakpoints; ++i)
    any = any || breakpoint_used_[i];
  if (!any) return false;
  const std::uint32_t pc = read_register(CoreRegister::pc) & ~1u;
  for (unsigned i = 0; i < id_.breakpoints; ++i) {
    if (!breakpoint_used_[i] || breakpoints_[i] != pc) continue;
    mem_.write32(kFpComp0 + 4 * i, 0);
    write_dhcsr(kCStep);
    wait_halted(std::chrono::milliseconds(100), "step over breakpoint");
    mem_.write32(kFpComp0 + 4 * i, fp_comp_value(pc));
    return true;
  }
  return false;
}

void CortexM::set_watchpoint(std::uint32_t address, std::uint32_t size, WatchKind kind) {
  if (!examined_) examine();
  if (armv8m_) {
    throw Error(ErrorCategory::usage, "watchpoints on " + id_.name + " are not supported",
                "ARMv8-M DWT comparators use a different encoding");
  }
  if (size == 0 || (size & (size - 1)) != 0 || (address & (size - 1)) != 0) {
    throw Error(ErrorCategory::usage,
                "watchpoint size " + std::to_string(size) + " at " + hex32(address) +
                    ": the size must be a power of two and the address aligned to it");
  }
  unsigned mask_bits = 0;
  while ((1u << mask_bits) < size)
    ++mask_bits;
  for (unsigned i = 0; i < id_.watchpoints; ++i) {
    if (watchpoint_used_[i] && watchpoints_[i] == address) clear_watchpoint(address);
  }
  for (unsigned i = 0; i < id_.watchpoints; ++i) {
    if (watchpoint_used_[i]) continue;
    // C1.6.5 DEMCR.TRCENA powers the DWT.
    const std::uint32_t demcr = mem_.read32(kDemcr);
    if (!(demcr & kTrcEna)) mem_.write32(kDemcr, demcr | kTrcEna);
    const std::uint32_t base = kDwtComp0 + kDwtStride * i;
    // C1.8.15/16: COMP holds the address, MASK the number of ignored low address bits.
    mem_.queue_write32(base + 0x0, address);
    mem_.queue_write32(base + 0x4, mask_bits);
    mem_.queue_write32(base + 0x8, dwt_function(kind));
    mem_.flush();
    watchpoint_used_[i] = true;
    watchpoints_[i] = address;
    return;
  }
  throw Error(ErrorCategory::usage,
              "no free watchpoint for " + hex32(address) + ": all " +
                  std::to_string(id_.watchpoints) + " DWT comparators are in use",
              "clear a watchpoint first");
}

void CortexM::clear_watchpoint(std::uint32_t address) {
  for (unsigned i = 0; i < id_.watchpoints; ++i) {
    if (watchpoint_used_[i] && watchpoints_[i] == address) {
      // FUNCTION = 0 disables the comparator (C1.8.17).
      mem_.write32(kDwtComp0 + kDwtStride * i + 0x8, 0);
      watchpoint_used_[i] = false;
    }
  }
}

}  // namespace probefarm::protocol
