// Contexts, device enumeration, handles, descriptors and the small helpers of the libusb
// API (libusb-1.0 API reference, "Library initialization", "Device handling and
// enumeration", "USB descriptors", "Miscellaneous").
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "standin.hpp"

using namespace probefarm::sim::standin;
namespace proto = probefarm::sim::protocol;

namespace {

std::mutex g_default_mu;
libusb_context* g_default = nullptr;

void connect_or_warn(libusb_context* ctx, bool warn) {
  const char* path = std::getenv("PROBEFARM_SIM_SOCKET");
  std::string why;
  if (!path || !*path)
    why = "PROBEFARM_SIM_SOCKET is not set";
  else if (auto err = ctx->conn.connect(path); !err.empty())
    why = "cannot connect to " + std::string(path) + ": " + err;
  else
    return;
  if (warn)
    std::fprintf(stderr,
                 "libusb (probefarm-sim stand-in): %s; no USB devices "
                 "(start probefarm-sim and eval \"$(probefarm-sim env --socket PATH)\")\n",
                 why.c_str());
}

libusb_device* make_device(libusb_context* ctx, proto::DeviceInfo info) {
  auto* d = new libusb_device;
  d->ctx = ctx;
  d->info = std::move(info);
  return d;
}

}  // namespace

namespace probefarm::sim::standin {

libusb_context* resolve(libusb_context* ctx) {
  if (ctx) return ctx;
  std::lock_guard lock(g_default_mu);
  return g_default;
}

int control(libusb_device_handle* h, std::uint8_t request_type, std::uint8_t b_request,
            std::uint16_t value, std::uint16_t index, unsigned char* data, std::uint16_t length) {
  if (!h) return LIBUSB_ERROR_INVALID_PARAM;
  proto::Writer w;
  w.u32(h->dev->info.id);
  w.u8(request_type);
  w.u8(b_request);
  w.u16(value);
  w.u16(index);
  w.u16(length);
  const bool in = request_type & LIBUSB_ENDPOINT_IN;
  w.bytes(in || !data ? std::span<const std::uint8_t>()
                      : std::span<const std::uint8_t>(data, length));
  Reply r = request(h->dev->ctx, proto::Op::control, w.buffer());
  if (r.status != proto::Status::ok) return to_libusb_error(r.status);
  if (!in) return length;
  proto::Reader rd(r.payload);
  auto bytes = rd.bytes();
  std::size_t n = std::min<std::size_t>(bytes.size(), length);
  if (n) std::memcpy(data, bytes.data(), n);
  return static_cast<int>(n);
}

}  // namespace probefarm::sim::standin

