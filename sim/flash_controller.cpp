#include "flash_controller.hpp"

#include <algorithm>

#include "flash_detail.hpp"

namespace probefarm::sim {

std::unique_ptr<FlashController> make_flash_controller(const FlashContext& ctx) {
  switch (ctx.chip.flash_style) {
    case FlashStyle::f1:
      return flash_detail::make_f1(ctx);
    case FlashStyle::f4:
    case FlashStyle::f7:
      return flash_detail::make_f4(ctx);
  }
  return nullptr;
}

namespace flash_detail {

std::uint32_t load_le(std::span<const std::uint8_t> bytes, std::uint32_t offset, unsigned size) {
  std::uint32_t value = 0;
  for (unsigned i = 0; i < size; ++i)
    value |= std::uint32_t{bytes[offset + i]} << (8 * i);
  return value;
}

void store_le(std::span<std::uint8_t> bytes, std::uint32_t offset, std::uint32_t value,
              unsigned size) {
  for (unsigned i = 0; i < size; ++i)
    bytes[offset + i] = static_cast<std::uint8_t>(value >> (8 * i));
}

WordWrite widen_write(std::uint32_t offset, std::uint32_t value, unsigned size) {
  const unsigned shift = 8 * (offset & 3);
  const std::uint32_t lanes = size >= 4 ? 0xFFFFFFFFu : ((1u << (8 * size)) - 1);
  return WordWrite{offset & ~3u, (value & lanes) << shift, lanes << shift};
}

std::uint32_t narrow_read(std::uint32_t word, std::uint32_t offset, unsigned size) {
  const std::uint32_t shifted = word >> (8 * (offset & 3));
  return size >= 4 ? shifted : shifted & ((1u << (8 * size)) - 1);
}

bool debug_protected(const FlashContext& ctx, ReadProtection level) {
  return level != ReadProtection::level0 && ctx.debugger_attached && ctx.debugger_attached();
}

void erase_all(const FlashContext& ctx) {
  std::fill(ctx.flash.begin(), ctx.flash.end(), std::uint8_t{0xFF});
  ctx.counters.mass_erases += 1;
  if (ctx.on_flash_changed) ctx.on_flash_changed(0, ctx.chip.flash_size);
}

bool KeySequence::write(const WordWrite& w, bool currently_unlocked) {
  if (state_ == State::lockup) return false;
  // A key is a whole word; a partial write cannot be a key.
  const bool whole = w.mask == 0xFFFFFFFFu;
  if (currently_unlocked && policy_ == WhileUnlocked::lock_up) {
    state_ = State::lockup;
    return false;
  }
  if (state_ == State::want_key1 && whole && w.value == key1_) {
    state_ = State::want_key2;
    return false;
  }
  if (state_ == State::want_key2 && whole && w.value == key2_) {
    state_ = State::want_key1;
    return true;
  }
  state_ = State::lockup;
  return false;
}

}  // namespace flash_detail
}  // namespace probefarm::sim
