#pragma once
// Reading raw USB descriptors back in the USB device model tests, the way a host does.
#include <cstdint>
#include <string>
#include <vector>

namespace probefarm::sim::test {

// The text of a string descriptor whose characters are all ASCII (USB 2.0 9.6.7).
inline std::string ascii(const std::vector<std::uint8_t>& string_descriptor) {
  std::string s;
  for (std::size_t i = 2; i + 1 < string_descriptor.size(); i += 2)
    s += static_cast<char>(string_descriptor[i]);
  return s;
}

// A little-endian 16-bit descriptor field.
inline std::uint16_t le16(const std::vector<std::uint8_t>& d, std::size_t at) {
  return static_cast<std::uint16_t>(d[at] | d[at + 1] << 8);
}

}  // namespace probefarm::sim::test
