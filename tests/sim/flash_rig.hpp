#pragma once
// A flash controller on its own, for the controller unit tests (flash_f1_test.cpp,
// flash_f4_test.cpp): the flash array and option bytes it owns, a virtual clock, and what
// the board would wire to it (changed ranges, the debugger latch, the system reset that
// OBL_LAUNCH requests).
#include <cstdint>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include "chip.hpp"
#include "clock.hpp"
#include "flash_controller.hpp"

namespace probefarm::sim::test {

class FlashRig {
 public:
  explicit FlashRig(std::string_view name)
      : chip_(*find_chip(name)),
        flash(chip_.flash_size, 0xFF),
        option_bytes(chip_.option_bytes_reset) {
    fc = make_flash_controller(FlashContext{chip_, clock, counters, flash, option_bytes,
                                            [this](std::uint32_t offset, std::uint32_t length) {
                                              changes.emplace_back(offset, length);
                                            },
                                            [this] { return debugger_attached; },
                                            [this] {
                                              // As the board does: a system reset resets the
                                              // controller, which reloads the option bytes.
                                              ++system_resets;
                                              fc->reset();
                                            }});
  }

  const ChipInfo& chip() const { return chip_; }
  std::uint32_t reg(std::uint32_t offset) { return fc->read(offset, 4); }
  void set(std::uint32_t offset, std::uint32_t value) { fc->write(offset, value, 4); }
  // FLASH_KEYR at offset 4 on both styles (PM0075 3.1, RM0090 3.9.8).
  void unlock() {
    set(0x04, 0x45670123);
    set(0x04, 0xCDEF89AB);
  }
  std::uint32_t flash16(std::uint32_t offset) const { return le(flash, offset, 2); }
  std::uint32_t flash32(std::uint32_t offset) const { return le(flash, offset, 4); }
  std::uint32_t option16(std::uint32_t offset) const { return le(option_bytes, offset, 2); }
  std::uint32_t option32(std::uint32_t offset) const { return le(option_bytes, offset, 4); }
  bool flash_blank() const {
    for (auto b : flash) {
      if (b != 0xFF) return false;
    }
    return true;
  }
  void wait_idle() {
    while (fc->busy())
      clock.advance(kMicrosecond);
  }

 private:
  static std::uint32_t le(const std::vector<std::uint8_t>& bytes, std::uint32_t offset,
                          unsigned size) {
    std::uint32_t v = 0;
    for (unsigned i = 0; i < size; ++i)
      v |= std::uint32_t{bytes[offset + i]} << (8 * i);
    return v;
  }

  const ChipInfo& chip_;

 public:
  VirtualClock clock;
  Counters counters;
  std::vector<std::uint8_t> flash;
  std::vector<std::uint8_t> option_bytes;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> changes;
  bool debugger_attached = false;
  int system_resets = 0;
  std::unique_ptr<FlashController> fc;
};

}  // namespace probefarm::sim::test
