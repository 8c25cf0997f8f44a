#pragma once
// Wire format between probefarm-sim (SimServer) and the stand-in libusb-1.0.so.0.
//
// Header-only and dependency-free on purpose: the stand-in library includes it without
// linking anything of the simulator.
//
// Transport: a SOCK_STREAM Unix socket. Every message is one frame:
//
//   u32 length   bytes that follow this field (header + payload), little endian
//   u8  kind     Kind::request | response | event
//   u8  op       Op
//   u16 reserved 0
//   u32 seq      chosen by the client; a response echoes the request's seq; events use 0
//   ...payload
//
// All integers are little endian. `bytes` and `string` are a u32 length then the data.
// Every response payload starts with a u8 Status; the rest depends on the op and is only
// present for Status::ok (and for `in`, which also returns nothing on nak).
//
// Evolution: new ops get new numbers; a server answers an op it does not know with
// Status::unknown_op, so a newer client can probe for features. Hot-plug notifications
// will be Kind::event frames (op = Op::event_*) sent only to clients that asked for them
// with Op::subscribe; clients that never subscribe never see one.
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace probefarm::sim::protocol {

inline constexpr std::uint32_t kVersion = 1;
inline constexpr std::size_t kHeaderSize = 8;  // kind, op, reserved, seq
// Large enough for any transfer we model (CMSIS-DAP packets are <= 1 KiB, control
// transfers <= 64 KiB), small enough that a corrupt length cannot exhaust memory.
inline constexpr std::uint32_t kMaxFrame = 1u << 20;

enum class Kind : std::uint8_t { request = 1, response = 2, event = 3 };

enum class Op : std::uint8_t {
  hello = 1,         // req: u32 client version        resp: u32 server version
  list_devices = 2,  // req: -                         resp: u32 n, n * DeviceInfo
  get_string = 3,    // req: u32 dev, u8 index, u16 langid   resp: bytes descriptor
  open = 4,          // req: u32 dev                   resp: -
  close = 5,         // req: u32 dev                   resp: -
  claim = 6,         // req: u32 dev, u8 interface     resp: -   (busy if another client)
  release = 7,       // req: u32 dev, u8 interface     resp: -
  control = 8,       // req: u32 dev, 8-byte setup, bytes out-data   resp: bytes in-data
  out = 9,           // req: u32 dev, u8 ep, bytes data   resp: u32 transferred
  in = 10,           // req: u32 dev, u8 ep, u32 max_length   resp: bytes data
  clear_halt = 11,   // req: u32 dev, u8 ep            resp: -
  reset = 12,        // req: u32 dev                   resp: -
  ctl = 32,          // req: string command line ("stats")   resp: string text (JSON)
  subscribe = 33,    // reserved for hot-plug events
};

enum class Status : std::uint8_t {
  ok = 0,
  nak = 1,          // IN: nothing ready yet; retry until the caller's timeout
  stall = 2,        // endpoint halted or request not supported
  no_device = 3,    // unknown id, or the device went away
  busy = 4,         // claimed by another client
  bad_request = 5,  // malformed payload or bad argument
  not_open = 6,     // the client did not open the device first
  unknown_op = 7,
  error = 8,  // anything else; for ctl the text says what
};

enum class Speed : std::uint8_t { full = 0, high = 1 };

struct DeviceInfo {
  std::uint32_t id = 0;  // stable for the server's lifetime
  std::uint8_t bus = 0;
  std::uint8_t address = 0;
  std::vector<std::uint8_t> port_path;  // root-hub port first
  Speed speed = Speed::high;
  std::vector<std::uint8_t> device_descriptor;  // 18 raw bytes
  std::vector<std::uint8_t> config_descriptor;  // wTotalLength raw bytes
  std::string serial;
  std::string probe_kind;
};

inline const char* status_name(Status s) {
  switch (s) {
    case Status::ok:
      return "ok";
    case Status::nak:
      return "nak";
    case Status::stall:
      return "stall";
    case Status::no_device:
      return "no_device";
    case Status::busy:
      return "busy";
    case Status::bad_request:
      return "bad_request";
    case Status::not_open:
      return "not_open";
    case Status::unknown_op:
      return "unknown_op";
    case Status::error:
      return "error";
  }
  return "?";
}

class Writer {
 public:
  void u8(std::uint8_t v) { buf_.push_back(v); }
  void u16(std::uint16_t v) {
    u8(static_cast<std::uint8_t>(v));
    u8(static_cast<std::uint8_t>(v >> 8));
  }
  void u32(std::uint32_t v) {
    u16(static_cast<std::uint16_t>(v));
    u16(static_cast<std::uint16_t>(v >> 16));
  }
  void raw(std::span<const std::uint8_t> d) { buf_.insert(buf_.end(), d.begin(), d.end()); }
  void bytes(std::span<const std::uint8_t> d) {
    u32(static_cast<std::uint32_t>(d.size()));
    raw(d);
  }
  void string(std::string_view s) {
    u32(static_cast<std::uint32_t>(s.size()));
    buf_.insert(buf_.end(), s.begin(), s.end());
  }
  std::vector<std::uint8_t>& buffer() { return buf_; }

 private:
  std::vector<std::uint8_t> buf_;
};

// Reads never run past the end: a short payload sets ok() false and yields zeros.
class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> d) : d_(d) {}
  bool ok() const { return ok_; }
  bool at_end() const { return pos_ == d_.size(); }
  std::uint8_t u8() {
    if (!need(1)) return 0;
    return d_[pos_++];
  }
  std::uint16_t u16() {
    std::uint16_t lo = u8();
    return static_cast<std::uint16_t>(lo | (u8() << 8));
  }
  std::uint32_t u32() {
    std::uint32_t lo = u16();
    return lo | (static_cast<std::uint32_t>(u16()) << 16);
  }
  std::span<const std::uint8_t> raw(std::size_t n) {
    if (!need(n)) return {};
    auto s = d_.subspan(pos_, n);
    pos_ += n;
    return s;
  }
  std::vector<std::uint8_t> bytes() {
    auto s = raw(u32());
    return {s.begin(), s.end()};
  }
  std::string string() {
    auto s = raw(u32());
    return {s.begin(), s.end()};
  }

 private:
  bool need(std::size_t n) {
    if (!ok_ || d_.size() - pos_ < n) {
      ok_ = false;
      return false;
    }
    return true;
  }
  std::span<const std::uint8_t> d_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

