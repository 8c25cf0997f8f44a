#pragma once
// One attached target: the probe, its ADIv5 DAP, the system MEM-AP, the Cortex-M core
// (examined and, by default, halted) and the chip identified from its ID registers.
#include <cstdint>
#include <memory>

#include "flash/chip.hpp"
#include "probe/dap_probe.hpp"
#include "protocol/cortex_m.hpp"
#include "protocol/dap.hpp"

namespace probefarm::flash {

struct AttachOptions {
  std::uint32_t speed_khz = 4000;
  bool halt = true;
  // Hold nRST while connecting and halting (with reset vector catch), for firmware that
  // turns the SWD pins into GPIOs or sleeps with the debug clocks off. The core is halted
  // at the reset vector afterwards whatever `halt` says.
  bool connect_under_reset = false;
};

class Target {
 public:
  // Sets the SWD clock, connects the DAP (debug power-up), opens the system AP, examines
  // the core, halts it (options.halt) and identifies the chip. Throws Error from any of
  // those layers (target_not_responding, usage for an unknown chip, ...).
  explicit Target(probe::DapProbe& probe, const AttachOptions& options = {});
  Target(const Target&) = delete;
  Target& operator=(const Target&) = delete;

  const ChipInfo& chip() const { return chip_; }
  std::uint32_t speed_khz() const { return speed_khz_; }  // what the probe actually runs
  protocol::Dap& dap() { return *dap_; }
  protocol::MemAp& memory() { return *mem_; }
  protocol::CortexM& core() { return *core_; }
  probe::DapProbe& probe() { return probe_; }

 private:
  void attach_under_reset();

  probe::DapProbe& probe_;
  std::uint32_t speed_khz_ = 0;
  std::unique_ptr<protocol::Dap> dap_;
  std::unique_ptr<protocol::MemAp> mem_;
  std::unique_ptr<protocol::CortexM> core_;
  ChipInfo chip_;
};

}  // namespace probefarm::flash
