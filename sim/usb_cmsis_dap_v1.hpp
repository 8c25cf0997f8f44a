#pragma once
// A CMSIS-DAP v1 probe as a USB device: a full-speed HID interface whose 64-byte input and
// output reports carry the command and response packets (CMSIS-DAP specification v2.1,
// "CMSIS-DAP v1 with USB HID"), identified like an Arm DAPLink (VID 0x0D28, PID 0x0204),
// which offers this interface under that ID. Output reports on interrupt EP 0x01 (or
// SET_REPORT on EP0) go to the CmsisDapEngine; its responses come back, one 64-byte input
// report each, in order, on interrupt EP 0x81.
#include <deque>
#include <memory>

#include "board.hpp"
#include "cmsis_dap.hpp"
#include "usb_bus_timing.hpp"
#include "usb_device.hpp"

namespace probefarm::sim {

// Interrupt transactions at full speed carry the same 13 bytes of protocol overhead as bulk
// ones (USB 2.0 5.7.4, Table 5-8), and an endpoint with bInterval 1 is served once per 1 ms
// frame (USB 2.0 5.7.4, 9.6.6): the bulk model's numbers, under the name of what it models.
inline constexpr UsbBusTiming kFullSpeedInterrupt64 = kFullSpeedBulk64;

class UsbCmsisDapV1 final : public UsbDevice {
 public:
  static constexpr std::uint16_t kVendorId = 0x0D28;   // Arm Ltd (DAPLink)
  static constexpr std::uint16_t kProductId = 0x0204;  // DAPLink CMSIS-DAP
  static constexpr std::uint8_t kInterface = 0;
  static constexpr std::uint8_t kEpIn = 0x81;
  static constexpr std::uint8_t kEpOut = 0x01;
  // USB 2.0 5.7.3: 64 bytes is the largest full-speed interrupt packet; one report fills it.
  static constexpr std::uint16_t kReportSize = 64;
  // DAP_Info 0xFE. The CMSIS-DAP firmware template (DAP_config.h) and DAPLink buffer 4
  // packets at full speed; a host that sends more before reading is not listened to.
  static constexpr std::uint8_t kPacketCount = 4;

  // `config.serial` defaults to the board's serial when empty; packet size and count are
  // those of the HID transport whatever `config` says.
  UsbCmsisDapV1(Board& board, CmsisDapConfig config = {});
  ~UsbCmsisDapV1() override;

  UsbSpeed speed() const override { return UsbSpeed::full; }
  std::vector<std::uint8_t> device_descriptor() const override;
  std::vector<std::uint8_t> config_descriptor() const override;
  std::vector<std::uint8_t> string_descriptor(std::uint8_t index) const override;
  // HID 1.11 6.2.2: the report descriptor, also served by GET_DESCRIPTOR(0x22).
  static std::vector<std::uint8_t> report_descriptor();
  // HID 1.11 6.2.1: the HID descriptor, embedded in the configuration and served by
  // GET_DESCRIPTOR(0x21).
  static std::vector<std::uint8_t> hid_descriptor();

  // Interface GET_DESCRIPTOR (HID, report) and the HID class requests.
  UsbStatus control(const UsbSetup& setup, std::vector<std::uint8_t>& data) override;
  UsbStatus out(std::uint8_t ep, std::span<const std::uint8_t> data) override;
  UsbStatus in(std::uint8_t ep, std::size_t max_length, std::vector<std::uint8_t>& data) override;
  void power_lost() override;

  Board& board() override { return board_; }
  std::string serial() const override { return config_.serial; }
  std::string probe_kind() const override { return "cmsis-dap-v1"; }

  // Input reports produced but not yet read by the host.
  std::size_t pending_responses() const { return responses_.size(); }
  // Output reports the firmware dropped because all its packet buffers were in use.
  std::size_t discarded_reports() const { return discarded_; }

 private:
  void command(std::span<const std::uint8_t> report);

  Board& board_;
  CmsisDapConfig config_;
  std::unique_ptr<CmsisDapEngine> engine_;
  std::deque<std::vector<std::uint8_t>> queued_;     // DAP_QueueCommands packets held
  std::deque<std::vector<std::uint8_t>> responses_;  // kReportSize bytes each
  std::size_t discarded_ = 0;
  std::uint8_t idle_rate_ = 0;  // SET_IDLE, 4 ms units; 0: report only on change
  UsbBusTiming timing_ = kFullSpeedInterrupt64;
};

}  // namespace probefarm::sim
