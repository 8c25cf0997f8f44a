#include "flash/target.hpp"

namespace probefarm::flash {

Target::Target(probe::DapProbe& probe, const AttachOptions& options) : probe_(probe) {
  speed_khz_ = probe_.set_speed_khz(options.speed_khz);
  dap_ = std::make_unique<protocol::Dap>(probe_);
  if (options.connect_under_reset) {
    attach_under_reset();
  } else {
    dap_->connect();
    mem_ = std::make_unique<protocol::MemAp>(*dap_, dap_->system_ap().index);
    core_ = std::make_unique<protocol::CortexM>(*mem_);
    core_->examine();
    if (options.halt) core_->halt();
  }
  // DBGMCU_IDCODE and the flash-size register are readable with the core running or not
  // (RM0090 38.6.1: "accessible in debug mode").
  chip_ = detect_chip(*mem_);
  chip_.core = core_->identity().name;
}

// Connect under reset, for firmware that turns the SWD pins into GPIOs (or stops the debug
// clocks) soon after reset. nRST low puts the pins back into their reset function, SWD
// (RM0090 8.3.2, RM0008 9.3.5: PA13/PA14 are SWDIO/SWCLK after reset), and holds the core
// in reset; the DAP, the MEM-AP and the core's debug registers stay reachable because nRST
// does not reset the debug domain (RM0090 6.1.2; ARMv7-M ARM C1.6: DHCSR and DEMCR are
// reset by a power-on reset only). With C_DEBUGEN | C_HALT and DEMCR.VC_CORERESET set
// while held, the core halts on the first instruction after nRST is released, before the
// firmware runs.
void Target::attach_under_reset() {
  probe_.set_nrst(true);
  std::uint32_t demcr = 0;
  try {
    dap_->connect();
    mem_ = std::make_unique<protocol::MemAp>(*dap_, dap_->system_ap().index);
    core_ = std::make_unique<protocol::CortexM>(*mem_);
    core_->examine();
    demcr = core_->catch_reset();
  } catch (const Error& e) {
    // Let the board run again; the error that ended the attach is what counts.
    try {
      probe_.set_nrst(false);
    } catch (const Error&) {
    }
    throw Error(e.category(), "connect under reset: " + std::string(e.message()),
                e.category() == ErrorCategory::target_not_responding
                    ? "nothing answers on SWD even with nRST held: check target power, the SWD "
                      "wiring and that the probe's nRST line is connected to the target"
                    : e.hint());
  }
  probe_.set_nrst(false);
  core_->finish_reset_catch(demcr);
}

}  // namespace probefarm::flash
