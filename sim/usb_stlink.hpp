#pragma once
// ST-Link probes as USB devices (VID 0x0483): the ST-LINK/V2 (PID 0x3748, full speed, one
// vendor interface), the ST-LINK/V2-1 (0x374B, full speed) and the STLINK-V3E (0x374E,
// high speed), the last two composite devices with a mass-storage and a virtual COM port
// function next to the debug interface. Command packets on the debug OUT endpoint go to
// the StLinkEngine; its responses come back, in order, on EP 0x81.
#include <deque>
#include <memory>
#include <string>

#include "board.hpp"
#include "stlink.hpp"
#include "usb_bus_timing.hpp"
#include "usb_device.hpp"

namespace probefarm::sim {

class UsbStLink final : public UsbDevice {
 public:
  static constexpr std::uint8_t kEpIn = 0x81;  // debug responses, every variant

  // The serial defaults to board.serial(). For V2 it must be 24 hex digits (the 12 binary
  // bytes the descriptor carries); otherwise throw std::invalid_argument with a message that
  // says what a V2 serial must look like.
  UsbStLink(Board& board, StLinkVariant variant, std::string serial = {});
  ~UsbStLink() override;

  UsbSpeed speed() const override;
  std::vector<std::uint8_t> device_descriptor() const override;
  std::vector<std::uint8_t> config_descriptor() const override;
  std::vector<std::uint8_t> string_descriptor(std::uint8_t index) const override;

  UsbStatus control(const UsbSetup& setup, std::vector<std::uint8_t>& data) override;
  UsbStatus out(std::uint8_t ep, std::span<const std::uint8_t> data) override;
  UsbStatus in(std::uint8_t ep, std::size_t max_length, std::vector<std::uint8_t>& data) override;
  // A fresh boot of the probe firmware: a command waiting for its data phase (WRITEMEM) and
  // unread responses are gone.
  void power_lost() override;

  Board& board() override { return board_; }
  // The user-facing serial; for V2 the 24 upper-case hex digits of its binary serial.
  std::string serial() const override { return serial_; }
  std::string probe_kind() const override;  // "stlink-v2", "stlink-v2-1", "stlink-v3"

  StLinkVariant variant() const { return variant_; }
  // Debug command OUT endpoint: 0x02 on the V2, 0x01 on the V2-1 and V3.
  std::uint8_t command_endpoint() const;
  // SWO trace IN endpoint: 0x83 on the V2, 0x82 on the V2-1 and V3.
  std::uint8_t trace_endpoint() const;
  std::uint16_t max_packet() const { return static_cast<std::uint16_t>(timing_.max_packet); }

  // Response bytes produced but not yet read by the host, in responses.
  std::size_t pending_responses() const { return responses_.size(); }

 private:
  Board& board_;
  StLinkVariant variant_;
  std::string serial_;
  std::unique_ptr<StLinkEngine> engine_;
  std::deque<std::vector<std::uint8_t>> responses_;
  UsbBusTiming timing_;
};

}  // namespace probefarm::sim
