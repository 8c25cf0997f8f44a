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
  // The chip's "debugger connected" state (the board latches it until a power-on reset).
  // With read protection active the controller refuses program and erase operations
  // while it is set, whichever bus master asks (PM0075 2.4.1, RM0316 4.3.1, RM0090 3.7.3,
  // RM0385 3.4.3). Empty: no debugger.
  std::function<bool()> debugger_attached;
  // A system reset that reloads the option bytes (F303 FLASH_CR.OBL_LAUNCH, RM0316 4.5.4).
  // It is called from inside write() and ends up calling reset() on this controller, so
  // write() touches nothing after calling it. Empty: the controller only resets itself.
  std::function<void()> request_system_reset;
};

// Read protection level as loaded from the RDP option byte at the last reset.
enum class ReadProtection { level0, level1, level2 };

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
  // Writes program option bytes where the controller allows it (F1 style: OPTPG); the
  // F4/F7 style programs them from FLASH_OPTCR only.
  virtual BusResponse option_read(std::uint32_t offset, unsigned size) = 0;
  virtual BusResponse option_write(std::uint32_t offset, std::uint32_t value, unsigned size) = 0;

  // System reset (nRST, SYSRESETREQ) and power-on reset: the controller locks again and
  // reloads its option registers from the option bytes.
  virtual void reset() = 0;

  // True while a program/erase operation is in progress at the current virtual time.
  virtual bool busy() const = 0;

  // The level in force since the last reset; a newly programmed RDP value counts only
  // after the option bytes are loaded again (reset, OBL_LAUNCH).
  virtual ReadProtection read_protection() const = 0;
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
