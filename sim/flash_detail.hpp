#pragma once
// Private to the flash-controller and clock-control models (flash_controller.cpp,
// flash_f1.cpp, flash_f4.cpp, clock_control.cpp): the per-style factories and the few
// helpers they share. Nothing outside those files includes this.
#include <cstdint>
#include <memory>
#include <span>

#include "flash_controller.hpp"

namespace probefarm::sim::flash_detail {

std::unique_ptr<FlashController> make_f1(const FlashContext& ctx);
std::unique_ptr<FlashController> make_f4(const FlashContext& ctx);

// Flash, option bytes and registers are little-endian on every STM32.
std::uint32_t load_le(std::span<const std::uint8_t> bytes, std::uint32_t offset, unsigned size);
void store_le(std::span<std::uint8_t> bytes, std::uint32_t offset, std::uint32_t value,
              unsigned size);

// A byte or half-word access to a 32-bit register, widened to the whole word: `value` is
// moved to its byte lanes and `mask` covers those lanes. Registers whose write side
// effects depend on the written bits (rc_w1 flags, key registers) use the pair; plain
// storage uses merge().
struct WordWrite {
  std::uint32_t offset;  // of the register, word aligned
  std::uint32_t value;
  std::uint32_t mask;
  std::uint32_t merge(std::uint32_t old) const { return (old & ~mask) | (value & mask); }
};
WordWrite widen_write(std::uint32_t offset, std::uint32_t value, unsigned size);
// The lanes of `word` that a read of `size` bytes at `offset` returns, right-aligned.
std::uint32_t narrow_read(std::uint32_t word, std::uint32_t offset, unsigned size);

// The two-write key sequence that unlocks FLASH_CR (and, with other keys, the option
// registers). PM0075 2.3.1 / RM0316 4.2.1 / RM0090 3.6.1 / RM0385 3.3.5: KEY1 then KEY2
// unlocks; any other value, or any write while already unlocked, locks the register
// until the next reset. The manuals add that the offending access returns a bus error;
// Peripheral::write cannot report one, so only the lock-up is modelled.
class KeySequence {
 public:
  KeySequence(std::uint32_t key1, std::uint32_t key2) : key1_(key1), key2_(key2) {}

  // Feeds one write of the key register; true if it completed the unlock sequence.
  bool write(const WordWrite& w, bool currently_unlocked);
  // Software set the LOCK bit: the next unlock starts from KEY1 again.
  void relock() {
    if (state_ != State::lockup) state_ = State::want_key1;
  }
  bool locked_up() const { return state_ == State::lockup; }
  void reset() { state_ = State::want_key1; }

 private:
  enum class State { want_key1, want_key2, lockup };
  std::uint32_t key1_;
  std::uint32_t key2_;
  State state_ = State::want_key1;
};

// PM0075 2.3.1, RM0090 3.6.1: FLASH_KEYR keys (shared by every STM32 here).
constexpr std::uint32_t kKey1 = 0x45670123;
constexpr std::uint32_t kKey2 = 0xCDEF89AB;

}  // namespace probefarm::sim::flash_detail
