// Reports and strings of an open device (hidapi 0.13 API, hidapi.h), with the hidraw
// backend's semantics: output reports go to the interrupt OUT endpoint (SET_REPORT on EP0
// when there is none), input reports come from the interrupt IN endpoint, and the leading
// report ID byte is stripped or added exactly as Linux hidraw does.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

#include "standin.hpp"

using namespace probefarm::sim::standin;
using namespace probefarm::sim::standin::hid;
namespace proto = probefarm::sim::protocol;

namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

// Retry spacing while the device NAKs its IN endpoint: start short (a response usually
// follows right after the command that causes it), back off so an idle wait does not spin
// a core. The same spacing as the stand-in libusb's.
constexpr auto kFirstRetry = 20us;
constexpr auto kMaxRetry = 1ms;

// HID 1.11 7.2: class requests to the interface; 7.2.1 report types in wValue's high byte.
constexpr std::uint8_t kGetReport = 0x01;
constexpr std::uint8_t kSetReport = 0x09;
constexpr std::uint8_t kReportInput = 1;
constexpr std::uint8_t kReportOutput = 2;
constexpr std::uint8_t kReportFeature = 3;

int fail(hid_device* dev, std::wstring why) {
  dev->error = std::move(why);
  return -1;
}

// A control transfer on EP0 through the server. IN data lands in `in_data`.
proto::Status control(hid_device* dev, std::uint8_t request_type, std::uint8_t request,
                      std::uint16_t value, std::span<const std::uint8_t> out_data,
                      std::uint16_t in_length, std::vector<std::uint8_t>& in_data) {
  const bool in = request_type & 0x80;
  const auto length = static_cast<std::uint16_t>(in ? in_length : out_data.size());
  proto::Writer w;
  w.u32(dev->iface.device.id);
  w.raw(std::vector<std::uint8_t>{request_type, request, static_cast<std::uint8_t>(value),
                                  static_cast<std::uint8_t>(value >> 8), dev->iface.number, 0,
                                  static_cast<std::uint8_t>(length),
                                  static_cast<std::uint8_t>(length >> 8)});
  w.bytes(in ? std::span<const std::uint8_t>() : out_data);
  Reply r = dev->conn.request(proto::Op::control, w.buffer());
  if (r.status == proto::Status::ok && in) {
    proto::Reader rd(r.payload);
    in_data = rd.bytes();
  }
  return r.status;
}

// SET_REPORT (HID 1.11 7.2.2). hidraw sends the report ID in the data stage only when it
// is not 0.
int set_report(hid_device* dev, std::uint8_t type, const unsigned char* data, std::size_t length,
               const char* what) {
  if (!data || length == 0) return fail(dev, widen(what) + L": zero buffer/length");
  std::span<const std::uint8_t> report(data, length);
  if (data[0] == 0) report = report.subspan(1);
  std::vector<std::uint8_t> unused;
  auto s = control(dev, 0x21, kSetReport, static_cast<std::uint16_t>(type << 8 | data[0]), report,
                   0, unused);
  if (s != proto::Status::ok) return fail(dev, describe(what, s));
  return static_cast<int>(length);
}

// GET_REPORT (HID 1.11 7.2.1). The caller's first byte names the report; on return it still
// does, and the report follows (hidraw HIDIOCGFEATURE/HIDIOCGINPUT).
int get_report(hid_device* dev, std::uint8_t type, unsigned char* data, std::size_t length,
               const char* what) {
  if (!data || length == 0) return fail(dev, widen(what) + L": zero buffer/length");
  const std::uint8_t id = data[0];
  const std::size_t skip = id == 0 ? 1 : 0;
  const auto want = static_cast<std::uint16_t>(std::min<std::size_t>(length - skip, 0xFFFF));
  std::vector<std::uint8_t> report;
  auto s =
      control(dev, 0xA1, kGetReport, static_cast<std::uint16_t>(type << 8 | id), {}, want, report);
  if (s != proto::Status::ok) return fail(dev, describe(what, s));
  const std::size_t n = std::min<std::size_t>(report.size(), length - skip);
  if (n) std::memcpy(data + skip, report.data(), n);
  return static_cast<int>(n + skip);
}

}  // namespace

