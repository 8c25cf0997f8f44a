#pragma once
// One simulated board: an STM32 chip (core, memories, flash controller, clock tree,
// debug port) with its own virtual clock, counters and persistent state.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "bus.hpp"
#include "chip.hpp"
#include "clock.hpp"
#include "target_port.hpp"

namespace probefarm::sim {

class CortexM;
class FlashController;

struct BoardOptions {
  std::string serial;               // the probe serial this board is attached to
  std::uint32_t uid_seed = 0;       // makes the 96-bit unique ID distinct per board
  std::filesystem::path state_dir;  // empty: flash and option bytes live only in memory
};

class Board final : public TargetPort, public DebugBus {
 public:
  Board(const ChipInfo& chip, BoardOptions options);
  ~Board() override;
  Board(const Board&) = delete;
  Board& operator=(const Board&) = delete;

  const ChipInfo& chip() const { return chip_; }
  const std::string& serial() const { return options_.serial; }
  const VirtualClock& clock() const { return clock_; }

  // TargetPort
  SwDp& swd() override;
  void set_nrst(bool asserted) override;
  bool nrst_asserted() const override;
  void advance(Picoseconds dt) override;
  Picoseconds now() const override { return clock_.now(); }
  Counters& counters() override { return counters_; }
  unsigned vtref_mv() const override { return powered_ ? 3300 : 0; }

  // DebugBus: the system bus behind the AHB-AP.
  BusResponse read(std::uint32_t addr, unsigned size) override;
  BusResponse write(std::uint32_t addr, std::uint32_t value, unsigned size) override;

  // Removes and restores power: RAM and core state are lost, flash and option bytes
  // survive.
  void power_cycle();
  // A system reset as nRST or AIRCR.SYSRESETREQ cause it.
  void system_reset();

  CortexM& core();
  FlashController& flash_controller();
  // Raw flash contents, for tests and state files.
  std::span<const std::uint8_t> flash() const;
  std::span<const std::uint8_t> option_bytes() const;

  // Writes flash and option bytes to the state directory, if one was given.
  void save_state() const;

 private:
  struct Impl;
  const ChipInfo& chip_;
  BoardOptions options_;
  VirtualClock clock_;
  Counters counters_;
  bool powered_ = true;
  std::unique_ptr<Impl> impl_;
};

}  // namespace probefarm::sim
