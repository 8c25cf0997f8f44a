#pragma once
// A simulated USB device as the host controller sees it: descriptors and endpoint
// transfers. Probe models (CMSIS-DAP v2 now; CMSIS-DAP v1 and ST-Link later) implement
// it; the socket server exposes it to the stand-in libusb.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "clock.hpp"

namespace probefarm::sim {

class Board;

enum class UsbSpeed { full, high };

enum class UsbStatus {
  ok,
  nak,    // IN: no data ready yet (the host keeps polling until its timeout)
  stall,  // endpoint halted / request not supported
  no_device,
};

struct UsbSetup {
  std::uint8_t request_type;
  std::uint8_t request;
  std::uint16_t value;
  std::uint16_t index;
  std::uint16_t length;
};

class UsbDevice {
 public:
  virtual ~UsbDevice() = default;

  virtual UsbSpeed speed() const = 0;
  // Raw descriptors exactly as the device returns them to GET_DESCRIPTOR.
  virtual std::vector<std::uint8_t> device_descriptor() const = 0;
  virtual std::vector<std::uint8_t> config_descriptor() const = 0;  // wTotalLength bytes
  // String descriptor `index` (0: the LANGID table); empty if the index does not exist.
  virtual std::vector<std::uint8_t> string_descriptor(std::uint8_t index) const = 0;

  // Class/vendor control requests (standard requests are answered from the descriptors
  // by the server). `data` carries OUT data in, IN data out.
  virtual UsbStatus control(const UsbSetup& setup, std::vector<std::uint8_t>& data) = 0;
  // Bulk/interrupt transfers on endpoint `ep` (with direction bit).
  virtual UsbStatus out(std::uint8_t ep, std::span<const std::uint8_t> data) = 0;
  virtual UsbStatus in(std::uint8_t ep, std::size_t max_length,
                       std::vector<std::uint8_t>& data) = 0;

  // The probe lost USB power (unplugged): queued responses and firmware state are gone,
  // as after a fresh boot of the probe.
  virtual void power_lost() {}

  virtual Board& board() = 0;
  virtual std::string serial() const = 0;
  virtual std::string probe_kind() const = 0;  // "cmsis-dap-v2"
};

}  // namespace probefarm::sim