extern "C" {

int hid_write(hid_device* dev, const unsigned char* data, size_t length) {
  if (!dev) return -1;
  dev->error.clear();
  if (!data || length == 0) return fail(dev, L"hid_write: zero buffer/length");
  // Without an interrupt OUT endpoint, usbhid sends output reports as SET_REPORT on EP0.
  if (!dev->iface.ep_out) return set_report(dev, kReportOutput, data, length, "hid_write");
  // Report ID 0 means "no report IDs": it is not sent. Any other ID is part of the report.
  std::span<const std::uint8_t> report(data, length);
  if (data[0] == 0) report = report.subspan(1);
  proto::Writer w;
  w.u32(dev->iface.device.id);
  w.u8(dev->iface.ep_out);
  w.bytes(report);
  Reply r = dev->conn.request(proto::Op::out, w.buffer());
  if (r.status != proto::Status::ok) return fail(dev, describe("hid_write", r.status));
  // hidraw's write() returns the byte count it was given, report ID byte included.
  return static_cast<int>(length);
}

int hid_read_timeout(hid_device* dev, unsigned char* data, size_t length, int milliseconds) {
  if (!dev) return -1;
  dev->error.clear();
  if (!data || length == 0) return fail(dev, L"hid_read_timeout: zero buffer/length");
  const auto deadline = SteadyClock::now() + std::chrono::milliseconds(std::max(0, milliseconds));
  auto delay = std::chrono::duration_cast<SteadyClock::duration>(kFirstRetry);
  proto::Writer w;
  w.u32(dev->iface.device.id);
  w.u8(dev->iface.ep_in);
  w.u32(dev->iface.in_max_packet);  // the host controller always asks for a whole packet
  for (;;) {
    Reply r = dev->conn.request(proto::Op::in, w.buffer());
    if (r.status == proto::Status::ok) {
      proto::Reader rd(r.payload);
      auto report = rd.bytes();
      // hidraw hands out whole reports; a buffer too small gets the report's beginning.
      const std::size_t n = std::min(report.size(), length);
      if (n) std::memcpy(data, report.data(), n);
      return static_cast<int>(n);
    }
    if (r.status != proto::Status::nak) return fail(dev, describe("hid_read_timeout", r.status));
    // NAK: no report yet. 0 = poll once, -1 = wait for ever, else until the deadline.
    if (milliseconds == 0) return 0;
    const auto now = SteadyClock::now();
    if (milliseconds > 0 && now >= deadline) return 0;
    std::this_thread::sleep_for(milliseconds > 0 ? std::min(delay, deadline - now) : delay);
    delay = std::min<SteadyClock::duration>(delay * 2, kMaxRetry);
  }
}

int hid_read(hid_device* dev, unsigned char* data, size_t length) {
  if (!dev) return -1;
  return hid_read_timeout(dev, data, length, dev->nonblocking ? 0 : -1);
}

int hid_set_nonblocking(hid_device* dev, int nonblock) {
  if (!dev) return -1;
  dev->nonblocking = nonblock != 0;
  return 0;
}

int hid_send_feature_report(hid_device* dev, const unsigned char* data, size_t length) {
  if (!dev) return -1;
  dev->error.clear();
  return set_report(dev, kReportFeature, data, length, "hid_send_feature_report");
}

int hid_get_feature_report(hid_device* dev, unsigned char* data, size_t length) {
  if (!dev) return -1;
  dev->error.clear();
  return get_report(dev, kReportFeature, data, length, "hid_get_feature_report");
}

int hid_get_input_report(hid_device* dev, unsigned char* data, size_t length) {
  if (!dev) return -1;
  dev->error.clear();
  return get_report(dev, kReportInput, data, length, "hid_get_input_report");
}

int hid_get_manufacturer_string(hid_device* dev, wchar_t* string, size_t maxlen) {
  if (!dev) return -1;
  dev->error.clear();
  if (copy_wide(dev->iface.manufacturer, string, maxlen) != 0)
    return fail(dev, L"hid_get_manufacturer_string: zero buffer/length");
  return 0;
}

int hid_get_product_string(hid_device* dev, wchar_t* string, size_t maxlen) {
  if (!dev) return -1;
  dev->error.clear();
  if (copy_wide(dev->iface.product, string, maxlen) != 0)
    return fail(dev, L"hid_get_product_string: zero buffer/length");
  return 0;
}

int hid_get_serial_number_string(hid_device* dev, wchar_t* string, size_t maxlen) {
  if (!dev) return -1;
  dev->error.clear();
  if (copy_wide(dev->iface.serial, string, maxlen) != 0)
    return fail(dev, L"hid_get_serial_number_string: zero buffer/length");
  return 0;
}

int hid_get_indexed_string(hid_device* dev, int string_index, wchar_t* string, size_t maxlen) {
  if (!dev) return -1;
  dev->error.clear();
  if (!string || maxlen == 0) return fail(dev, L"hid_get_indexed_string: zero buffer/length");
  if (string_index <= 0 || string_index > 255)
    return fail(dev, L"hid_get_indexed_string: no string with that index");
  proto::Writer w;
  w.u32(dev->iface.device.id);
  w.u8(static_cast<std::uint8_t>(string_index));
  w.u16(0x0409);  // the one language simulated devices offer (USB 2.0 9.6.7)
  Reply r = dev->conn.request(proto::Op::get_string, w.buffer());
  if (r.status != proto::Status::ok) return fail(dev, describe("hid_get_indexed_string", r.status));
  proto::Reader rd(r.payload);
  return copy_wide(decode_string(rd.bytes()), string, maxlen);
}

struct hid_device_info* hid_get_device_info(hid_device* dev) {
  if (!dev) return nullptr;
  dev->error.clear();
  if (!dev->info) dev->info = make_device_info(dev->iface);
  return dev->info;
}

}  // extern "C"
