#pragma once
// A CMSIS-DAP v2 probe as a USB device: a high-speed vendor-class interface with one bulk
// OUT and one bulk IN endpoint (CMSIS-DAP specification v2.1, "CMSIS-DAP v2 with bulk
// endpoints"), identified like an Arm DAPLink (VID 0x0D28, PID 0x0204). Command packets
// on EP 0x01 go to the CmsisDapEngine; its responses come back, in order, on EP 0x81.
#include <deque>
#include <memory>

#include "board.hpp"
#include "cmsis_dap.hpp"
#include "usb_bus_timing.hpp"
#include "usb_device.hpp"

namespace probefarm::sim {

class UsbCmsisDapV2 final : public UsbDevice {
 public:
  static constexpr std::uint16_t kVendorId = 0x0D28;   // Arm Ltd (DAPLink)
  static constexpr std::uint16_t kProductId = 0x0204;  // DAPLink CMSIS-DAP
  static constexpr std::uint8_t kEpOut = 0x01;
  static constexpr std::uint8_t kEpIn = 0x81;
  static constexpr std::uint16_t kMaxPacket = 512;  // USB 2.0 5.8.3: high-speed bulk max

  // `config.serial` defaults to the board's serial when empty.
  UsbCmsisDapV2(Board& board, CmsisDapConfig config = {});
  ~UsbCmsisDapV2() override;

  UsbSpeed speed() const override { return UsbSpeed::high; }
  std::vector<std::uint8_t> device_descriptor() const override;
  std::vector<std::uint8_t> config_descriptor() const override;
  std::vector<std::uint8_t> string_descriptor(std::uint8_t index) const override;

  UsbStatus control(const UsbSetup& setup, std::vector<std::uint8_t>& data) override;
  UsbStatus out(std::uint8_t ep, std::span<const std::uint8_t> data) override;
  UsbStatus in(std::uint8_t ep, std::size_t max_length, std::vector<std::uint8_t>& data) override;
  void power_lost() override;

  Board& board() override { return board_; }
  std::string serial() const override { return config_.serial; }
  std::string probe_kind() const override { return "cmsis-dap-v2"; }

  // Responses produced but not yet read by the host.
  std::size_t pending_responses() const { return responses_.size(); }

 private:
  Board& board_;
  CmsisDapConfig config_;
  std::unique_ptr<CmsisDapEngine> engine_;
  std::deque<std::vector<std::uint8_t>> responses_;
  UsbBusTiming timing_ = kHighSpeedBulk512;
};

}  // namespace probefarm::sim