extern "C" {

int libusb_init(libusb_context** ctx) {
  if (!ctx) {
    std::lock_guard lock(g_default_mu);
    if (!g_default) {
      g_default = new libusb_context;
      g_default->is_default = true;
      connect_or_warn(g_default, true);
    }
    g_default->default_refs++;
    return LIBUSB_SUCCESS;
  }
  auto* c = new libusb_context;
  connect_or_warn(c, true);
  *ctx = c;
  return LIBUSB_SUCCESS;
}

void libusb_exit(libusb_context* ctx) {
  if (!ctx) {
    std::lock_guard lock(g_default_mu);
    if (!g_default || --g_default->default_refs > 0) return;
    ctx = g_default;
    g_default = nullptr;
  }
  // Devices still referenced by the application keep pointing at the context in real
  // libusb too; using them after exit is the application's bug.
  delete ctx;
}

void libusb_set_debug(libusb_context*, int) {}
void libusb_set_log_cb(libusb_context*, libusb_log_cb, int) {}
int libusb_set_option(libusb_context*, enum libusb_option option, ...) {
  switch (option) {
    case LIBUSB_OPTION_LOG_LEVEL:
    case LIBUSB_OPTION_NO_DEVICE_DISCOVERY:
      return LIBUSB_SUCCESS;
    default:
      return LIBUSB_ERROR_NOT_SUPPORTED;
  }
}

const struct libusb_version* libusb_get_version(void) {
  // The API level this stand-in implements is that of the header it was built with.
  static const libusb_version v = {1, 0, 26, 0, "", "https://probefarm.invalid/sim"};
  return &v;
}

int libusb_has_capability(uint32_t capability) {
  return capability == LIBUSB_CAP_HAS_CAPABILITY ? 1 : 0;
}

int libusb_setlocale(const char*) {
  return LIBUSB_SUCCESS;
}

ssize_t libusb_get_device_list(libusb_context* ctx, libusb_device*** list) {
  ctx = resolve(ctx);
  if (!ctx || !list) return LIBUSB_ERROR_INVALID_PARAM;
  std::lock_guard lock(ctx->mu);
  if (!ctx->conn.connected()) connect_or_warn(ctx, false);
  std::vector<libusb_device*> found;
  Reply r = request(ctx, proto::Op::list_devices);
  if (r.status == proto::Status::ok) {
    proto::Reader rd(r.payload);
    std::uint32_t n = rd.u32();
    for (std::uint32_t i = 0; i < n && rd.ok(); ++i) {
      auto info = proto::read_device_info(rd);
      if (!rd.ok()) break;
      auto it = ctx->devices.find(info.id);
      libusb_device* d;
      if (it != ctx->devices.end()) {
        d = it->second;
        d->refs++;
      } else {
        d = make_device(ctx, info);
        ctx->devices[info.id] = d;
      }
      found.push_back(d);
    }
  }
  auto** out = static_cast<libusb_device**>(std::calloc(found.size() + 1, sizeof(libusb_device*)));
  if (!out) return LIBUSB_ERROR_NO_MEM;
  for (std::size_t i = 0; i < found.size(); ++i)
    out[i] = found[i];
  *list = out;
  return static_cast<ssize_t>(found.size());
}

void libusb_free_device_list(libusb_device** list, int unref_devices) {
  if (!list) return;
  if (unref_devices)
    for (libusb_device** p = list; *p; ++p)
      libusb_unref_device(*p);
  std::free(list);
}

libusb_device* libusb_ref_device(libusb_device* dev) {
  if (dev) dev->refs++;
  return dev;
}

void libusb_unref_device(libusb_device* dev) {
  if (!dev) return;
  std::lock_guard lock(dev->ctx->mu);
  if (--dev->refs > 0) return;
  auto it = dev->ctx->devices.find(dev->info.id);
  if (it != dev->ctx->devices.end() && it->second == dev) dev->ctx->devices.erase(it);
  delete dev;
}

uint8_t libusb_get_bus_number(libusb_device* dev) {
  return dev->info.bus;
}
uint8_t libusb_get_device_address(libusb_device* dev) {
  return dev->info.address;
}
uint8_t libusb_get_port_number(libusb_device* dev) {
  return dev->info.port_path.empty() ? 0 : dev->info.port_path.back();
}
int libusb_get_port_numbers(libusb_device* dev, uint8_t* port_numbers, int port_numbers_len) {
  const auto& path = dev->info.port_path;
  if (port_numbers_len <= 0) return LIBUSB_ERROR_INVALID_PARAM;
  if (path.size() > static_cast<std::size_t>(port_numbers_len)) return LIBUSB_ERROR_OVERFLOW;
  std::memcpy(port_numbers, path.data(), path.size());
  return static_cast<int>(path.size());
}
int libusb_get_port_path(libusb_context*, libusb_device* dev, uint8_t* path, uint8_t path_length) {
  return libusb_get_port_numbers(dev, path, path_length);
}
libusb_device* libusb_get_parent(libusb_device*) {
  return nullptr;
}

int libusb_get_device_speed(libusb_device* dev) {
  return dev->info.speed == proto::Speed::high ? LIBUSB_SPEED_HIGH : LIBUSB_SPEED_FULL;
}

int libusb_get_device_descriptor(libusb_device* dev, struct libusb_device_descriptor* desc) {
  parse_device_descriptor(dev->info.device_descriptor, desc);
  return LIBUSB_SUCCESS;
}

int libusb_get_config_descriptor(libusb_device* dev, uint8_t config_index,
                                 struct libusb_config_descriptor** config) {
  // The server describes exactly one configuration per device.
  if (config_index != 0) return LIBUSB_ERROR_NOT_FOUND;
  return parse_config(dev->info.config_descriptor, config);
}

int libusb_get_active_config_descriptor(libusb_device* dev,
                                        struct libusb_config_descriptor** config) {
  return libusb_get_config_descriptor(dev, 0, config);
}

int libusb_get_config_descriptor_by_value(libusb_device* dev, uint8_t value,
                                          struct libusb_config_descriptor** config) {
  const auto& raw = dev->info.config_descriptor;
  if (raw.size() < 9 || raw[5] != value) return LIBUSB_ERROR_NOT_FOUND;
  return parse_config(raw, config);
}

void libusb_free_config_descriptor(struct libusb_config_descriptor* config) {
  free_config(config);
}

int libusb_get_bos_descriptor(libusb_device_handle*, struct libusb_bos_descriptor**) {
  return LIBUSB_ERROR_PIPE;  // bcdUSB 2.00 devices have no BOS: GET_DESCRIPTOR stalls
}
void libusb_free_bos_descriptor(struct libusb_bos_descriptor*) {}

int libusb_get_max_packet_size(libusb_device* dev, unsigned char endpoint) {
  libusb_config_descriptor* c = nullptr;
  if (parse_config(dev->info.config_descriptor, &c) != LIBUSB_SUCCESS) return LIBUSB_ERROR_OTHER;
  int result = LIBUSB_ERROR_NOT_FOUND;
  for (int i = 0; i < c->bNumInterfaces && result < 0; ++i)
    for (int a = 0; a < c->interface[i].num_altsetting && result < 0; ++a) {
      const auto& alt = c->interface[i].altsetting[a];
      for (int e = 0; e < alt.bNumEndpoints; ++e)
        if (alt.endpoint[e].bEndpointAddress == endpoint) {
          result = alt.endpoint[e].wMaxPacketSize & 0x7FF;
          break;
        }
    }
  free_config(c);
  return result;
}

int libusb_get_max_iso_packet_size(libusb_device* dev, unsigned char endpoint) {
  // Bits 12:11 of wMaxPacketSize: additional transactions per microframe (USB 2.0 9.6.6).
  libusb_config_descriptor* c = nullptr;
  if (parse_config(dev->info.config_descriptor, &c) != LIBUSB_SUCCESS) return LIBUSB_ERROR_OTHER;
  int result = LIBUSB_ERROR_NOT_FOUND;
  for (int i = 0; i < c->bNumInterfaces; ++i)
    for (int a = 0; a < c->interface[i].num_altsetting; ++a) {
      const auto& alt = c->interface[i].altsetting[a];
      for (int e = 0; e < alt.bNumEndpoints; ++e)
        if (alt.endpoint[e].bEndpointAddress == endpoint && result < 0) {
          int mps = alt.endpoint[e].wMaxPacketSize;
          result = (mps & 0x7FF) * (1 + ((mps >> 11) & 3));
        }
    }
  free_config(c);
  return result;
}

int libusb_open(libusb_device* dev, libusb_device_handle** handle) {
  if (!dev || !handle) return LIBUSB_ERROR_INVALID_PARAM;
  proto::Writer w;
  w.u32(dev->info.id);
  Reply r = request(dev->ctx, proto::Op::open, w.buffer());
  if (r.status != proto::Status::ok) return to_libusb_error(r.status);
  auto* h = new libusb_device_handle;
  h->dev = libusb_ref_device(dev);
  *handle = h;
  return LIBUSB_SUCCESS;
}

void libusb_close(libusb_device_handle* h) {
  if (!h) return;
  forget_transfers(h);
  proto::Writer w;
  w.u32(h->dev->info.id);
  request(h->dev->ctx, proto::Op::close, w.buffer());
  libusb_unref_device(h->dev);
  delete h;
}

libusb_device_handle* libusb_open_device_with_vid_pid(libusb_context* ctx, uint16_t vendor_id,
                                                      uint16_t product_id) {
  libusb_device** list = nullptr;
  if (libusb_get_device_list(ctx, &list) < 0) return nullptr;
  libusb_device_handle* h = nullptr;
  for (libusb_device** p = list; *p; ++p) {
    libusb_device_descriptor d;
    libusb_get_device_descriptor(*p, &d);
    if (d.idVendor == vendor_id && d.idProduct == product_id) {
      if (libusb_open(*p, &h) != LIBUSB_SUCCESS) h = nullptr;
      break;
    }
  }
  libusb_free_device_list(list, 1);
  return h;
}

libusb_device* libusb_get_device(libusb_device_handle* h) {
  return h->dev;
}

int libusb_get_configuration(libusb_device_handle* h, int* config) {
  unsigned char c = 0;
  int r = control(h, LIBUSB_ENDPOINT_IN, LIBUSB_REQUEST_GET_CONFIGURATION, 0, 0, &c, 1);
  if (r < 0) return r;
  if (r != 1) return LIBUSB_ERROR_IO;
  *config = c;
  return LIBUSB_SUCCESS;
}

int libusb_set_configuration(libusb_device_handle* h, int configuration) {
  // -1 means "unconfigured", which is configuration value 0 on the wire.
  auto value = static_cast<std::uint16_t>(configuration < 0 ? 0 : configuration);
  int r = control(h, LIBUSB_ENDPOINT_OUT, LIBUSB_REQUEST_SET_CONFIGURATION, value, 0, nullptr, 0);
  return r < 0 ? (r == LIBUSB_ERROR_PIPE ? LIBUSB_ERROR_NOT_FOUND : r) : LIBUSB_SUCCESS;
}

int libusb_claim_interface(libusb_device_handle* h, int interface_number) {
  if (!h || interface_number < 0 || interface_number > 255) return LIBUSB_ERROR_INVALID_PARAM;
  proto::Writer w;
  w.u32(h->dev->info.id);
  w.u8(static_cast<std::uint8_t>(interface_number));
  Reply r = request(h->dev->ctx, proto::Op::claim, w.buffer());
  if (r.status != proto::Status::ok) return to_libusb_error(r.status);
  h->claimed.insert(interface_number);
  return LIBUSB_SUCCESS;
}

int libusb_release_interface(libusb_device_handle* h, int interface_number) {
  if (!h || !h->claimed.count(interface_number)) return LIBUSB_ERROR_NOT_FOUND;
  proto::Writer w;
  w.u32(h->dev->info.id);
  w.u8(static_cast<std::uint8_t>(interface_number));
  Reply r = request(h->dev->ctx, proto::Op::release, w.buffer());
  h->claimed.erase(interface_number);
  return to_libusb_error(r.status);
}

int libusb_set_interface_alt_setting(libusb_device_handle* h, int interface_number,
                                     int alternate_setting) {
  if (!h || !h->claimed.count(interface_number)) return LIBUSB_ERROR_NOT_FOUND;
  int r = control(h, LIBUSB_RECIPIENT_INTERFACE, LIBUSB_REQUEST_SET_INTERFACE,
                  static_cast<std::uint16_t>(alternate_setting),
                  static_cast<std::uint16_t>(interface_number), nullptr, 0);
  return r < 0 ? (r == LIBUSB_ERROR_PIPE ? LIBUSB_ERROR_NOT_FOUND : r) : LIBUSB_SUCCESS;
}

int libusb_clear_halt(libusb_device_handle* h, unsigned char endpoint) {
  if (!h) return LIBUSB_ERROR_INVALID_PARAM;
  proto::Writer w;
  w.u32(h->dev->info.id);
  w.u8(endpoint);
  return to_libusb_error(request(h->dev->ctx, proto::Op::clear_halt, w.buffer()).status);
}

int libusb_reset_device(libusb_device_handle* h) {
  if (!h) return LIBUSB_ERROR_INVALID_PARAM;
  proto::Writer w;
  w.u32(h->dev->info.id);
  return to_libusb_error(request(h->dev->ctx, proto::Op::reset, w.buffer()).status);
}

// No kernel driver ever binds to a simulated device.
int libusb_kernel_driver_active(libusb_device_handle*, int) {
  return 0;
}
int libusb_detach_kernel_driver(libusb_device_handle*, int) {
  return LIBUSB_ERROR_NOT_FOUND;
}
int libusb_attach_kernel_driver(libusb_device_handle*, int) {
  return LIBUSB_ERROR_NOT_FOUND;
}
int libusb_set_auto_detach_kernel_driver(libusb_device_handle*, int) {
  return LIBUSB_SUCCESS;
}

int libusb_get_string_descriptor_ascii(libusb_device_handle* h, uint8_t desc_index,
                                       unsigned char* data, int length) {
  if (desc_index == 0 || !data || length <= 0) return LIBUSB_ERROR_INVALID_PARAM;
  // Strings are fetched in the device's first language (USB 2.0 9.6.7: string 0 lists
  // the LANGIDs), then narrowed to ASCII with '?' for anything outside it.
  unsigned char buf[255];
  int r = control(h, LIBUSB_ENDPOINT_IN, LIBUSB_REQUEST_GET_DESCRIPTOR, LIBUSB_DT_STRING << 8, 0,
                  buf, sizeof(buf));
  if (r < 0) return r;
  if (r < 4) return LIBUSB_ERROR_IO;
  auto langid = static_cast<std::uint16_t>(buf[2] | buf[3] << 8);
  r = control(h, LIBUSB_ENDPOINT_IN, LIBUSB_REQUEST_GET_DESCRIPTOR,
              static_cast<std::uint16_t>(LIBUSB_DT_STRING << 8 | desc_index), langid, buf,
              sizeof(buf));
  if (r < 0) return r;
  if (r < 2 || buf[1] != LIBUSB_DT_STRING || buf[0] > r) return LIBUSB_ERROR_IO;
  int out = 0;
  for (int i = 2; i + 1 < buf[0] && out < length - 1; i += 2)
    data[out++] = (buf[i + 1] || buf[i] & 0x80) ? '?' : static_cast<unsigned char>(buf[i]);
  data[out] = 0;
  return out;
}

int libusb_hotplug_register_callback(libusb_context*, int, int, int, int, int,
                                     libusb_hotplug_callback_fn, void*,
                                     libusb_hotplug_callback_handle*) {
  return LIBUSB_ERROR_NOT_SUPPORTED;
}
void libusb_hotplug_deregister_callback(libusb_context*, libusb_hotplug_callback_handle) {}
void* libusb_hotplug_get_user_data(libusb_context*, libusb_hotplug_callback_handle) {
  return nullptr;
}

int libusb_wrap_sys_device(libusb_context*, intptr_t, libusb_device_handle**) {
  return LIBUSB_ERROR_NOT_SUPPORTED;
}

const char* libusb_error_name(int code) {
  switch (code) {
    case LIBUSB_SUCCESS:
      return "LIBUSB_SUCCESS";
    case LIBUSB_ERROR_IO:
      return "LIBUSB_ERROR_IO";
    case LIBUSB_ERROR_INVALID_PARAM:
      return "LIBUSB_ERROR_INVALID_PARAM";
    case LIBUSB_ERROR_ACCESS:
      return "LIBUSB_ERROR_ACCESS";
    case LIBUSB_ERROR_NO_DEVICE:
      return "LIBUSB_ERROR_NO_DEVICE";
    case LIBUSB_ERROR_NOT_FOUND:
      return "LIBUSB_ERROR_NOT_FOUND";
    case LIBUSB_ERROR_BUSY:
      return "LIBUSB_ERROR_BUSY";
    case LIBUSB_ERROR_TIMEOUT:
      return "LIBUSB_ERROR_TIMEOUT";
    case LIBUSB_ERROR_OVERFLOW:
      return "LIBUSB_ERROR_OVERFLOW";
    case LIBUSB_ERROR_PIPE:
      return "LIBUSB_ERROR_PIPE";
    case LIBUSB_ERROR_INTERRUPTED:
      return "LIBUSB_ERROR_INTERRUPTED";
    case LIBUSB_ERROR_NO_MEM:
      return "LIBUSB_ERROR_NO_MEM";
    case LIBUSB_ERROR_NOT_SUPPORTED:
      return "LIBUSB_ERROR_NOT_SUPPORTED";
    case LIBUSB_ERROR_OTHER:
      return "LIBUSB_ERROR_OTHER";
    // Positive values are transfer statuses, which the API lets callers name here too.
    case LIBUSB_TRANSFER_ERROR:
      return "LIBUSB_TRANSFER_ERROR";
    case LIBUSB_TRANSFER_TIMED_OUT:
      return "LIBUSB_TRANSFER_TIMED_OUT";
    case LIBUSB_TRANSFER_CANCELLED:
      return "LIBUSB_TRANSFER_CANCELLED";
    case LIBUSB_TRANSFER_STALL:
      return "LIBUSB_TRANSFER_STALL";
    case LIBUSB_TRANSFER_NO_DEVICE:
      return "LIBUSB_TRANSFER_NO_DEVICE";
    case LIBUSB_TRANSFER_OVERFLOW:
      return "LIBUSB_TRANSFER_OVERFLOW";
    default:
      return "**UNKNOWN**";
  }
}

const char* libusb_strerror(int code) {
  switch (code) {
    case LIBUSB_SUCCESS:
      return "success";
    case LIBUSB_ERROR_IO:
      return "I/O error on the simulator socket or device";
    case LIBUSB_ERROR_INVALID_PARAM:
      return "invalid argument";
    case LIBUSB_ERROR_ACCESS:
      return "permission denied";
    case LIBUSB_ERROR_NO_DEVICE:
      return "device gone (unplugged, or simulator not reachable)";
    case LIBUSB_ERROR_NOT_FOUND:
      return "not found";
    case LIBUSB_ERROR_BUSY:
      return "device or interface busy (claimed by another program)";
    case LIBUSB_ERROR_TIMEOUT:
      return "timed out";
    case LIBUSB_ERROR_OVERFLOW:
      return "device sent more data than requested";
    case LIBUSB_ERROR_PIPE:
      return "endpoint stalled or request not supported";
    case LIBUSB_ERROR_INTERRUPTED:
      return "interrupted";
    case LIBUSB_ERROR_NO_MEM:
      return "out of memory";
    case LIBUSB_ERROR_NOT_SUPPORTED:
      return "not supported by the probefarm-sim stand-in";
    case LIBUSB_ERROR_OTHER:
      return "other error";
    default:
      return "unknown error";
  }
}

}  // extern "C"
