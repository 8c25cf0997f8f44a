#pragma once
// The one interface for a USB device that the probe drivers use (CMSIS-DAP, ST-Link). It
// knows nothing of libusb: the backend (usb_libusb.hpp) is chosen where devices are listed
// and opened, so drivers can be tested against any implementation of it.
//
// Threading: one UsbDevice is used by one thread at a time (the probe actor); a UsbContext
// may be shared between threads.
//
// Transfers take the endpoint and the caller's buffer and keep no per-transfer state in
// the device, so that submit/wait pairs (several transfers in flight, e.g. the CMSIS-DAP
// packet pipeline) can be added next to the synchronous calls without changing them.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "probe/error.hpp"

namespace probefarm::probe {

enum class UsbSpeed { unknown, low, full, high, super };

enum class UsbTransferType : std::uint8_t { control = 0, isochronous = 1, bulk = 2, interrupt = 3 };

// USB 2.0 9.6.6 (endpoint descriptor).
struct UsbEndpoint {
  std::uint8_t address = 0;     // bit 7 set: IN
  std::uint8_t attributes = 0;  // bits 1..0: transfer type
  std::uint16_t max_packet_size = 0;

  bool is_in() const { return (address & 0x80) != 0; }
  UsbTransferType type() const { return static_cast<UsbTransferType>(attributes & 0x03); }
};

// USB 2.0 9.6.5 (interface descriptor), alternate setting 0 unless listed otherwise.
struct UsbInterface {
  std::uint8_t number = 0;
  std::uint8_t alt_setting = 0;
  std::uint8_t interface_class = 0;
  std::uint8_t subclass = 0;
  std::uint8_t protocol = 0;
  std::uint8_t name_index = 0;  // iInterface
  std::string name;             // the iInterface string; empty until the device is opened
  std::vector<UsbEndpoint> endpoints;

  // The first endpoint of that type and direction, or nullptr.
  const UsbEndpoint* find_endpoint(UsbTransferType type, bool in) const {
    for (const auto& ep : endpoints)
      if (ep.type() == type && ep.is_in() == in) return &ep;
    return nullptr;
  }
};

struct UsbConfiguration {
  std::uint8_t value = 0;  // bConfigurationValue
  std::vector<UsbInterface> interfaces;
};

// USB 2.0 9.6.1 (device descriptor): the fields discovery and drivers need.
struct UsbDeviceDescriptor {
  std::uint16_t vid = 0;
  std::uint16_t pid = 0;
  std::uint16_t bcd_device = 0;
  std::uint8_t device_class = 0;
  std::uint8_t manufacturer_index = 0;
  std::uint8_t product_index = 0;
  std::uint8_t serial_index = 0;
  UsbSpeed speed = UsbSpeed::unknown;
};

// USB 2.0 9.3 (setup packet). bit 7 of request_type picks the direction of `data`.
struct UsbControlSetup {
  std::uint8_t request_type = 0;
  std::uint8_t request = 0;
  std::uint16_t value = 0;
  std::uint16_t index = 0;
};

class UsbDevice {
 public:
  virtual ~UsbDevice() = default;

  virtual const UsbDeviceDescriptor& descriptor() const = 0;
  // Interface names are filled in (read at open).
  virtual const UsbConfiguration& configuration() const = 0;
  // "bus-port.port…", stable while the device stays in the same socket.
  virtual const std::string& path() const = 0;

  // Names the device in error messages ("probe <label> was unplugged"); the path until set.
  virtual void set_label(std::string label) = 0;
  virtual const std::string& label() const = 0;

  // String descriptor `index` in the device's first language, narrowed to ASCII ('?' for
  // anything else). Index 0 gives "".
  virtual std::string read_string(std::uint8_t index) = 0;
  // The same descriptor's payload as sent (UTF-16LE units, without bLength/bDescriptorType):
  // the ST-Link V2 puts binary bytes there.
  virtual std::vector<std::uint8_t> read_string_raw(std::uint8_t index) = 0;

  // Detaches a kernel driver bound to it where the OS needs that, then claims it.
  virtual void claim_interface(int number) = 0;

  // Each returns the bytes transferred or throws Error: probe_io naming the endpoint and
  // the USB error, timeout when `timeout` ran out, probe_io "probe <label> was unplugged".
  virtual std::size_t control_transfer(const UsbControlSetup& setup, std::span<std::uint8_t> data,
                                       std::chrono::milliseconds timeout) = 0;
  virtual std::size_t bulk_write(std::uint8_t endpoint, std::span<const std::uint8_t> data,
                                 std::chrono::milliseconds timeout) = 0;
  virtual std::size_t bulk_read(std::uint8_t endpoint, std::span<std::uint8_t> data,
                                std::chrono::milliseconds timeout) = 0;
  virtual std::size_t interrupt_write(std::uint8_t endpoint, std::span<const std::uint8_t> data,
                                      std::chrono::milliseconds timeout) = 0;
  virtual std::size_t interrupt_read(std::uint8_t endpoint, std::span<std::uint8_t> data,
                                     std::chrono::milliseconds timeout) = 0;
};

// A device seen on the bus, not opened: what can be read without talking to it.
struct UsbDeviceRef {
  std::string path;  // see UsbDevice::path()
  std::uint8_t bus = 0;
  std::uint8_t address = 0;
  UsbDeviceDescriptor descriptor;
  UsbConfiguration configuration;  // interface names empty
  std::string config_error;        // why the configuration could not be read, if it could not
};

// The backend: lists and opens devices. Shared between threads.
class UsbContext {
 public:
  virtual ~UsbContext() = default;
  virtual std::vector<UsbDeviceRef> list_devices() = 0;
  // Opens the device now at `path`; Error(probe_not_found) if none is, probe_io/busy if it
  // cannot be opened.
  virtual std::unique_ptr<UsbDevice> open(const std::string& path) = 0;
};

}  // namespace probefarm::probe
