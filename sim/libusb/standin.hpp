#pragma once
// Internals of the stand-in libusb-1.0.so.0: the objects behind libusb's opaque handles
// (the socket connection to probefarm-sim is connection.hpp). Nothing here is exported;
// the library's only exports are the libusb_* functions (see CMakeLists.txt).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#pragma GCC visibility push(default)
#include <libusb-1.0/libusb.h>
#pragma GCC visibility pop

#include "connection.hpp"

namespace probefarm::sim::standin {

using SteadyClock = std::chrono::steady_clock;

}  // namespace probefarm::sim::standin

struct libusb_context {
  probefarm::sim::standin::Connection conn;
  std::mutex mu;  // guards everything below; taken before conn's own lock, never after
  std::map<std::uint32_t, libusb_device*> devices;  // by server id, while referenced
  std::list<libusb_transfer*> pending;              // submitted, in submission order
  bool is_default = false;
  int default_refs = 0;
};

struct libusb_device {
  libusb_context* ctx = nullptr;
  std::atomic<int> refs{1};
  probefarm::sim::protocol::DeviceInfo info;
};

struct libusb_device_handle {
  libusb_device* dev = nullptr;
  std::set<int> claimed;
};

namespace probefarm::sim::standin {

// Sends `op` for the context; a lost connection reads as Status::no_device.
inline Reply request(libusb_context* ctx, protocol::Op op,
                     const std::vector<std::uint8_t>& payload = {}) {
  return ctx->conn.request(op, payload);
}

inline int to_libusb_error(protocol::Status s) {
  using protocol::Status;
  switch (s) {
    case Status::ok:
      return LIBUSB_SUCCESS;
    case Status::nak:
      return LIBUSB_ERROR_TIMEOUT;
    case Status::stall:
      return LIBUSB_ERROR_PIPE;
    case Status::no_device:
      return LIBUSB_ERROR_NO_DEVICE;
    case Status::busy:
      return LIBUSB_ERROR_BUSY;
    case Status::bad_request:
      return LIBUSB_ERROR_INVALID_PARAM;
    case Status::not_open:
      return LIBUSB_ERROR_NO_DEVICE;
    case Status::unknown_op:
      return LIBUSB_ERROR_NOT_SUPPORTED;
    case Status::error:
      return LIBUSB_ERROR_IO;
  }
  return LIBUSB_ERROR_OTHER;
}

libusb_context* resolve(libusb_context* ctx);  // NULL means the default context

// Control transfer through the server; returns bytes transferred or a LIBUSB_ERROR_*.
int control(libusb_device_handle* h, std::uint8_t request_type, std::uint8_t b_request,
            std::uint16_t value, std::uint16_t index, unsigned char* data, std::uint16_t length);

// Parses raw configuration descriptor bytes the way libusb presents them.
int parse_config(const std::vector<std::uint8_t>& raw, libusb_config_descriptor** out);
void free_config(libusb_config_descriptor* config);
void parse_device_descriptor(const std::vector<std::uint8_t>& raw, libusb_device_descriptor* out);

// Pending transfers are dropped when their handle closes.
void forget_transfers(libusb_device_handle* h);

}  // namespace probefarm::sim::standin
