// The libusb-1.0 backend. libusb contexts are thread-safe; a device handle is used by one
// thread at a time (usb.hpp), so LibusbDevice needs no lock of its own.
#include "probe/usb_libusb.hpp"

#include <libusb.h>

#include <cstdio>
#include <mutex>
#include <utility>

namespace probefarm::probe {
namespace {

// Owns the libusb_context; devices hold a shared_ptr to it so libusb_exit runs last.
class LibusbRuntime {
 public:
  LibusbRuntime() {
    int rc = libusb_init(&ctx_);
    if (rc != LIBUSB_SUCCESS) {
      throw Error(
          ErrorCategory::probe_io, std::string("cannot start libusb: ") + libusb_error_name(rc),
          "check that USB is available to this process (in a container, pass /dev/bus/usb)");
    }
  }
  ~LibusbRuntime() { libusb_exit(ctx_); }
  LibusbRuntime(const LibusbRuntime&) = delete;
  LibusbRuntime& operator=(const LibusbRuntime&) = delete;

  libusb_context* get() const { return ctx_; }

 private:
  libusb_context* ctx_ = nullptr;
};

std::string usb_error_text(int rc) {
  return std::string(libusb_error_name(rc)) + " (" + libusb_strerror(rc) + ")";
}

std::string hex_byte(std::uint8_t b) {
  char s[8];
  std::snprintf(s, sizeof(s), "0x%02x", b);
  return s;
}

UsbSpeed to_speed(int s) {
  switch (s) {
    case LIBUSB_SPEED_LOW:
      return UsbSpeed::low;
    case LIBUSB_SPEED_FULL:
      return UsbSpeed::full;
    case LIBUSB_SPEED_HIGH:
      return UsbSpeed::high;
    case LIBUSB_SPEED_SUPER:
    case LIBUSB_SPEED_SUPER_PLUS:
      return UsbSpeed::super;
    default:
      return UsbSpeed::unknown;
  }
}

// "bus-port.port…", the form Linux uses under /sys/bus/usb/devices and OpenOCD's
// adapter usb location.
std::string port_path(libusb_device* dev) {
  std::uint8_t ports[8];
  int n = libusb_get_port_numbers(dev, ports, sizeof(ports));
  std::string path = std::to_string(libusb_get_bus_number(dev));
  for (int i = 0; i < n; ++i)
    path += (i == 0 ? "-" : ".") + std::to_string(ports[i]);
  if (n <= 0) path += ":" + std::to_string(libusb_get_device_address(dev));
  return path;
}

UsbDeviceRef describe(libusb_device* dev) {
  UsbDeviceRef ref;
  ref.path = port_path(dev);
  ref.bus = libusb_get_bus_number(dev);
  ref.address = libusb_get_device_address(dev);
  libusb_device_descriptor d{};
  // Since libusb 1.0.16 this reads a cached copy and cannot fail.
  libusb_get_device_descriptor(dev, &d);
  ref.descriptor.vid = d.idVendor;
  ref.descriptor.pid = d.idProduct;
  ref.descriptor.bcd_device = d.bcdDevice;
  ref.descriptor.device_class = d.bDeviceClass;
  ref.descriptor.manufacturer_index = d.iManufacturer;
  ref.descriptor.product_index = d.iProduct;
  ref.descriptor.serial_index = d.iSerialNumber;
  ref.descriptor.speed = to_speed(libusb_get_device_speed(dev));

  libusb_config_descriptor* config = nullptr;
  int rc = libusb_get_active_config_descriptor(dev, &config);
  // Unconfigured devices (rare) still describe configuration 0.
  if (rc == LIBUSB_ERROR_NOT_FOUND) rc = libusb_get_config_descriptor(dev, 0, &config);
  if (rc != LIBUSB_SUCCESS) {
    ref.config_error = "cannot read the configuration descriptor: " + usb_error_text(rc);
    return ref;
  }
  ref.configuration.value = config->bConfigurationValue;
  for (int i = 0; i < config->bNumInterfaces; ++i) {
    const libusb_interface& itf = config->interface[i];
    for (int a = 0; a < itf.num_altsetting; ++a) {
      const libusb_interface_descriptor& alt = itf.altsetting[a];
      UsbInterface out;
      out.number = alt.bInterfaceNumber;
      out.alt_setting = alt.bAlternateSetting;
      out.interface_class = alt.bInterfaceClass;
      out.subclass = alt.bInterfaceSubClass;
      out.protocol = alt.bInterfaceProtocol;
      out.name_index = alt.iInterface;
      for (int e = 0; e < alt.bNumEndpoints; ++e) {
        const libusb_endpoint_descriptor& ep = alt.endpoint[e];
        out.endpoints.push_back({ep.bEndpointAddress, ep.bmAttributes, ep.wMaxPacketSize});
      }
      ref.configuration.interfaces.push_back(std::move(out));
    }
  }
  libusb_free_config_descriptor(config);
  return ref;
}

// A libusb_get_device_list result, freed (and its devices unreferenced) on scope exit.
class DeviceList {
 public:
  explicit DeviceList(libusb_context* ctx) {
    ssize_t n = libusb_get_device_list(ctx, &list_);
    if (n < 0) {
      throw Error(ErrorCategory::probe_io,
                  "cannot list USB devices: " + usb_error_text(static_cast<int>(n)));
    }
    size_ = static_cast<std::size_t>(n);
  }
  ~DeviceList() { libusb_free_device_list(list_, 1); }
  DeviceList(const DeviceList&) = delete;
  DeviceList& operator=(const DeviceList&) = delete;

