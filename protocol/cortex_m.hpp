#pragma once
// Cortex-M core control through the debug registers on the system bus (ARMv7-M ARM,
// ARM DDI 0403E.b, C1.6; ARMv6-M ARM DDI 0419 C1): examine, halt/resume/step, core
// registers, the reset variants, running code in RAM, FPB breakpoints, DWT watchpoints.
// Every wait has a deadline and throws Error(timeout) or (target_not_responding) naming
// what did not happen.
#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>

#include "protocol/dap.hpp"

namespace probefarm::protocol {

// DCRSR.REGSEL numbers (ARMv7-M ARM C1.6.3).
enum class CoreRegister : std::uint8_t {
  r0 = 0,
  r1,
  r2,
  r3,
  r4,
  r5,
  r6,
  r7,
  r8,
  r9,
  r10,
  r11,
  r12,
  sp = 13,
  lr = 14,
  pc = 15,
  xpsr = 16,
  msp = 17,
  psp = 18,
  control_faultmask_basepri_primask = 20,
  fpscr = 33,
  s0 = 0x40,  // s0..s31 are 0x40..0x5F (FPU present; ARMv7-M ARM C1.6.3)
};

// The single-precision FPU register s<n>, n < 32.
constexpr CoreRegister fpu_s(unsigned n) {
  return static_cast<CoreRegister>(static_cast<unsigned>(CoreRegister::s0) + n);
}

enum class ResetKind {
  sysresetreq,  // AIRCR.SYSRESETREQ: core and peripherals
  vectreset,    // AIRCR.VECTRESET: core only (ARMv7-M; not on ARMv6-M/ARMv8-M)
  hardware,     // nRST pulled by the probe
};

// Why the core is halted (DFSR, C1.6.1).
struct HaltReason {
  bool halted_request = false;  // HALTED: C_HALT or step
  bool breakpoint = false;      // BKPT: BKPT instruction or FPB match
  bool watchpoint = false;      // DWTTRAP
  bool vector_catch = false;    // VCATCH
  bool external = false;        // EXTERNAL
};

enum class WatchKind { read, write, access };

struct CoreIdentity {
  std::uint32_t cpuid = 0;
  std::string name;  // "Cortex-M4 r0p1"
  bool has_fpu = false;
  unsigned breakpoints = 0;  // FPB code comparators
  unsigned watchpoints = 0;  // DWT comparators
};

// A call into code already loaded in RAM: the loader entry, its arguments in r0..r3, a
// stack top, and the address of a BKPT the function returns to (lr, Thumb bit set by us).
struct AlgorithmCall {
  std::uint32_t entry = 0;
  std::array<std::optional<std::uint32_t>, 4> args;  // r0..r3; unset ones are left alone
  std::uint32_t stack_top = 0;
  std::uint32_t return_bkpt = 0;  // address of a `bkpt` instruction
};

class CortexM {
 public:
  explicit CortexM(MemAp& memory);

  MemAp& memory() { return mem_; }

  // CPUID, FPB/DWT sizes, MVFR0; sets DHCSR.C_DEBUGEN. Does not halt.
  const CoreIdentity& examine();
  const CoreIdentity& identity() const { return id_; }

  bool is_halted();
  HaltReason halt_reason();
  void halt(std::chrono::milliseconds timeout = std::chrono::milliseconds(500));
  void resume();
  void step();

  // Core must be halted (Error(usage) otherwise); S_REGRDY waited for with a deadline.
  std::uint32_t read_register(CoreRegister reg);
  void write_register(CoreRegister reg, std::uint32_t value);

  // `halt_after`: DEMCR.VC_CORERESET so the core stops at the reset vector. Waits for
  // S_RESET_ST to clear and, with halt_after, for S_HALT; the DAP is reconnected where
  // the reset dropped it (hardware reset clears the debug registers on some chips).
  void reset(ResetKind kind, bool halt_after,
             std::chrono::milliseconds timeout = std::chrono::milliseconds(1000));

