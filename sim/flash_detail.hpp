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

// A bus read of the option-byte area as both controller styles answer it: the stored
// bytes, or a bus error past the end of the area.
inline BusResponse read_option_bytes(const FlashContext& ctx, std::uint32_t offset, unsigned size) {
  if (offset + size > ctx.option_bytes.size()) return {BusStatus::error, 0, 0};
  return {BusStatus::ok, load_le(ctx.option_bytes, offset, size), 0};
}

// Tells the CPU model that the controller changed flash contents (offsets from the base).
inline void notify_changed(const FlashContext& ctx, std::uint32_t offset, std::uint32_t length) {
  if (ctx.on_flash_changed) ctx.on_flash_changed(offset, length);
}

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
// unlocks; any other value locks the register until the next reset. The manuals add that
// the offending access returns a bus error; Peripheral::write cannot report one, so only
// the lock-up is modelled.
//
// A key written while already unlocked: the F4/F7 interface locks up (OpenOCD's stm32f2x
// driver reads LOCK first because "writing on STM32_FLASH_KEYR will fail"). The F1 FPEC
// takes a correct sequence again without harm: OpenOCD's stm32f1x lock/unlock, in daily
// use on F103 silicon, leaves FLASH_CR and OPTWRE unlocked after the option erase and
// sends both key pairs again before programming.
class KeySequence {
 public:
  enum class WhileUnlocked { lock_up, accept_keys };
  KeySequence(std::uint32_t key1, std::uint32_t key2, WhileUnlocked policy)
      : key1_(key1), key2_(key2), policy_(policy) {}

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
  WhileUnlocked policy_;
  State state_ = State::want_key1;
};

// Read protection in force and a debugger connected: the flash interface refuses program
// and erase operations, whoever asks (PM0075 2.4.1, RM0316 4.3.1, RM0090 3.7.3, RM0385
// 3.4.3).
bool debug_protected(const FlashContext& ctx, ReadProtection level);

// Erases the whole main flash at once (mass erase, RDP regression) and reports it.
void erase_all(const FlashContext& ctx);

// PM0075 2.3.1, RM0090 3.6.1: FLASH_KEYR keys (shared by every STM32 here).
constexpr std::uint32_t kKey1 = 0x45670123;
constexpr std::uint32_t kKey2 = 0xCDEF89AB;

}  // namespace probefarm::sim::flash_detail