  std::span<libusb_device*> devices() const { return {list_, size_}; }

 private:
  libusb_device** list_ = nullptr;
  std::size_t size_ = 0;
};

class LibusbDevice final : public UsbDevice {
 public:
  LibusbDevice(std::shared_ptr<LibusbRuntime> runtime, libusb_device_handle* handle,
               UsbDeviceRef ref)
      : runtime_(std::move(runtime)), handle_(handle), ref_(std::move(ref)), label_(ref_.path) {
    // On Linux a kernel driver (usbhid for CMSIS-DAP v1, usb-storage is on another
    // interface) must let go before a claim; libusb gives it back on release. Elsewhere the
    // call is LIBUSB_ERROR_NOT_SUPPORTED, which is fine.
    libusb_set_auto_detach_kernel_driver(handle_, 1);
    for (auto& itf : ref_.configuration.interfaces) {
      // A name that cannot be read stays empty: it only decides the CMSIS-DAP v2 match.
      if (itf.name_index) itf.name = try_read_string(itf.name_index);
    }
  }

  ~LibusbDevice() override {
    for (int number : claimed_)
      libusb_release_interface(handle_, number);
    libusb_close(handle_);
  }

  const UsbDeviceDescriptor& descriptor() const override { return ref_.descriptor; }
  const UsbConfiguration& configuration() const override { return ref_.configuration; }
  const std::string& path() const override { return ref_.path; }
  void set_label(std::string label) override { label_ = std::move(label); }
  const std::string& label() const override { return label_; }

  std::string read_string(std::uint8_t index) override {
    if (index == 0) return {};
    unsigned char buf[256];
    int rc = libusb_get_string_descriptor_ascii(handle_, index, buf, sizeof(buf));
    if (rc < 0) fail(rc, "reading string descriptor " + std::to_string(index), {});
    return std::string(reinterpret_cast<const char*>(buf), static_cast<std::size_t>(rc));
  }

  std::vector<std::uint8_t> read_string_raw(std::uint8_t index) override {
    if (index == 0) return {};
    // USB 2.0 9.6.7: string descriptor 0 lists the LANGIDs; use the first, as
    // libusb_get_string_descriptor_ascii does.
    unsigned char buf[255];
    int rc = libusb_get_string_descriptor(handle_, 0, 0, buf, sizeof(buf));
    if (rc < 0) fail(rc, "reading the language list", {});
    if (rc < 4) fail(LIBUSB_ERROR_IO, "reading the language list (short descriptor)", {});
    auto langid = static_cast<std::uint16_t>(buf[2] | buf[3] << 8);
    rc = libusb_get_string_descriptor(handle_, index, langid, buf, sizeof(buf));
    if (rc < 0) fail(rc, "reading string descriptor " + std::to_string(index), {});
    if (rc < 2 || buf[1] != LIBUSB_DT_STRING || buf[0] > rc) {
      fail(LIBUSB_ERROR_IO, "reading string descriptor " + std::to_string(index) + " (malformed)",
           {});
    }
    return std::vector<std::uint8_t>(buf + 2, buf + buf[0]);
  }

