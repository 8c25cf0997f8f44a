#pragma once
// The Cortex-M3/M4/M7 core of a simulated board: real Thumb/Thumb-2 execution on the
// unicorn engine, and the ARMv7-M debug architecture around it (DHCSR, DCRSR/DCRDR,
// DEMCR, DFSR, AIRCR, CPUID, FPB, DWT, the ROM table). ARMv7-M Architecture Reference
// Manual (ARM DDI 0403E.b), chapter C1 "ARMv7-M Debug".
#include <cstdint>
#include <functional>
#include <memory>
#include <span>

#include "bus.hpp"
#include "chip.hpp"
#include "clock.hpp"

namespace probefarm::sim {

class CortexM {
 public:
  struct Environment {
    const ChipInfo& chip;
    VirtualClock& clock;
    std::function<std::uint32_t()> core_hz;  // current core clock (RCC)
    // AIRCR.SYSRESETREQ: the board resets the system (and this core).
    std::function<void()> system_reset_request;
  };
  using IoRead = std::function<std::uint32_t(std::uint32_t addr, unsigned size)>;
  using IoWrite = std::function<void(std::uint32_t addr, std::uint32_t value, unsigned size)>;
  // A CPU store into the flash: the flash controller decides what happens.
  using FlashWrite =
      std::function<BusResponse(std::uint32_t addr, std::uint32_t value, unsigned size)>;

  explicit CortexM(Environment env);
  ~CortexM();
  CortexM(const CortexM&) = delete;
  CortexM& operator=(const CortexM&) = delete;

  // Memory map as the CPU sees it. `memory` must outlive the core.
  void map_ram(std::uint32_t base, std::span<std::uint8_t> memory);
  void map_flash(std::uint32_t base, std::span<std::uint8_t> memory, FlashWrite on_write);
  void map_io(std::uint32_t base, std::uint32_t size, IoRead read, IoWrite write);
  // Memory changed behind the CPU (debugger write, flash program/erase): translated code
  // for that range must be dropped before the core runs again.
  void invalidate_code(std::uint32_t addr, std::uint32_t length);

  // Runs the core until virtual time `until` (or until it halts/sleeps/locks up),
  // advancing the clock by the cycles it executes.
  void run_until(Picoseconds until);
  bool halted() const { return state_ == State::halted; }
  bool running() const { return state_ == State::running && !reset_held_; }
  std::uint32_t pc() const;

  // The private peripheral bus (0xE0000000-0xE00FFFFF) as seen by a bus master.
  std::uint32_t ppb_read(std::uint32_t addr, unsigned size);
  void ppb_write(std::uint32_t addr, std::uint32_t value, unsigned size);

  // Local reset: registers from the vector table; halts if DEMCR.VC_CORERESET is set.
  void core_reset();
  // nRST held low keeps the core in reset; releasing it runs the reset sequence.
  void set_reset_held(bool held);
  // Power-on reset of the debug logic (DHCSR, DEMCR, DFSR, FPB, DWT).
  void debug_power_on_reset();

 private:
  enum class State { running, halted, sleeping, lockup };
  enum class StopReason {
    none,
    budget,
    breakpoint,
    watchpoint,
    bkpt_instruction,
    fixup,
    reset,
    fault
  };
  struct Impl;
  void drop_stale_code();

  std::uint32_t scs_read(std::uint32_t addr);
  void scs_write(std::uint32_t addr, std::uint32_t value);
  std::uint32_t dwt_read(std::uint32_t offset);
  void dwt_write(std::uint32_t offset, std::uint32_t value);
  std::uint32_t fpb_read(std::uint32_t offset);
  void fpb_write(std::uint32_t offset, std::uint32_t value);
  void write_dhcsr(std::uint32_t value);
  void register_transfer(std::uint32_t dcrsr);
  void special_register_transfer(std::uint32_t regsel, bool write);
  void halt(std::uint32_t dfsr_reason);
  void resume();
  bool breakpoint_at(std::uint32_t addr) const;
  void update_watchpoint_hooks();
  void sync_clock();
  // Runs at most `budget` instructions; false if the core faulted.
  bool execute(std::uint64_t budget);

  Environment env_;
  std::unique_ptr<Impl> impl_;
  State state_ = State::running;
  bool reset_held_ = false;

  // Debug registers (debug power domain: survive local reset).
  std::uint32_t dhcsr_ctrl_ = 0;  // C_* bits as written
  bool s_retire_ = false;
  bool s_reset_ = false;
  bool s_regrdy_ = true;
  std::uint32_t dfsr_ = 0;
  std::uint32_t demcr_ = 0;
  std::uint32_t dcrdr_ = 0;
  std::uint32_t fp_ctrl_ = 0;
  std::uint32_t fp_comp_[8] = {};
  std::uint32_t dwt_ctrl_ = 0;
  std::uint32_t dwt_cyccnt_ = 0;
  std::uint32_t dwt_comp_[4] = {};
  std::uint32_t dwt_mask_[4] = {};
  std::uint32_t dwt_function_[4] = {};
  bool watch_hooks_dirty_ = false;

  // The chunk of execution in progress.
  bool in_emulation_ = false;
  std::uint64_t budget_ = 0;
  std::uint64_t executed_ = 0;
  Picoseconds chunk_start_ = 0;
  Picoseconds stall_ = 0;
  std::uint32_t chunk_hz_ = 1;
  StopReason stop_reason_ = StopReason::none;
  // A stop decided inside a memory hook, taken before the next instruction.
  StopReason deferred_stop_ = StopReason::none;
  bool pending_system_reset_ = false;
};

}  // namespace probefarm::sim
