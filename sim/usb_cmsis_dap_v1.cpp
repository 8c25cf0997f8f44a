#include "usb_cmsis_dap_v1.hpp"

#include <algorithm>

#include "usb_descriptors.hpp"

namespace probefarm::sim {
namespace {

// v1 hosts find the probe by "CMSIS-DAP" in the product string (CMSIS-DAP specification
// v2.1, "Firmware"); the interface is named like DAPLink's HID interface.
constexpr const char* kInterfaceName = "CMSIS-DAP v1";

// CMSIS-DAP v2.1 "Commands": the three commands the transport itself has to know about.
constexpr std::uint8_t kTransferAbort = 0x07;
constexpr std::uint8_t kQueueCommands = 0x7E;
constexpr std::uint8_t kExecuteCommands = 0x7F;

// HID 1.11 7.1 (descriptor types) and 7.2, Table 7 (class request codes); 7.2.1 report types.
constexpr std::uint8_t kDescriptorHid = 0x21;
constexpr std::uint8_t kDescriptorReport = 0x22;
constexpr std::uint8_t kGetReport = 0x01;
constexpr std::uint8_t kGetIdle = 0x02;
constexpr std::uint8_t kSetReport = 0x09;
constexpr std::uint8_t kSetIdle = 0x0A;
constexpr std::uint8_t kReportOutput = 2;
constexpr std::uint8_t kReportFeature = 3;

}  // namespace

UsbCmsisDapV1::UsbCmsisDapV1(Board& board, CmsisDapConfig config)
    : board_(board), config_(std::move(config)) {
  fill_board_identity(config_, board_.serial(), board_.chip().part);
  // A packet is one report: the report descriptor fixes both at 64 bytes.
  config_.packet_size = kReportSize;
  config_.packet_count = kPacketCount;
  engine_ = make_cmsis_dap_engine(board_, config_);
}

UsbCmsisDapV1::~UsbCmsisDapV1() = default;

std::vector<std::uint8_t> UsbCmsisDapV1::device_descriptor() const {
  // USB 2.0 9.6.1 Table 9-8; the class is given by the interface (HID 1.11 5.1).
  return usb::device_descriptor(0x0200, 0x00, kVendorId, kProductId, 0x0100);
}

std::vector<std::uint8_t> UsbCmsisDapV1::report_descriptor() {
  // HID 1.11 6.2.2 items, the layout of DAPLink's and the CMSIS-DAP v1 reference
  // firmware's descriptor: one vendor-defined application collection with a 64-byte input
  // report, a 64-byte output report and a 1-byte feature report, no report IDs. Usage page
  // 0xFF00 / usage 1 is what hosts see as the interface's usage (hidapi usage_page/usage).
  static_assert(kReportSize == 0x40, "Report Count items below");
  return {
      0x06, 0x00, 0xFF,  // Usage Page (Vendor Defined 0xFF00)
      0x09, 0x01,        // Usage (1)
      0xA1, 0x01,        // Collection (Application)
      0x15, 0x00,        //   Logical Minimum (0)
      0x26, 0xFF, 0x00,  //   Logical Maximum (255)
      0x75, 0x08,        //   Report Size (8 bits)
      0x95, 0x40,        //   Report Count (64)
      0x09, 0x01,        //   Usage (1)
      0x81, 0x02,        //   Input (Data, Variable, Absolute)
      0x95, 0x40,        //   Report Count (64)
      0x09, 0x01,        //   Usage (1)
      0x91, 0x02,        //   Output (Data, Variable, Absolute)
      0x95, 0x01,        //   Report Count (1)
      0x09, 0x01,        //   Usage (1)
      0xB1, 0x02,        //   Feature (Data, Variable, Absolute)
      0xC0,              // End Collection
  };
}

std::vector<std::uint8_t> UsbCmsisDapV1::hid_descriptor() {
  // HID 1.11 6.2.1: bcdHID 1.11, no country code, one class descriptor: the report
  // descriptor and its length.
  std::vector<std::uint8_t> d{9, kDescriptorHid, 0x11, 0x01, 0x00, 1, kDescriptorReport};
  usb::put16(d, static_cast<std::uint16_t>(report_descriptor().size()));
  return d;
}

std::vector<std::uint8_t> UsbCmsisDapV1::config_descriptor() const {
  // USB 2.0 9.6.3 Table 9-10 (configuration), 9.6.5 Table 9-12 (interface): class 0x03 HID,
  // subclass 0 (no boot interface), protocol 0 (HID 1.11 4.2, 4.3).
  std::vector<std::uint8_t> d{9, 2, 0, 0, 1, 1, 0, 0x80, 50};  // bus powered, 100 mA
  d.insert(d.end(), {9, 4, kInterface, 0, 2, 0x03, 0x00, 0x00, usb::kStringInterface});
  // HID 1.11 7.1: the HID descriptor sits between the interface and its endpoints.
  auto hid = hid_descriptor();
  d.insert(d.end(), hid.begin(), hid.end());
  // The interrupt IN endpoint is the one every HID interface has (HID 1.11 4.4); the OUT
  // endpoint carries output reports instead of SET_REPORT. bInterval 1: every frame.
  usb::put_endpoint(d, kEpIn, 0x03, kReportSize, 1);
  usb::put_endpoint(d, kEpOut, 0x03, kReportSize, 1);
  usb::finish_config(d);
  return d;
}

std::vector<std::uint8_t> UsbCmsisDapV1::string_descriptor(std::uint8_t index) const {
  return usb::probe_string_descriptor(
      {config_.vendor, config_.product, config_.serial, kInterfaceName}, index);
}

void UsbCmsisDapV1::power_lost() {
  // A fresh boot of the probe firmware: packet buffers empty, HID idle rate back to 0.
  queued_.clear();
  responses_.clear();
  idle_rate_ = 0;
  engine_ = make_cmsis_dap_engine(board_, config_);
}

UsbStatus UsbCmsisDapV1::control(const UsbSetup& setup, std::vector<std::uint8_t>& data) {
  if (setup.index != kInterface) return UsbStatus::stall;
  if (setup.request_type == 0x81 && setup.request == 0x06) {  // standard GET_DESCRIPTOR
    switch (setup.value >> 8) {
      case kDescriptorHid:
        data = hid_descriptor();
        break;
      case kDescriptorReport:
        data = report_descriptor();
        break;
      default:
        return UsbStatus::stall;
    }
    if (data.size() > setup.length) data.resize(setup.length);
    return UsbStatus::ok;
  }
  const std::uint8_t report_type = static_cast<std::uint8_t>(setup.value >> 8);
  if (setup.request_type == 0xA1) {  // class, interface, IN
    switch (setup.request) {
      case kGetReport:
        // Both DAPLink and the reference firmware answer a control-pipe GET_REPORT with an
        // empty report: responses leave only through the interrupt IN endpoint.
        data.clear();
        return UsbStatus::ok;
      case kGetIdle:
        data.assign(1, idle_rate_);
        return UsbStatus::ok;
      default:
        // GET_PROTOCOL exists only on boot interfaces (HID 1.11 7.2.5).
        return UsbStatus::stall;
    }
  }
  if (setup.request_type == 0x21) {  // class, interface, OUT
    switch (setup.request) {
      case kSetIdle:
        idle_rate_ = static_cast<std::uint8_t>(setup.value >> 8);
        data.clear();
        return UsbStatus::ok;
      case kSetReport:
        if (report_type == kReportOutput) {
          // The firmware treats an output report from the control pipe like one from the
          // OUT endpoint. It costs the bus like an interrupt OUT: done on the next frame.
          board_.advance(timing_.done_at(board_.now(), data.size()) - board_.now());
          board_.counters().usb_transfers++;
          command(data);
        } else if (report_type != kReportFeature) {
          return UsbStatus::stall;
        }
        // The 1-byte feature report is declared but means nothing to the firmware.
        data.clear();
        return UsbStatus::ok;
      default:
        return UsbStatus::stall;  // SET_PROTOCOL: boot interfaces only (HID 1.11 7.2.6)
    }
  }
  return UsbStatus::stall;
}

void UsbCmsisDapV1::command(std::span<const std::uint8_t> report) {
  // The firmware only ever looks at one report; anything beyond is not a command.
  report = report.first(std::min<std::size_t>(report.size(), kReportSize));
  // DAPLink and the reference firmware ignore empty reports, and act on DAP_TransferAbort
  // the moment it arrives, without taking a packet buffer.
  if (report.empty()) return;
  if (report[0] == kTransferAbort) {
    engine_->process(report);
    return;
  }
  // A packet buffer is in use from the report's arrival until its response has been read;
  // with all of them in use the firmware drops the report (DAPLink usbd_user_hid.c).
  if (queued_.size() + responses_.size() >= kPacketCount) {
    ++discarded_;
    return;
  }
  if (report[0] == kQueueCommands) {
    queued_.emplace_back(report.begin(), report.end());
    return;
  }
  // DAP_QueueCommands packets run when a packet without it arrives, each answering like
  // DAP_ExecuteCommands in its own report. The engine would return their responses back to
  // back in one buffer; a report transport must keep them apart, so each runs on its own.
  auto respond = [this](std::optional<std::vector<std::uint8_t>> r) {
    if (!r) return;
    r->resize(kReportSize);  // an input report is always the full 64 bytes
    responses_.push_back(std::move(*r));
  };
  for (auto& packet : queued_) {
    packet[0] = kExecuteCommands;
    respond(engine_->process(packet));
  }
  queued_.clear();
  respond(engine_->process(report));
}

UsbStatus UsbCmsisDapV1::out(std::uint8_t ep, std::span<const std::uint8_t> data) {
  if (ep != kEpOut) return UsbStatus::stall;
  board_.advance(timing_.done_at(board_.now(), data.size()) - board_.now());
  board_.counters().usb_transfers++;
  command(data);
  return UsbStatus::ok;
}

UsbStatus UsbCmsisDapV1::in(std::uint8_t ep, std::size_t max_length,
                            std::vector<std::uint8_t>& data) {
  if (ep != kEpIn) return UsbStatus::stall;
  if (responses_.empty()) return UsbStatus::nak;
  data = std::move(responses_.front());
  responses_.pop_front();
  // The whole report crosses the bus even when the host asked for less.
  board_.advance(timing_.done_at(board_.now(), kReportSize) - board_.now());
  board_.counters().usb_transfers++;
  if (data.size() > max_length) data.resize(max_length);
  return UsbStatus::ok;
}

}  // namespace probefarm::sim