  void claim_interface(int number) override {
    int rc = libusb_claim_interface(handle_, number);
    if (rc == LIBUSB_ERROR_BUSY) {
      throw Error(ErrorCategory::busy,
                  "probe " + label_ + ": interface " + std::to_string(number) +
                      " is in use by another program",
                  "close the other program using the probe (OpenOCD, STM32CubeProgrammer, "
                  "another probefarm) and retry");
    }
    if (rc != LIBUSB_SUCCESS) fail(rc, "claiming interface " + std::to_string(number), {});
    claimed_.push_back(number);
  }

  std::size_t control_transfer(const UsbControlSetup& setup, std::span<std::uint8_t> data,
                               std::chrono::milliseconds timeout) override {
    int rc = libusb_control_transfer(handle_, setup.request_type, setup.request, setup.value,
                                     setup.index, data.data(),
                                     static_cast<std::uint16_t>(data.size()), to_ms(timeout));
    if (rc < 0) fail(rc, "control transfer (request " + hex_byte(setup.request) + ")", timeout);
    return static_cast<std::size_t>(rc);
  }

  std::size_t bulk_write(std::uint8_t endpoint, std::span<const std::uint8_t> data,
                         std::chrono::milliseconds timeout) override {
    // libusb takes a non-const buffer for both directions; it does not write to OUT data.
    return transfer(libusb_bulk_transfer, "bulk write", endpoint,
                    const_cast<std::uint8_t*>(data.data()), data.size(), timeout);
  }
  std::size_t bulk_read(std::uint8_t endpoint, std::span<std::uint8_t> data,
                        std::chrono::milliseconds timeout) override {
    return transfer(libusb_bulk_transfer, "bulk read", endpoint, data.data(), data.size(), timeout);
  }
  std::size_t interrupt_write(std::uint8_t endpoint, std::span<const std::uint8_t> data,
                              std::chrono::milliseconds timeout) override {
    return transfer(libusb_interrupt_transfer, "interrupt write", endpoint,
                    const_cast<std::uint8_t*>(data.data()), data.size(), timeout);
  }
  std::size_t interrupt_read(std::uint8_t endpoint, std::span<std::uint8_t> data,
                             std::chrono::milliseconds timeout) override {
    return transfer(libusb_interrupt_transfer, "interrupt read", endpoint, data.data(), data.size(),
                    timeout);
  }

 private:
  using TransferFn = int (*)(libusb_device_handle*, unsigned char, unsigned char*, int, int*,
                             unsigned int);

  static unsigned int to_ms(std::chrono::milliseconds t) {
    // libusb reads 0 as "no timeout"; every wait on hardware has a deadline (DESIGN.md).
    return t.count() <= 0 ? 1u : static_cast<unsigned int>(t.count());
  }

  std::size_t transfer(TransferFn fn, const char* what, std::uint8_t endpoint, std::uint8_t* data,
                       std::size_t size, std::chrono::milliseconds timeout) {
    int transferred = 0;
    int rc = fn(handle_, endpoint, data, static_cast<int>(size), &transferred, to_ms(timeout));
    if (rc == LIBUSB_ERROR_PIPE) {
      // A STALLed endpoint stays halted until the host clears it (USB 2.0 9.4.5, 8.5.3.4;
      // libusb "libusb_clear_halt"): clear it now so that the driver's next transfer, a
      // resynchronisation or a retry, can go through. A failure here shows on that transfer.
      libusb_clear_halt(handle_, endpoint);
    }
    if (rc != LIBUSB_SUCCESS) {
      fail(rc, std::string(what) + " on endpoint " + hex_byte(endpoint), timeout);
    }
    return static_cast<std::size_t>(transferred);
  }