struct Header {
  Kind kind = Kind::request;
  Op op = Op::hello;
  std::uint32_t seq = 0;
};

// A complete frame (length prefix included) with an empty payload, ready for appends.
inline Writer begin_frame(Kind kind, Op op, std::uint32_t seq) {
  Writer w;
  w.u32(0);  // patched by finish_frame
  w.u8(static_cast<std::uint8_t>(kind));
  w.u8(static_cast<std::uint8_t>(op));
  w.u16(0);
  w.u32(seq);
  return w;
}

inline std::vector<std::uint8_t> finish_frame(Writer& w) {
  auto& b = w.buffer();
  auto n = static_cast<std::uint32_t>(b.size() - 4);
  for (int i = 0; i < 4; ++i)
    b[i] = static_cast<std::uint8_t>(n >> (8 * i));
  return std::move(b);
}

// Splits one frame body (the bytes after the length field) into header and payload.
inline std::optional<Header> parse_header(std::span<const std::uint8_t> body,
                                          std::span<const std::uint8_t>& payload) {
  if (body.size() < kHeaderSize) return std::nullopt;
  Reader r(body);
  Header h;
  h.kind = static_cast<Kind>(r.u8());
  h.op = static_cast<Op>(r.u8());
  r.u16();
  h.seq = r.u32();
  payload = body.subspan(kHeaderSize);
  return h;
}

inline std::uint32_t frame_length(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

inline void write_device_info(Writer& w, const DeviceInfo& d) {
  w.u32(d.id);
  w.u8(d.bus);
  w.u8(d.address);
  w.bytes(d.port_path);
  w.u8(static_cast<std::uint8_t>(d.speed));
  w.bytes(d.device_descriptor);
  w.bytes(d.config_descriptor);
  w.string(d.serial);
  w.string(d.probe_kind);
}

inline DeviceInfo read_device_info(Reader& r) {
  DeviceInfo d;
  d.id = r.u32();
  d.bus = r.u8();
  d.address = r.u8();
  d.port_path = r.bytes();
  d.speed = static_cast<Speed>(r.u8());
  d.device_descriptor = r.bytes();
  d.config_descriptor = r.bytes();
  d.serial = r.string();
  d.probe_kind = r.string();
  return d;
}

}  // namespace probefarm::sim::protocol
