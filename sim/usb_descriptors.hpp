#pragma once
// Builders for the standard USB descriptors every simulated probe serves (USB 2.0
// specification chapter 9.6). Each probe model assembles its own descriptor bytes with
// these, so the layouts are written once.
#include <algorithm>
#include <cstdint>
#include <string_view>
#include <vector>

namespace probefarm::sim::usb {

inline void put16(std::vector<std::uint8_t>& v, std::uint16_t x) {
  v.push_back(static_cast<std::uint8_t>(x));
  v.push_back(static_cast<std::uint8_t>(x >> 8));
}

// USB 2.0 9.6.6 Table 9-13. `attributes`: 0x02 bulk, 0x03 interrupt.
inline void put_endpoint(std::vector<std::uint8_t>& v, std::uint8_t address,
                         std::uint8_t attributes, std::uint16_t max_packet, std::uint8_t interval) {
  v.insert(v.end(), {7, 5, address, attributes});
  put16(v, max_packet);
  v.push_back(interval);
}

// USB 2.0 9.6.1 Table 9-8. Strings: 1 manufacturer, 2 product, 3 serial.
inline std::vector<std::uint8_t> device_descriptor(std::uint16_t bcd_usb, std::uint8_t device_class,
                                                   std::uint16_t vendor, std::uint16_t product,
                                                   std::uint16_t bcd_device) {
  std::vector<std::uint8_t> d{18, 1};
  put16(d, bcd_usb);
  // Class/subclass/protocol (0: per interface unless given); EP0 64 bytes (USB 2.0 5.5.3).
  d.insert(d.end(), {device_class, 0x00, 0x00, 64});
  put16(d, vendor);
  put16(d, product);
  put16(d, bcd_device);
  d.insert(d.end(), {1, 2, 3, 1});
  return d;
}

// Patches wTotalLength (bytes 2-3) of a configuration descriptor assembled in `d`.
inline void finish_config(std::vector<std::uint8_t>& d) {
  d[2] = static_cast<std::uint8_t>(d.size());
  d[3] = static_cast<std::uint8_t>(d.size() >> 8);
}

// USB 2.0 9.6.7: string descriptor zero, the LANGID table: 0x0409 English (US).
inline std::vector<std::uint8_t> langid_descriptor() {
  return {4, 3, 0x09, 0x04};
}

// USB 2.0 9.6.7: a UNICODE (UTF-16LE) string; bLength counts the 2-byte header.
inline std::vector<std::uint8_t> ascii_string_descriptor(std::string_view s) {
  std::vector<std::uint8_t> d;
  const std::size_t n = std::min<std::size_t>(s.size(), 126);
  d.push_back(static_cast<std::uint8_t>(2 + 2 * n));
  d.push_back(3);
  for (std::size_t i = 0; i < n; ++i)
    put16(d, static_cast<std::uint8_t>(s[i]));
  return d;
}

// String descriptors of a probe with one interface: 0 the LANGID table, then the indices
// device_descriptor() names (1 manufacturer, 2 product, 3 serial) and 4, the interface
// string. Empty for any other index (the device stalls the request).
struct ProbeStrings {
  std::string_view manufacturer;
  std::string_view product;
  std::string_view serial;
  std::string_view interface;
};
constexpr std::uint8_t kStringInterface = 4;

inline std::vector<std::uint8_t> probe_string_descriptor(const ProbeStrings& s,
                                                         std::uint8_t index) {
  switch (index) {
    case 0:
      return langid_descriptor();
    case 1:
      return ascii_string_descriptor(s.manufacturer);
    case 2:
      return ascii_string_descriptor(s.product);
    case 3:
      return ascii_string_descriptor(s.serial);
    case kStringInterface:
      return ascii_string_descriptor(s.interface);
    default:
      return {};
  }
}

}  // namespace probefarm::sim::usb
