#pragma once
// Byte-level helpers shared by the probe drivers and the layers above: little-endian fields
// (USB probe protocols and the ARM debug registers are little-endian) and the "0x%08X"
// address text that error messages use.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace probefarm::probe {

inline std::uint16_t load_le16(std::span<const std::uint8_t> b, std::size_t at) {
  return static_cast<std::uint16_t>(b[at] | b[at + 1] << 8);
}

inline std::uint32_t load_le32(std::span<const std::uint8_t> b, std::size_t at) {
  return load_le16(b, at) | static_cast<std::uint32_t>(load_le16(b, at + 2)) << 16;
}

inline void store_le16(std::span<std::uint8_t> b, std::size_t at, std::uint32_t v) {
  b[at] = static_cast<std::uint8_t>(v);
  b[at + 1] = static_cast<std::uint8_t>(v >> 8);
}

inline void store_le32(std::span<std::uint8_t> b, std::size_t at, std::uint32_t v) {
  store_le16(b, at, v);
  store_le16(b, at + 2, v >> 16);
}

inline void append_le16(std::vector<std::uint8_t>& v, std::uint16_t x) {
  v.push_back(static_cast<std::uint8_t>(x));
  v.push_back(static_cast<std::uint8_t>(x >> 8));
}

inline void append_le32(std::vector<std::uint8_t>& v, std::uint32_t x) {
  append_le16(v, static_cast<std::uint16_t>(x));
  append_le16(v, static_cast<std::uint16_t>(x >> 16));
}

// "0x0800ABCD": addresses and register values in messages.
std::string hex32(std::uint32_t v);

}  // namespace probefarm::probe
