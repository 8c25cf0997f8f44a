#include "flash/target.hpp"

namespace probefarm::flash {

Target::Target(probe::DapProbe& probe, const AttachOptions& options) : probe_(probe) {
  speed_khz_ = probe_.set_speed_khz(options.speed_khz);
  dap_ = std::make_unique<protocol::Dap>(probe_);
  dap_->connect();
  mem_ = std::make_unique<protocol::MemAp>(*dap_, dap_->system_ap().index);
  core_ = std::make_unique<protocol::CortexM>(*mem_);
  const protocol::CoreIdentity& id = core_->examine();
  if (options.halt) core_->halt();
  // DBGMCU_IDCODE and the flash-size register are readable with the core running or not
  // (RM0090 38.6.1: "accessible in debug mode").
  chip_ = detect_chip(*mem_);
  chip_.core = id.name;
}

}  // namespace probefarm::flash
