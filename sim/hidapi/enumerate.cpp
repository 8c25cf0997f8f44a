// Library state, enumeration, opening and closing, errors (hidapi 0.13 API, hidapi.h):
// the HID interfaces of probefarm-sim's devices as the hidraw backend would list them.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cwchar>
#include <memory>
#include <mutex>

#include "standin.hpp"

using namespace probefarm::sim::standin;
using namespace probefarm::sim::standin::hid;
namespace proto = probefarm::sim::protocol;

namespace {

constexpr std::uint16_t kLangId = 0x0409;  // English (US), USB 2.0 9.6.7

// Enumeration and hid_open() ask the server through one connection per process; each open
// device has its own (hid_device_::conn), so closing one never disturbs another.
std::mutex g_mu;
Connection g_conn;
std::wstring g_error;  // hid_error(NULL); empty: no error
bool g_warned = false;

std::uint16_t le16(const std::vector<std::uint8_t>& d, std::size_t at) {
  return static_cast<std::uint16_t>(d[at] | d[at + 1] << 8);
}

// Connects the process-wide connection if it is not; sets g_error when that fails.
bool ensure_connected() {
  if (g_conn.connected()) return true;
  g_error = connect(g_conn);
  if (g_error.empty()) return true;
  // Programs rarely print hid_error() after an empty enumeration (OpenOCD does not), so the
  // reason is said once on stderr too, as the stand-in libusb does.
  if (!g_warned) std::fprintf(stderr, "hidapi (probefarm-sim stand-in): %ls\n", g_error.c_str());
  g_warned = true;
  return false;
}

// The first top-level usage of a report descriptor: the Usage Page and Usage items in force
// at its first Collection (HID 1.11 6.2.2.2 short items, 6.2.2.7 global, 6.2.2.8 local). A
// 4-byte Usage carries its own page in the high half (HID 1.11 6.2.2.8).
void parse_usage(const std::vector<std::uint8_t>& d, Interface& i) {
  std::uint32_t page = 0, usage = 0;
  for (std::size_t at = 0; at < d.size();) {
    const std::uint8_t prefix = d[at];
    if (prefix == 0xFE) {  // long item: bDataSize, bLongItemTag, data (6.2.2.3)
      if (at + 1 >= d.size()) return;
      at += 3 + d[at + 1];
      continue;
    }
    const std::size_t size = (prefix & 3) == 3 ? 4 : prefix & 3;
    if (at + 1 + size > d.size()) return;
    std::uint32_t value = 0;
    for (std::size_t b = 0; b < size; ++b)
      value |= static_cast<std::uint32_t>(d[at + 1 + b]) << (8 * b);
    switch (prefix & 0xFC) {
      case 0x04:  // Usage Page (global)
        page = value;
        break;
      case 0x08:  // Usage (local)
        usage = value;
        if (size == 4) page = value >> 16;
        break;
      case 0xA0:  // Collection (main)
        i.usage_page = static_cast<std::uint16_t>(page);
        i.usage = static_cast<std::uint16_t>(usage);
        return;
    }
    at += 1 + size;
  }
}

// Walks a configuration descriptor (USB 2.0 9.6.3) for HID interfaces (alternate setting 0)
// with their HID descriptor (HID 1.11 6.2.1) and interrupt endpoints (USB 2.0 9.6.6).
std::vector<Interface> hid_interfaces(const proto::DeviceInfo& dev) {
  std::vector<Interface> found;
  const auto& c = dev.config_descriptor;
  Interface* current = nullptr;
  for (std::size_t at = 0; at + 2 <= c.size() && c[at] >= 2; at += c[at]) {
    const std::uint8_t len = c[at], type = c[at + 1];
    if (at + len > c.size()) break;
    if (type == 4 && len >= 9) {
      current = nullptr;
      if (c[at + 5] == 0x03 && c[at + 3] == 0) {
        found.emplace_back();
        current = &found.back();
        current->number = c[at + 2];
      }
    } else if (current && type == 0x21 && len >= 9) {
      current->report_descriptor_length = le16(c, at + 7);
    } else if (current && type == 5 && len >= 7 && (c[at + 3] & 3) == 3) {
      const std::uint8_t address = c[at + 2];
      if (address & 0x80) {
        if (!current->ep_in) {
          current->ep_in = address;
          current->in_max_packet = le16(c, at + 4) & 0x7FF;
        }
      } else if (!current->ep_out) {
        current->ep_out = address;
      }
    }
  }
  return found;
}

std::wstring fetch_string(Connection& conn, std::uint32_t id, std::uint8_t index) {
  if (index == 0) return {};
  proto::Writer w;
  w.u32(id);
  w.u8(index);
  w.u16(kLangId);
  Reply r = conn.request(proto::Op::get_string, w.buffer());
  if (r.status != proto::Status::ok) return {};
  proto::Reader rd(r.payload);
  return decode_string(rd.bytes());
}

// GET_DESCRIPTOR(Report) to the interface (HID 1.11 7.1.1), which needs the device open.
std::vector<std::uint8_t> fetch_report_descriptor(Connection& conn, const Interface& i) {
  proto::Writer open;
  open.u32(i.device.id);
  if (conn.request(proto::Op::open, open.buffer()).status != proto::Status::ok) return {};
  proto::Writer w;
  w.u32(i.device.id);
  const std::uint16_t length = i.report_descriptor_length ? i.report_descriptor_length : 4096;
  w.raw(std::vector<std::uint8_t>{0x81, 0x06, 0x00, 0x22, i.number, 0,
                                  static_cast<std::uint8_t>(length),
                                  static_cast<std::uint8_t>(length >> 8)});
  w.bytes(std::vector<std::uint8_t>{});
  Reply r = conn.request(proto::Op::control, w.buffer());
  conn.request(proto::Op::close, open.buffer());
  if (r.status != proto::Status::ok) return {};
  proto::Reader rd(r.payload);
  return rd.bytes();
}

hid_device_info* enumerate_locked(unsigned short vendor_id, unsigned short product_id) {
  std::vector<Interface> all;
  if (!ensure_connected()) return nullptr;
  if (!list_interfaces(g_conn, all, g_error, "hid_enumerate")) {
    // The server may have restarted since the last call: ask a fresh one once.
    all.clear();
    if (g_conn.connected() || !ensure_connected() ||
        !list_interfaces(g_conn, all, g_error, "hid_enumerate"))
      return nullptr;
  }
  hid_device_info* head = nullptr;
  hid_device_info** tail = &head;
  for (const auto& i : all) {
    if ((vendor_id && vendor_id != i.vendor_id) || (product_id && product_id != i.product_id))
      continue;
    if (!(*tail = make_device_info(i))) break;  // out of memory: what we have so far
    tail = &(*tail)->next;
  }
  if (!head)
    g_error = vendor_id || product_id
                  ? L"No HID devices with requested VID/PID found in the system."
                  : L"No HID devices found in the system.";
  else
    g_error.clear();
  return head;
}

}  // namespace

