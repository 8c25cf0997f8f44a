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
  // The SWD-OFF jumper: the demo firmware reads it (PC13 low) at startup and turns the
  // SWD pins into GPIOs (firmware/demo/swd_pins.c).
  bool swd_off_jumper = false;
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

  // DebugBus: the system bus behind the AHB-AP. Only the debugger uses these; the CPU's
  // own accesses take a private path.
  BusResponse read(std::uint32_t addr, unsigned size) override;
  BusResponse write(std::uint32_t addr, std::uint32_t value, unsigned size) override;
  // The chip's "debugger connected" state: latched by the first AHB-AP access or SW-DP
  // debug power-up request, cleared only by a power-on reset. With read protection active
  // it shuts the debugger out of the flash (PM0075 2.4.1, RM0090 3.7.3).
  bool debugger_attached() const;

  // Target supply. Off: the core stops, the debug port answers nothing and VTref reads
  // 0 V. On again: a power-on reset; RAM and core state are lost, flash and option bytes
  // survive (and are saved to the state directory).
  void set_powered(bool on);
  bool powered() const { return powered_; }
  // Removes and restores power.
  void power_cycle();
  // Fits or removes the SWD-OFF jumper; firmware sees it when it next samples PC13.
  void set_swd_off_jumper(bool fitted);
  bool swd_off_jumper() const { return options_.swd_off_jumper; }
  // False while firmware has taken PA13/PA14 away from the SW-DP.
  bool swd_pins_connected() const;
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
  // Who drives a bus access: the read-protection rules tell the debugger from the CPU.
  enum class Master { cpu, debugger };
  BusResponse bus_read(Master who, std::uint32_t addr, unsigned size);
  BusResponse bus_write(Master who, std::uint32_t addr, std::uint32_t value, unsigned size);
  // Peripheral registers back to their reset values, SWD pins back to SWDIO/SWCLK.
  void reset_peripherals();
  void update_swd_pins();

  const ChipInfo& chip_;
  BoardOptions options_;
  VirtualClock clock_;
  Counters counters_;
  bool powered_ = true;
  std::unique_ptr<Impl> impl_;
};

}  // namespace probefarm::sim