  // Algorithm runs: the core must be halted. start_algorithm writes the registers (xPSR
  // with only the Thumb bit, MSP = stack_top, LR = return_bkpt | 1, PC = entry with bit 0 clear)
  // and resumes; algorithm_done() polls without blocking; finish_algorithm() checks it stopped on
  // the BKPT at return_bkpt (Error(target_not_responding) with PC and DFSR otherwise) and returns
  // r0. run_algorithm does all three with a deadline (Error(timeout), after halting the core).
  void start_algorithm(const AlgorithmCall& call);
  bool algorithm_done();
  std::uint32_t finish_algorithm(const AlgorithmCall& call);
  std::uint32_t run_algorithm(const AlgorithmCall& call, std::chrono::milliseconds timeout);

  // Additions: a DHCSR read queued on memory() among the caller's own accesses, so that a
  // poll of the core costs no round trip of its own (e.g. while feeding a running
  // algorithm); `halted_in` tells S_HALT from the value read after the flush.
  void queue_status_read(std::uint32_t* dhcsr);
  static bool halted_in(std::uint32_t dhcsr);
  // How often resume(), step() or reset() let the core run code of its own (algorithm runs
  // do not count): RAM contents put there while halted are still valid while it is unchanged.
  std::uint64_t runs() const { return runs_; }

  // Additions for connect under reset (ARMv7-M ARM C1.6.2 DHCSR, C1.6.5 DEMCR). With nRST
  // held by the caller: catch_reset() sets DHCSR.C_DEBUGEN | C_HALT and DEMCR.VC_CORERESET,
  // so that the core stops on the first instruction once the reset ends, before firmware
  // can take the SWD pins, and returns DEMCR as it was. After the caller released nRST (or
  // caused another reset: the F3's OBL_LAUNCH),
  // finish_reset_catch() powers the debug domain up again if the reset dropped it, waits
  // (deadline) for S_RESET_ST to read clear and S_HALT, and puts DEMCR back.
  std::uint32_t catch_reset();
  void finish_reset_catch(std::uint32_t demcr_before,
                          std::chrono::milliseconds timeout = std::chrono::milliseconds(1000));

  // FPB (C1.11) and DWT (C1.8). Error(usage) when all comparators are in use.
  void set_breakpoint(std::uint32_t address);
  void clear_breakpoint(std::uint32_t address);
  void set_watchpoint(std::uint32_t address, std::uint32_t size, WatchKind kind);
  void clear_watchpoint(std::uint32_t address);

 private:
  MemAp& mem_;
  CoreIdentity id_;

  // Private additions: DHCSR helpers, register batches, and the comparators in use.
  std::uint32_t dhcsr();
  void write_dhcsr(std::uint32_t control_bits);
  void require_halted(const char* what);
  void wait_halted(std::chrono::milliseconds timeout, const char* what);
  void write_registers(std::span<const std::pair<CoreRegister, std::uint32_t>> regs);
  // Register transfers through the banked data registers (cortex_m_regs.hpp kBdDhcsr...):
  // only valid right after a flush whose last MemAp access was to the debug-register block
  // (`queue_anchor`), so that TAR[31:4] selects it.
  void queue_anchor(std::uint32_t* dhcsr);
  void write_registers_banked(std::span<const std::pair<CoreRegister, std::uint32_t>> regs);
  void read_registers_banked(std::span<const CoreRegister> regs, std::span<std::uint32_t> out);
  void wait_register_ready(const char* what);
  void fpb_prepare();
  bool step_over_breakpoint();
  std::uint32_t fp_comp_value(std::uint32_t address) const;
  std::array<std::uint32_t, 16> breakpoints_{};  // address per FPB code comparator
  std::array<bool, 16> breakpoint_used_{};
  std::array<bool, 16> watchpoint_used_{};
  std::array<std::uint32_t, 16> watchpoints_{};
  bool fpb_rev2_ = false;  // FP_CTRL.REV = 1: BPADDR[31:1] comparators (any address)
  bool fpb_enabled_ = false;
  bool has_vectreset_ = false;  // AIRCR.VECTRESET exists on ARMv7-M only
  bool armv8m_ = false;         // ARMv8-M DWT (MATCH/ACTION encodings) differs
  bool examined_ = false;
  std::uint64_t runs_ = 0;
};

}  // namespace probefarm::protocol