namespace probefarm::sim::standin::hid {

std::wstring widen(std::string_view s) {
  return std::wstring(s.begin(), s.end());
}

std::wstring describe(const char* what, proto::Status status) {
  std::wstring text = widen(what) + L": ";
  switch (status) {
    case proto::Status::no_device:
      text += L"device disconnected (the probefarm-sim server went away or lost the device)";
      break;
    case proto::Status::busy:
      text += L"device in use by another program";
      break;
    case proto::Status::stall:
      text += L"the device stalled the request";
      break;
    case proto::Status::not_open:
      text += L"device not open";
      break;
    default:
      text += L"request failed";
      break;
  }
  return text + L" (probefarm-sim: " + widen(proto::status_name(status)) + L")";
}

std::wstring connect(Connection& conn) {
  const char* path = std::getenv("PROBEFARM_SIM_SOCKET");
  std::string why;
  if (!path || !*path)
    why = "PROBEFARM_SIM_SOCKET is not set";
  else if (auto err = conn.connect(path); !err.empty())
    why = "cannot connect to " + std::string(path) + ": " + err;
  else
    return {};
  return widen(why) +
         L"; no HID devices (start probefarm-sim and eval \"$(probefarm-sim env --socket PATH)\")";
}

bool list_interfaces(Connection& conn, std::vector<Interface>& out, std::wstring& error,
                     const char* what) {
  Reply r = conn.request(proto::Op::list_devices);
  if (r.status != proto::Status::ok) {
    error = describe(what, r.status);
    return false;
  }
  proto::Reader rd(r.payload);
  const std::uint32_t n = rd.u32();
  for (std::uint32_t k = 0; k < n && rd.ok(); ++k) {
    auto dev = proto::read_device_info(rd);
    if (!rd.ok() || dev.device_descriptor.size() < 18) break;
    const auto& d = dev.device_descriptor;  // USB 2.0 9.6.1 Table 9-8
    for (auto& i : hid_interfaces(dev)) {
      i.device = dev;
      i.vendor_id = le16(d, 8);
      i.product_id = le16(d, 10);
      i.release_number = le16(d, 12);
      i.manufacturer = fetch_string(conn, dev.id, d[14]);
      i.product = fetch_string(conn, dev.id, d[15]);
      i.serial = fetch_string(conn, dev.id, d[16]);
      parse_usage(fetch_report_descriptor(conn, i), i);
      // The hidapi libusb backend's path form: bus, device address, interface, in hex.
      char path[32];
      std::snprintf(path, sizeof(path), "%04x:%04x:%02x", dev.bus, dev.address, i.number);
      i.path = path;
      out.push_back(std::move(i));
    }
  }
  return true;
}

hid_device_info* make_device_info(const Interface& i) {
  auto* info = static_cast<hid_device_info*>(std::calloc(1, sizeof(hid_device_info)));
  if (!info) return nullptr;
  info->path = strdup(i.path.c_str());
  info->vendor_id = i.vendor_id;
  info->product_id = i.product_id;
  // Absent strings are empty rather than NULL, as the hidraw backend reports them.
  info->serial_number = wcsdup(i.serial.c_str());
  info->release_number = i.release_number;
  info->manufacturer_string = wcsdup(i.manufacturer.c_str());
  info->product_string = wcsdup(i.product.c_str());
  info->usage_page = i.usage_page;
  info->usage = i.usage;
  info->interface_number = i.number;
  info->bus_type = HID_API_BUS_USB;
  return info;
}

void free_device_info(hid_device_info* info) {
  if (!info) return;
  std::free(info->path);
  std::free(info->serial_number);
  std::free(info->manufacturer_string);
  std::free(info->product_string);
  std::free(info);
}

std::wstring decode_string(std::span<const std::uint8_t> d) {
  // USB 2.0 9.6.7: bLength, bDescriptorType 3, UTF-16LE code units.
  std::wstring s;
  if (d.size() < 2 || d[1] != 3) return s;
  const std::size_t end = std::min<std::size_t>(d[0], d.size());
  for (std::size_t at = 2; at + 1 < end; at += 2) {
    char32_t unit = static_cast<char32_t>(d[at] | d[at + 1] << 8);
    if (unit >= 0xD800 && unit < 0xDC00 && at + 3 < end) {
      char32_t low = static_cast<char32_t>(d[at + 2] | d[at + 3] << 8);
      if (low >= 0xDC00 && low < 0xE000) {
        unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
        at += 2;
      }
    }
    s.push_back(static_cast<wchar_t>(unit));
  }
  return s;
}

int copy_wide(const std::wstring& s, wchar_t* string, std::size_t maxlen) {
  if (!string || maxlen == 0) return -1;
  std::wcsncpy(string, s.c_str(), maxlen);
  string[maxlen - 1] = L'\0';
  return 0;
}

}  // namespace probefarm::sim::standin::hid

