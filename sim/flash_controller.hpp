#pragma once
// The embedded-flash interface of an STM32: its register block, the flash array behind
// it, and the option bytes. F1-style (STM32F103, STM32F303) and F4/F7-style controllers
// implement this; the board routes bus accesses to it.
#include <cstdint>
#include <functional>
#include <memory>
#include <span>

#include "bus.hpp"
#include "chip.hpp"
#include "clock.hpp"

namespace probefarm::sim {

struct FlashContext {
  const ChipInfo& chip;
  const VirtualClock& clock;
  Counters& counters;
  std::span<std::uint8_t> flash;         // chip.flash_size bytes, owned by the board
  std::span<std::uint8_t> option_bytes;  // chip.option_bytes.size bytes, owned by the board
  // Called after the controller changed flash contents (program, erase), so the CPU model
  // can drop translated code for that range. Offsets are relative to the flash base.
  std::function<void(std::uint32_t offset, std::uint32_t length)> on_flash_changed;
};

class FlashController : public Peripheral {
 public:
  // Peripheral::read/write: the register block at chip.flash_regs.

  // A bus master accesses the flash array (offset from the flash base). Reads return
  // the array contents; while an operation is in progress they return busy (the AHB
  // stalls). Writes are program operations; without PG they set the error flag the
  // reference manual names.
  virtual BusResponse array_read(std::uint32_t offset, unsigned size) = 0;
  virtual BusResponse array_write(std::uint32_t offset, std::uint32_t value, unsigned size) = 0;

  // A bus master accesses the option-byte area (offset from chip.option_bytes.base).
  virtual BusResponse option_read(std::uint32_t offset, unsigned size) = 0;
  virtual BusResponse option_write(std::uint32_t offset, std::uint32_t value, unsigned size) = 0;

  // System reset (nRST, SYSRESETREQ) and power-on reset: the controller locks again and
  // reloads its option registers from the option bytes.
  virtual void reset() = 0;

  // True while a program/erase operation is in progress at the current virtual time.
  virtual bool busy() const = 0;
};

std::unique_ptr<FlashController> make_flash_controller(const FlashContext& ctx);

// The reset-and-clock-control block, modelled far enough that the core clock follows
// what firmware and debugger scripts program (HSI, HSE, PLL, SW/SWS).
class ClockControl : public Peripheral {
 public:
  virtual std::uint32_t sysclk_hz() const = 0;
  virtual void reset() = 0;
};

std::unique_ptr<ClockControl> make_clock_control(const ChipInfo& chip);

}  // namespace probefarm::sim
