// Cortex-M core control: examine, halt/resume/step, core registers, reset, algorithm runs.
// Breakpoints and watchpoints are in cortex_m_debug.cpp. References: ARMv7-M ARM (ARM DDI
// 0403E.b) B3.2 and C1.6, ARMv6-M ARM (ARM DDI 0419) C1, ARMv8-M ARM (ARM DDI 0553).
#include <cstdio>
#include <string>
#include <vector>

#include "probe/bytes.hpp"
#include "probe/error.hpp"
#include "protocol/cortex_m.hpp"
#include "protocol/cortex_m_regs.hpp"

namespace probefarm::protocol {

using namespace cortex_m_regs;
using probe::hex32;

namespace {

using Clock = std::chrono::steady_clock;

// A poll loop's bound: the wall deadline, but always a few attempts so that a slow host
// (or a loaded CI machine) does not give up before the target had a chance to answer.
struct Deadline {
  explicit Deadline(std::chrono::milliseconds timeout) : end(Clock::now() + timeout) {}
  bool expired() {
    ++polls;
    return polls > 3 && Clock::now() > end;
  }
  Clock::time_point end;
  unsigned polls = 0;
};

// How long a register transfer may take (C1.6.3: S_REGRDY); a few core clocks normally.
constexpr auto kRegisterTimeout = std::chrono::milliseconds(100);
// How long nRST is held at most while we wait to see the core in reset.
constexpr auto kResetHold = std::chrono::milliseconds(100);

// B3.2.3 CPUID.PARTNO for Arm (implementer 0x41) cores, from the cores' TRMs.
const char* part_name(std::uint32_t partno) {
  switch (partno) {
    case 0xC20:
      return "Cortex-M0";
    case 0xC60:
      return "Cortex-M0+";
    case 0xC21:
      return "Cortex-M1";
    case 0xC23:
      return "Cortex-M3";
    case 0xC24:
      return "Cortex-M4";
    case 0xC27:
      return "Cortex-M7";
    case 0xD20:
      return "Cortex-M23";
    case 0xD21:
      return "Cortex-M33";
    case 0xD22:
      return "Cortex-M55";
    case 0xD23:
      return "Cortex-M85";
    case 0xD24:
      return "Cortex-M52";
    case 0xD31:
      return "Cortex-M35P";
    default:
      return nullptr;
  }
}

}  // namespace

CortexM::CortexM(MemAp& memory) : mem_(memory) {}

const CoreIdentity& CortexM::examine() {
  CoreIdentity id;
  std::uint32_t fp_ctrl = 0;
  std::uint32_t dwt_ctrl = 0;
  std::uint32_t dhcsr_now = 0;
  mem_.queue_read32(kCpuid, &id.cpuid);
  mem_.queue_read32(kFpCtrl, &fp_ctrl);
  mem_.queue_read32(kDwtCtrl, &dwt_ctrl);
  mem_.queue_read32(kDhcsr, &dhcsr_now);
  mem_.flush();

  // B3.2.3: Implementer [31:24], Variant [23:20], Architecture [19:16] (0xF: ARMv7-M or
  // ARMv8-M Mainline, 0xC: ARMv6-M or ARMv8-M Baseline), PartNo [15:4], Revision [3:0].
  const std::uint32_t implementer = id.cpuid >> 24;
  const std::uint32_t partno = (id.cpuid >> 4) & 0xFFF;
  const std::uint32_t architecture = (id.cpuid >> 16) & 0xF;
  const char* name = implementer == 0x41 ? part_name(partno) : nullptr;
  if (name == nullptr) {
    id.name = "unknown core (CPUID " + hex32(id.cpuid) + ")";
  } else {
    id.name = std::string(name) + " r" + std::to_string((id.cpuid >> 20) & 0xF) + "p" +
              std::to_string(id.cpuid & 0xF);
  }
  armv8m_ = implementer == 0x41 && (partno >> 8) == 0xD;
  // AIRCR.VECTRESET: ARMv7-M only (B3.2.6); reserved on ARMv6-M and ARMv8-M.
  has_vectreset_ = architecture == 0xF && !armv8m_;

  // C1.11.3 FP_CTRL: NUM_CODE = {NUM_CODE2 [14:12], NUM_CODE1 [7:4]}, REV [31:28]
  // (0: FPB revision 1, Code region only; 1: revision 2, any address).
  id.breakpoints = ((fp_ctrl >> 8) & 0x70) | ((fp_ctrl >> 4) & 0xF);
  fpb_rev2_ = (fp_ctrl >> 28) == 1;
  fpb_enabled_ = (fp_ctrl & kFpEnable) != 0;
  // C1.8.7 DWT_CTRL.NUMCOMP [31:28].
  id.watchpoints = dwt_ctrl >> 28;
  if (id.breakpoints > breakpoints_.size()) id.breakpoints = breakpoints_.size();
  if (id.watchpoints > watchpoints_.size()) id.watchpoints = watchpoints_.size();

  // B4.6 MVFR0: single-precision field [7:4] non-zero when an FPU is present. The
  // register does not exist on ARMv6-M / Baseline.
  if (architecture == 0xF) id.has_fpu = ((mem_.read32(kMvfr0) >> 4) & 0xF) != 0;

  // C1.6.2: C_DEBUGEN enables halting debug. Written only when clear: a write with C_HALT
  // clear would resume a halted core.
  if (!(dhcsr_now & kCDebugEn)) mem_.write32(kDhcsr, kDbgKey | kCDebugEn);
  id_ = id;
  examined_ = true;
  return id_;
}

std::uint32_t CortexM::dhcsr() {
  return mem_.read32(kDhcsr);
}

void CortexM::write_dhcsr(std::uint32_t control_bits) {
  mem_.write32(kDhcsr, kDbgKey | kCDebugEn | control_bits);
}

bool CortexM::is_halted() {
  return (dhcsr() & kSHalt) != 0;
}

HaltReason CortexM::halt_reason() {
  const std::uint32_t dfsr = mem_.read32(kDfsr);
  HaltReason r;
  r.halted_request = dfsr & kDfsrHalted;
  r.breakpoint = dfsr & kDfsrBkpt;
  r.watchpoint = dfsr & kDfsrDwtTrap;
  r.vector_catch = dfsr & kDfsrVCatch;
  r.external = dfsr & kDfsrExternal;
  return r;
}

void CortexM::wait_halted(std::chrono::milliseconds timeout, const char* what) {
  Deadline deadline(timeout);
  std::uint32_t status = 0;
  while (!((status = dhcsr()) & kSHalt)) {
    if (deadline.expired()) {
      throw Error(ErrorCategory::timeout,
                  std::string(what) + ": the core did not halt within " +
                      std::to_string(timeout.count()) + " ms (DHCSR " + hex32(status) + ")",
                  (status & kSResetSt) ? "the core is held in reset; check nRST"
                                       : "the core may be locked up or in a low-power state");
    }
  }
}

void CortexM::halt(std::chrono::milliseconds timeout) {
  // C1.6.2: C_HALT with C_DEBUGEN; the core enters Debug state at the next instruction
  // boundary (or at once from sleep / lockup).
  write_dhcsr(kCHalt);
  wait_halted(timeout, "halt");
}

void CortexM::resume() {
  ++runs_;
  bool any_breakpoint = false;
  for (unsigned i = 0; i < id_.breakpoints; ++i)
    any_breakpoint = any_breakpoint || breakpoint_used_[i];
  if (any_breakpoint && is_halted()) step_over_breakpoint();
  // DFSR holds the reasons of every halt until cleared: clear them so that the next
  // halt_reason() describes the next halt only.
  mem_.write32(kDfsr, kDfsrAll);
  write_dhcsr(0);
}

void CortexM::step() {
  ++runs_;
  require_halted("step");
  mem_.write32(kDfsr, kDfsrAll);
  if (step_over_breakpoint()) return;
  // C1.6.2: C_STEP with C_HALT clear from Debug state runs one instruction and halts.
  write_dhcsr(kCStep);
  wait_halted(kRegisterTimeout, "step");
}

void CortexM::require_halted(const char* what) {
  if (!is_halted()) {
    throw Error(ErrorCategory::usage, std::string(what) + " needs a halted core",
                "halt the core first");
  }
}

// --- Core registers (C1.6.3 DCRSR/DCRDR) --------------------------------------------------
//
// Every transfer is DCRDR/DCRSR/DHCSR through the MEM-AP's banked data registers (BD0..BD2,
// cortex_m_regs.hpp): one AP access each instead of a TAR write plus a DRW access. The
// DHCSR read that anchors TAR on the block also tells whether the core is halted, before
// any transfer is started. A probe with its own register commands (ST-Link READREG /
// WRITEREG, MemAp::native_single_access) pays a USB round trip per access instead of per
// batch, so there a register costs one command, not three.

void CortexM::queue_anchor(std::uint32_t* dhcsr) {
  // A word read of DHCSR through MemAp: CSW is word-sized and TAR lies in the block (the
  // read leaves it at DCRSR, same 16 bytes), whatever MemAp had cached before.
  mem_.queue_read32(kDhcsr, dhcsr);
}

void CortexM::queue_status_read(std::uint32_t* dhcsr) {
  mem_.queue_read32(kDhcsr, dhcsr);
}

bool CortexM::halted_in(std::uint32_t dhcsr) {
  return (dhcsr & kSHalt) != 0;
}

// C1.6.3: after a DCRSR write the debugger waits for S_REGRDY before the next DCRSR or
// DCRDR access. A transfer takes a few core clocks, one SWD access dozens of SWD clocks, so
// it is all but always done by the next access: the transfers are queued back to back with
// a DHCSR read after each, and the reads are checked after the flush. Where one was not
// ready the batch is redone from there one transfer at a time, polling S_REGRDY.
void CortexM::wait_register_ready(const char* what) {
  Deadline deadline(kRegisterTimeout);
  std::uint32_t status = 0;
  while (!((status = dhcsr()) & kSRegRdy)) {
    if (deadline.expired()) {
      throw Error(ErrorCategory::timeout,
                  std::string(what) + ": S_REGRDY never set (DHCSR " + hex32(status) + ")",
                  "the core may have left Debug state; halt it and retry");
    }
  }
}

void CortexM::read_registers_banked(std::span<const CoreRegister> regs,
                                    std::span<std::uint32_t> out) {
  if (probe::NativeMemory* native = mem_.native_single_access()) {
    for (std::size_t i = 0; i < regs.size(); ++i)
      out[i] = native->read_core_register(static_cast<std::uint8_t>(regs[i]));
    return;
  }
  const std::uint8_t ap = mem_.ap();
  Dap& dap = mem_.dap();
  std::vector<std::uint32_t> status(regs.size());
  for (std::size_t i = 0; i < regs.size(); ++i) {
    dap.queue_ap_write(ap, kBdDcrsr, static_cast<std::uint32_t>(regs[i]));
    dap.queue_ap_read(ap, kBdDhcsr, &status[i]);
    dap.queue_ap_read(ap, kBdDcrdr, &out[i]);
  }
  mem_.flush();
  for (std::size_t i = 0; i < regs.size(); ++i) {
    if (status[i] & kSRegRdy) continue;
    // A slow transfer: a later DCRSR write may have overtaken it. Redo one at a time
    // (MemAp accesses, all within the block, so TAR stays on it).
    for (std::size_t k = i; k < regs.size(); ++k) {
      const std::string what =
          "core register " + std::to_string(static_cast<unsigned>(regs[k])) + " read";
      wait_register_ready(what.c_str());
      mem_.write32(kDcrsr, static_cast<std::uint32_t>(regs[k]));
      wait_register_ready(what.c_str());
      out[k] = mem_.read32(kDcrdr);
    }
    return;
  }
}

void CortexM::write_registers_banked(std::span<const std::pair<CoreRegister, std::uint32_t>> regs) {
  if (probe::NativeMemory* native = mem_.native_single_access()) {
    for (const auto& [reg, value] : regs)
      native->write_core_register(static_cast<std::uint8_t>(reg), value);
    return;
  }
  const std::uint8_t ap = mem_.ap();
  Dap& dap = mem_.dap();
  std::vector<std::uint32_t> status(regs.size());
  for (std::size_t i = 0; i < regs.size(); ++i) {
    dap.queue_ap_write(ap, kBdDcrdr, regs[i].second);
    dap.queue_ap_write(ap, kBdDcrsr, static_cast<std::uint32_t>(regs[i].first) | kRegWnR);
    dap.queue_ap_read(ap, kBdDhcsr, &status[i]);
  }
  mem_.flush();
  for (std::size_t i = 0; i < regs.size(); ++i) {
    if (status[i] & kSRegRdy) continue;
    // A slow transfer: the next DCRDR write may have overtaken it. Redo one at a time.
    for (std::size_t k = i; k < regs.size(); ++k) {
      wait_register_ready("core register write");
      mem_.write32(kDcrdr, regs[k].second);
      mem_.write32(kDcrsr, static_cast<std::uint32_t>(regs[k].first) | kRegWnR);
    }
    // Ends with DHCSR reads: TAR is back on the block for what the caller queues next.
    wait_register_ready("core register write");
    return;
  }
}

std::uint32_t CortexM::read_register(CoreRegister reg) {
  std::uint32_t status = 0;
  queue_anchor(&status);
  mem_.flush();
  if (!(status & kSHalt)) {
    throw Error(ErrorCategory::usage, "reading a core register needs a halted core",
                "halt the core first");
  }
  std::uint32_t value = 0;
  read_registers_banked(std::span(&reg, 1), std::span(&value, 1));
  return value;
}

void CortexM::write_register(CoreRegister reg, std::uint32_t value) {
  const std::pair<CoreRegister, std::uint32_t> one[] = {{reg, value}};
  write_registers(one);
}

void CortexM::write_registers(std::span<const std::pair<CoreRegister, std::uint32_t>> regs) {
  // The halt check is a flush of its own: a transfer must not be started on a running core.
  std::uint32_t status = 0;
  queue_anchor(&status);
  mem_.flush();
  if (!(status & kSHalt)) {
    throw Error(ErrorCategory::usage, "writing a core register needs a halted core",
                "halt the core first");
  }
  write_registers_banked(regs);
}

// --- Reset -----------------------------------------------------------------------------------

void CortexM::reset(ResetKind kind, bool halt_after, std::chrono::milliseconds timeout) {
  if (!examined_) examine();
  ++runs_;
  if (kind == ResetKind::vectreset && !has_vectreset_) {
    throw Error(ErrorCategory::usage, "VECTRESET is not available on " + id_.name,
                "use a system reset (SYSRESETREQ) or a hardware reset");
  }
  Dap& dap = mem_.dap();
  Deadline deadline(timeout);

  // C1.6.5 DEMCR.VC_CORERESET: halt on the first instruction after the reset. Cleared
  // when not wanted, so that an earlier user of the core cannot make this reset halt.
  const std::uint32_t demcr = mem_.read32(kDemcr);
  const std::uint32_t demcr_during = halt_after ? (demcr | kVcCoreReset) : (demcr & ~kVcCoreReset);
  if (demcr_during != demcr) mem_.write32(kDemcr, demcr_during);
  mem_.write32(kDfsr, kDfsrAll);
  // S_RESET_ST is sticky until read (C1.6.2): this read clears it, so that a set bit
  // below means this reset.
  const std::uint32_t status_before = dhcsr();
  if (halt_after && !(status_before & kCDebugEn)) write_dhcsr(0);  // the catch needs C_DEBUGEN

  bool seen_reset = false;
  if (kind == ResetKind::hardware) {
    dap.probe().set_nrst(true);
    // Hold nRST until the core is seen in reset, bounded: some targets do not answer on
    // SWD while in reset, then the hold ends at the bound.
    Deadline hold(kResetHold);
    while (!seen_reset && !hold.expired()) {
      try {
        seen_reset = (dhcsr() & kSResetSt) != 0;
      } catch (const Error&) {
        dap.invalidate();
      }
    }
    if (halt_after) {
      // Some chips reset the debug registers with nRST: arm the catch again while held.
      try {
        write_dhcsr(0);
        mem_.write32(kDemcr, demcr_during);
      } catch (const Error&) {
      }
    }
    dap.probe().set_nrst(false);
  } else {
    const std::uint32_t bit = kind == ResetKind::vectreset ? kVectReset : kSysResetReq;
    std::uint32_t prigroup = 0;
    try {
      prigroup = mem_.read32(kAircr) & kPrigroupMask;
    } catch (const Error&) {
    }
    try {
      mem_.write32(kAircr, kVectKey | prigroup | bit);
    } catch (const Error&) {
      // The reset may cut the bus before the write is acknowledged; what follows checks
      // that the reset happened.
      dap.invalidate();
    }
  }

  // After a system or hardware reset the debug port may have lost its power-up request
  // (chips that reset the DP with the system): check CTRL/STAT and power up again.
  for (;;) {
    try {
      dap.ensure_powered();
      break;
    } catch (const Error&) {
      if (deadline.expired()) throw;
    }
  }
  mem_.dap().invalidate();

  // S_RESET_ST: seen set (the reset happened), then read clear (it is over).
  std::uint32_t status = 0;
  for (;;) {
    status = dhcsr();
    if (status & kSResetSt) {
      seen_reset = true;
    } else if (seen_reset) {
      break;
    }
    if (deadline.expired()) {
      throw Error(ErrorCategory::timeout,
                  seen_reset ? "the core stayed in reset (DHCSR " + hex32(status) + ")"
                             : "reset not observed: DHCSR.S_RESET_ST never set",
                  kind == ResetKind::hardware
                      ? "check that the probe's nRST line is wired to the target"
                      : "the target may ignore AIRCR resets; try a hardware reset");
    }
  }
  if (halt_after) {
    wait_halted(timeout, "reset halt");
  }
  // DEMCR as the caller had it: the catch we added is gone again.
  if (demcr_during != demcr) mem_.write32(kDemcr, demcr);
}

// --- Connect under reset ---------------------------------------------------------------------

std::uint32_t CortexM::catch_reset() {
  if (!examined_) examine();
  ++runs_;
  // C1.6.2: DHCSR is reset by a power-on reset only, and C1.6.5: DEMCR.VC_CORERESET makes
  // the core halt at the reset vector when C_DEBUGEN is set; both can be written while nRST
  // holds the core in reset (the debug domain is not reset by nRST, RM0090 6.1.2).
  const std::uint32_t demcr = mem_.read32(kDemcr);
  mem_.write32(kDhcsr, kDbgKey | kCDebugEn | kCHalt);
  mem_.write32(kDemcr, demcr | kVcCoreReset);
  mem_.write32(kDfsr, kDfsrAll);
  return demcr;
}

void CortexM::finish_reset_catch(std::uint32_t demcr_before, std::chrono::milliseconds timeout) {
  Deadline deadline(timeout);
  Dap& dap = mem_.dap();
  // Chips that reset the DP with the system drop the power-up request (ADIv5.2 B2.4.2).
  for (;;) {
    try {
      dap.ensure_powered();
      break;
    } catch (const Error&) {
      if (deadline.expired()) throw;
    }
  }
  dap.invalidate();
  std::uint32_t status = 0;
  while (((status = dhcsr()) & (kSHalt | kSResetSt)) != kSHalt) {
    if (deadline.expired()) {
      throw Error(ErrorCategory::timeout,
                  "the core did not halt at the reset vector within " +
                      std::to_string(timeout.count()) + " ms after the reset (DHCSR " +
                      hex32(status) + ")",
                  (status & kSResetSt) ? "the core is still in reset: check that nRST is wired "
                                         "to the probe and not held low by the board"
                                       : "check that the probe's nRST line reaches the target");
    }
  }
  if (!(demcr_before & kVcCoreReset)) mem_.write32(kDemcr, demcr_before);
}

// --- Algorithm runs --------------------------------------------------------------------------

void CortexM::start_algorithm(const AlgorithmCall& call) {
  std::vector<std::pair<CoreRegister, std::uint32_t>> regs;
  for (unsigned i = 0; i < call.args.size(); ++i) {
    if (call.args[i]) regs.emplace_back(static_cast<CoreRegister>(i), *call.args[i]);
  }
  // B1.4.2 xPSR: only EPSR.T; main stack; LR returns into the BKPT (Thumb bit set).
  regs.emplace_back(CoreRegister::xpsr, 0x01000000);
  regs.emplace_back(CoreRegister::msp, call.stack_top);
  regs.emplace_back(CoreRegister::sp, call.stack_top);
  regs.emplace_back(CoreRegister::lr, call.return_bkpt | 1);
  // The PC takes the address itself: execution state comes from EPSR.T above, and the
  // debugger-written return address is a halfword address (bit 0 clear; ARMv7-M ARM C1.6.3).
  regs.emplace_back(CoreRegister::pc, call.entry & ~1u);

  // DFSR holds the reasons of earlier halts until cleared (C1.6.1): cleared now, so that
  // finish_algorithm sees this run's BKPT only. Sent with the halt check.
  std::uint32_t status = 0;
  mem_.queue_write32(kDfsr, kDfsrAll);
  queue_anchor(&status);
  mem_.flush();
  if (!(status & kSHalt)) {
    throw Error(ErrorCategory::usage, "starting an algorithm needs a halted core",
                "halt the core first");
  }
  write_registers_banked(regs);
  // Resume only once every transfer was seen complete (above): C_HALT clear, C_DEBUGEN
  // kept (C1.6.2). No breakpoint stepping: the entry is ours, not a user breakpoint.
  if (mem_.has_native_single_access()) return mem_.write32(kDhcsr, kDbgKey | kCDebugEn);
  mem_.dap().queue_ap_write(mem_.ap(), kBdDhcsr, kDbgKey | kCDebugEn);
  mem_.flush();
}

bool CortexM::algorithm_done() {
  return is_halted();
}

std::uint32_t CortexM::finish_algorithm(const AlgorithmCall& call) {
  std::uint32_t dfsr = 0;
  std::uint32_t status = 0;
  mem_.queue_read32(kDfsr, &dfsr);
  queue_anchor(&status);
  mem_.flush();
  if (!(status & kSHalt)) {
    throw Error(ErrorCategory::usage, "finishing an algorithm needs a halted core",
                "halt the core first");
  }
  const CoreRegister regs[] = {CoreRegister::pc, CoreRegister::r0};
  std::uint32_t values[2] = {};
  read_registers_banked(regs, values);
  const std::uint32_t pc = values[0];
  if (!(dfsr & kDfsrBkpt) || (pc & ~1u) != (call.return_bkpt & ~1u)) {
    throw Error(ErrorCategory::target_not_responding,
                "algorithm at " + hex32(call.entry) + " stopped at PC " + hex32(pc) + " (DFSR " +
                    hex32(dfsr) + "), not at its return BKPT " + hex32(call.return_bkpt),
                "the code in RAM may be corrupt or have faulted");
  }
  return values[1];
}

std::uint32_t CortexM::run_algorithm(const AlgorithmCall& call, std::chrono::milliseconds timeout) {
  start_algorithm(call);
  // start_algorithm's last flush held banked accesses only, so TAR is still on the
  // debug-register block and a poll is a single BD0 (DHCSR) read (or the probe's own
  // single read).
  Deadline deadline(timeout);
  const std::uint8_t ap = mem_.ap();
  const bool native = mem_.has_native_single_access();
  for (;;) {
    std::uint32_t status = 0;
    if (native) {
      status = mem_.read32(kDhcsr);
    } else {
      mem_.dap().queue_ap_read(ap, kBdDhcsr, &status);
      mem_.flush();
    }
    if (status & kSHalt) break;
    if (deadline.expired()) {
      std::string where;
      try {
        halt();
        where = " (halted at PC " + hex32(read_register(CoreRegister::pc)) + ")";
      } catch (const Error&) {
        where = " (and it did not halt)";
      }
      throw Error(ErrorCategory::timeout,
                  "algorithm at " + hex32(call.entry) + " did not return within " +
                      std::to_string(timeout.count()) + " ms" + where,
                  "the operation may need longer, or the code is stuck");
    }
  }
  return finish_algorithm(call);
}

}  // namespace probefarm::protocol