extern "C" {

int hid_init(void) {
  // Nothing to set up: the server is asked when devices are listed or opened.
  std::lock_guard lock(g_mu);
  g_error.clear();
  return 0;
}

int hid_exit(void) {
  std::lock_guard lock(g_mu);
  g_conn.disconnect();
  g_error.clear();
  return 0;
}

struct hid_device_info* hid_enumerate(unsigned short vendor_id, unsigned short product_id) {
  std::lock_guard lock(g_mu);
  return enumerate_locked(vendor_id, product_id);
}

void hid_free_enumeration(struct hid_device_info* devs) {
  while (devs) {
    hid_device_info* next = devs->next;
    free_device_info(devs);
    devs = next;
  }
}

hid_device* hid_open(unsigned short vendor_id, unsigned short product_id,
                     const wchar_t* serial_number) {
  std::string path;
  {
    std::lock_guard lock(g_mu);
    hid_device_info* devs = enumerate_locked(vendor_id, product_id);
    const bool any = devs != nullptr;
    for (hid_device_info* d = devs; d; d = d->next)
      if (!serial_number || std::wcscmp(serial_number, d->serial_number) == 0) {
        path = d->path;
        break;
      }
    hid_free_enumeration(devs);
    if (path.empty()) {
      if (any) g_error = L"hid_open: no HID device with the requested serial number";
      return nullptr;
    }
  }
  return hid_open_path(path.c_str());
}

hid_device* hid_open_path(const char* path) {
  auto fail = [](std::wstring why) -> hid_device* {
    std::lock_guard lock(g_mu);
    g_error = std::move(why);
    return nullptr;
  };
  if (!path) return fail(L"hid_open_path: path is NULL");
  auto dev = std::make_unique<hid_device_>();
  if (auto err = connect(dev->conn); !err.empty()) return fail(err);
  std::vector<Interface> all;
  std::wstring error;
  if (!list_interfaces(dev->conn, all, error, "hid_open_path")) return fail(error);
  auto it =
      std::find_if(all.begin(), all.end(), [&](const Interface& i) { return i.path == path; });
  if (it == all.end())
    return fail(L"hid_open_path: no probefarm-sim HID device at '" + widen(path) + L"'");
  dev->iface = std::move(*it);
  // Open, then claim the interface: the server's usbfs rules make it this handle's alone,
  // and a device another program drives is refused here rather than on the first report.
  proto::Writer w;
  w.u32(dev->iface.device.id);
  Reply r = dev->conn.request(proto::Op::open, w.buffer());
  if (r.status != proto::Status::ok) return fail(describe("hid_open_path", r.status));
  w.u8(dev->iface.number);
  r = dev->conn.request(proto::Op::claim, w.buffer());
  if (r.status != proto::Status::ok) return fail(describe("hid_open_path", r.status));
  {
    std::lock_guard lock(g_mu);
    g_error.clear();
  }
  return dev.release();
}

void hid_close(hid_device* dev) {
  if (!dev) return;
  // Closing releases the claim and lets the server save the board's state.
  proto::Writer w;
  w.u32(dev->iface.device.id);
  dev->conn.request(proto::Op::close, w.buffer());
  free_device_info(dev->info);
  delete dev;
}

const wchar_t* hid_error(hid_device* dev) {
  // Never NULL (hidapi.h); "Success" after a call that worked, as hidapi says it.
  if (dev) return dev->error.empty() ? L"Success" : dev->error.c_str();
  std::lock_guard lock(g_mu);
  return g_error.empty() ? L"Success" : g_error.c_str();
}

const struct hid_api_version* hid_version(void) {
  // The API level this stand-in implements is that of the header it was built with.
  static const hid_api_version v = {HID_API_VERSION_MAJOR, HID_API_VERSION_MINOR,
                                    HID_API_VERSION_PATCH};
  return &v;
}

const char* hid_version_str(void) {
  return HID_API_VERSION_STR;
}

}  // extern "C"