  std::string try_read_string(std::uint8_t index) {
    unsigned char buf[256];
    int rc = libusb_get_string_descriptor_ascii(handle_, index, buf, sizeof(buf));
    return rc < 0 ? std::string() : std::string(reinterpret_cast<const char*>(buf), rc);
  }

  [[noreturn]] void fail(int rc, const std::string& what, std::chrono::milliseconds timeout) {
    if (rc == LIBUSB_ERROR_NO_DEVICE) {
      throw Error(ErrorCategory::probe_io, "probe " + label_ + " was unplugged",
                  "replug the probe and retry");
    }
    if (rc == LIBUSB_ERROR_TIMEOUT) {
      throw Error(ErrorCategory::timeout,
                  "USB transfer to probe " + label_ + " timed out (" + what + ": no response in " +
                      std::to_string(to_ms(timeout)) +
                      " ms): the probe stopped answering or the cable dropped a packet",
                  "check the probe's USB cable and hub; replug the probe if it keeps happening");
    }
    if (rc == LIBUSB_ERROR_PIPE) {
      throw Error(
          ErrorCategory::probe_io,
          "probe " + label_ + " stalled the " + what + " (USB STALL: " + usb_error_text(rc) + ")",
          "replug the probe; if it keeps happening, update its firmware");
    }
    std::string hint = rc == LIBUSB_ERROR_ACCESS
                           ? "no permission for the USB device: install deploy/ udev rules or run "
                             "with access to /dev/bus/usb"
                           : "replug the probe and retry";
    throw Error(ErrorCategory::probe_io,
                "probe " + label_ + ": " + what + " failed: " + usb_error_text(rc), hint);
  }

  std::shared_ptr<LibusbRuntime> runtime_;
  libusb_device_handle* handle_;
  UsbDeviceRef ref_;
  std::string label_;
  std::vector<int> claimed_;
};

class LibusbContext final : public UsbContext {
 public:
  LibusbContext() : runtime_(std::make_shared<LibusbRuntime>()) {}

  std::vector<UsbDeviceRef> list_devices() override {
    DeviceList list(runtime_->get());
    std::vector<UsbDeviceRef> out;
    for (libusb_device* dev : list.devices())
      out.push_back(describe(dev));
    return out;
  }

  std::unique_ptr<UsbDevice> open(const std::string& path) override {
    DeviceList list(runtime_->get());
    for (libusb_device* dev : list.devices()) {
      if (port_path(dev) != path) continue;
      UsbDeviceRef ref = describe(dev);
      libusb_device_handle* handle = nullptr;
      int rc = libusb_open(dev, &handle);
      if (rc == LIBUSB_ERROR_ACCESS) {
        throw Error(ErrorCategory::probe_io,
                    "cannot open the USB device at " + path + ": " + usb_error_text(rc),
                    "no permission for the USB device: install the udev rules from deploy/ or "
                    "run with access to /dev/bus/usb");
      }
      if (rc == LIBUSB_ERROR_BUSY) {
        throw Error(ErrorCategory::busy, "the USB device at " + path + " is busy",
                    "close the other program using the probe and retry");
      }
      if (rc != LIBUSB_SUCCESS) {
        throw Error(ErrorCategory::probe_io,
                    "cannot open the USB device at " + path + ": " + usb_error_text(rc),
                    "replug the probe and retry");
      }
      return std::make_unique<LibusbDevice>(runtime_, handle, std::move(ref));
    }
    throw Error(ErrorCategory::probe_not_found, "no USB device at " + path,
                "the probe was unplugged or moved to another port: list the probes again");
  }

 private:
  std::shared_ptr<LibusbRuntime> runtime_;
};

}  // namespace

std::shared_ptr<UsbContext> make_libusb_context() {
  return std::make_shared<LibusbContext>();
}

std::shared_ptr<UsbContext> default_usb_context() {
  static std::mutex mu;
  static std::shared_ptr<UsbContext> ctx;
  std::lock_guard lock(mu);
  if (!ctx) ctx = make_libusb_context();
  return ctx;
}

}  // namespace probefarm::probe
