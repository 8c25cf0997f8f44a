#include "usb_cmsis_dap_v2.hpp"

#include <algorithm>

#include "usb_descriptors.hpp"

namespace probefarm::sim {
namespace {

// Hosts (OpenOCD among them) find the CMSIS-DAP v2 interface by this substring in the
// interface string (CMSIS-DAP specification v2.1, "Firmware": interface string must
// contain "CMSIS-DAP").
constexpr const char* kInterfaceName = "CMSIS-DAP v2";

}  // namespace

UsbCmsisDapV2::UsbCmsisDapV2(Board& board, CmsisDapConfig config)
    : board_(board), config_(std::move(config)) {
  fill_board_identity(config_, board_.serial(), board_.chip().part);
  config_.packet_size = kMaxPacket;
  engine_ = make_cmsis_dap_engine(board_, config_);
}

UsbCmsisDapV2::~UsbCmsisDapV2() = default;

std::vector<std::uint8_t> UsbCmsisDapV2::device_descriptor() const {
  // USB 2.0 9.6.1 Table 9-8. bcdUSB 2.00: a 2.10 device would have to serve a BOS
  // descriptor, which this model does not need.
  return usb::device_descriptor(0x0200, 0x00, kVendorId, kProductId, 0x0100);
}

std::vector<std::uint8_t> UsbCmsisDapV2::config_descriptor() const {
  // USB 2.0 9.6.3 Table 9-10 (configuration), 9.6.5 Table 9-12 (interface).
  std::vector<std::uint8_t> d{9, 2, 0, 0, 1, 1, 0, 0x80, 50};  // bus powered, 100 mA
  d.insert(d.end(), {9, 4, 0, 0, 2, 0xFF, 0x00, 0x00, usb::kStringInterface});
  // The CMSIS-DAP v2 endpoint order is fixed: OUT first, then IN (CMSIS-DAP v2.1,
  // "Firmware" > "Endpoint configuration").
  usb::put_endpoint(d, kEpOut, 0x02, kMaxPacket, 0);
  usb::put_endpoint(d, kEpIn, 0x02, kMaxPacket, 0);
  usb::finish_config(d);
  return d;
}

std::vector<std::uint8_t> UsbCmsisDapV2::string_descriptor(std::uint8_t index) const {
  return usb::probe_string_descriptor(
      {config_.vendor, config_.product, config_.serial, kInterfaceName}, index);
}

void UsbCmsisDapV2::power_lost() {
  responses_.clear();
  engine_ = make_cmsis_dap_engine(board_, config_);
}

UsbStatus UsbCmsisDapV2::control(const UsbSetup&, std::vector<std::uint8_t>&) {
  // CMSIS-DAP v2 defines no class or vendor requests (MS OS 2.0 descriptors for WinUSB
  // would be one, and they are not needed off Windows).
  return UsbStatus::stall;
}

UsbStatus UsbCmsisDapV2::out(std::uint8_t ep, std::span<const std::uint8_t> data) {
  if (ep != kEpOut) return UsbStatus::stall;
  board_.advance(timing_.done_at(board_.now(), data.size()) - board_.now());
  board_.counters().usb_transfers++;
  // The probe firmware only ever looks at one packet; anything beyond is not a command.
  auto packet = data.first(std::min<std::size_t>(data.size(), kMaxPacket));
  if (auto response = engine_->process(packet)) responses_.push_back(std::move(*response));
  return UsbStatus::ok;
}

UsbStatus UsbCmsisDapV2::in(std::uint8_t ep, std::size_t max_length,
                            std::vector<std::uint8_t>& data) {
  if (ep != kEpIn) return UsbStatus::stall;
  if (responses_.empty()) return UsbStatus::nak;
  data = std::move(responses_.front());
  responses_.pop_front();
  if (data.size() > max_length) data.resize(max_length);
  Picoseconds done = timing_.done_at(board_.now(), data.size());
  board_.advance(done - board_.now());
  board_.counters().usb_transfers++;
  return UsbStatus::ok;
}

}  // namespace probefarm::sim
