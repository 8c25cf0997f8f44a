#pragma once
// Internals of the stand-in libhidapi-hidraw.so.0: the HID interfaces of probefarm-sim's
// devices as enumeration finds them, and the object behind hidapi's opaque hid_device.
// Nothing here is exported; the library's only exports are the hid_* functions (see
// CMakeLists.txt).
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#pragma GCC visibility push(default)
#include <hidapi/hidapi.h>
#pragma GCC visibility pop

#include "../libusb/connection.hpp"

namespace probefarm::sim::standin::hid {

// One HID interface (class 0x03) of a simulated device.
struct Interface {
  protocol::DeviceInfo device;
  std::uint8_t number = 0;
  std::uint8_t ep_in = 0;   // interrupt IN endpoint; every HID interface has one
  std::uint8_t ep_out = 0;  // interrupt OUT endpoint, 0 if output reports go through EP0
  std::uint16_t in_max_packet = 64;
  std::uint16_t report_descriptor_length = 0;  // from the HID descriptor
  std::uint16_t usage_page = 0;
  std::uint16_t usage = 0;
  std::uint16_t vendor_id = 0;
  std::uint16_t product_id = 0;
  std::uint16_t release_number = 0;  // bcdDevice
  std::wstring manufacturer;
  std::wstring product;
  std::wstring serial;
  std::string path;
};

// ASCII text (our own messages, paths) as a wide string for hid_error().
std::wstring widen(std::string_view s);

// "what: text (probefarm-sim: status)" for a failed request.
std::wstring describe(const char* what, protocol::Status status);

// Connects `conn` to the server named by PROBEFARM_SIM_SOCKET. Empty on success, else why
// not, phrased for hid_error().
std::wstring connect(Connection& conn);

// Every HID interface of the server's devices, with strings and usages filled in.
// Fails (false, `error` set, naming the API call `what`) only when the server cannot be
// asked.
bool list_interfaces(Connection& conn, std::vector<Interface>& out, std::wstring& error,
                     const char* what);

// hid_device_info for `i`, allocated with malloc so hid_free_enumeration can free it.
hid_device_info* make_device_info(const Interface& i);
void free_device_info(hid_device_info* info);

// A UTF-16LE string descriptor as a wide string (wchar_t is UTF-32 on Linux).
std::wstring decode_string(std::span<const std::uint8_t> descriptor);

// Copies `s` into a caller's buffer of `maxlen` wide characters, always terminated, the
// way hidapi's string getters do.
int copy_wide(const std::wstring& s, wchar_t* string, std::size_t maxlen);

}  // namespace probefarm::sim::standin::hid

struct hid_device_ {
  probefarm::sim::standin::Connection conn;  // one per handle, like one hidraw fd each
  probefarm::sim::standin::hid::Interface iface;
  bool nonblocking = false;
  std::wstring error;  // empty: the last call succeeded
  hid_device_info* info = nullptr;
};
