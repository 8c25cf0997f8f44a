#include "usb_stlink.hpp"

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "usb_descriptors.hpp"

namespace probefarm::sim {
namespace {

constexpr std::uint8_t kStringManufacturer = 1;
constexpr std::uint8_t kStringProduct = 2;
constexpr std::uint8_t kStringSerial = 3;
// Composite probes (V2-1, V3): configuration and function names.
constexpr std::uint8_t kStringConfig = 4;
constexpr std::uint8_t kStringDebug = 5;
constexpr std::uint8_t kStringStorage = 6;
constexpr std::uint8_t kStringVcp = 7;

// The V2 puts its 12-byte serial (a 96-bit unique ID) into the string descriptor as raw
// bytes, one per UTF-16 unit, instead of as hex text: 24 hex digits for the user, 26 bytes
// of descriptor. Hosts that match serials print the bytes as hex again.
constexpr std::size_t kV2SerialBytes = 12;

constexpr std::uint8_t kBulk = 0x02;
constexpr std::uint8_t kInterrupt = 0x03;

std::string v2_serial(std::string serial) {
  const bool hex = serial.size() == 2 * kV2SerialBytes &&
                   std::all_of(serial.begin(), serial.end(),
                               [](unsigned char c) { return std::isxdigit(c) != 0; });
  if (!hex) {
    throw std::invalid_argument(
        "ST-LINK/V2 serial '" + serial +
        "': must be 24 hex digits, the 12 binary bytes the probe's USB serial descriptor "
        "carries (e.g. 504630314631303343385F5F)");
  }
  std::transform(serial.begin(), serial.end(), serial.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return serial;
}

std::vector<std::uint8_t> binary_string_descriptor(const std::string& hex) {
  std::vector<std::uint8_t> d{static_cast<std::uint8_t>(2 + 2 * kV2SerialBytes), 3};
  for (std::size_t i = 0; i < kV2SerialBytes; ++i) {
    d.push_back(static_cast<std::uint8_t>(std::stoul(hex.substr(2 * i, 2), nullptr, 16)));
    d.push_back(0);
  }
  return d;
}

}  // namespace

UsbStLink::UsbStLink(Board& board, StLinkVariant variant, std::string serial)
    : board_(board),
      variant_(variant),
      serial_(serial.empty() ? board.serial() : std::move(serial)),
      timing_(variant == StLinkVariant::v3 ? kHighSpeedBulk512 : kFullSpeedBulk64) {
  if (variant_ == StLinkVariant::v2) serial_ = v2_serial(serial_);
  engine_ = make_stlink_engine(board_, variant_);
}

UsbStLink::~UsbStLink() = default;

void UsbStLink::power_lost() {
  responses_.clear();
  engine_ = make_stlink_engine(board_, variant_);
}

UsbSpeed UsbStLink::speed() const {
  // UM1075: the ST-LINK/V2 is a full-speed device (as is the V2-1); the STLINK-V3 is high
  // speed (UM2448).
  return variant_ == StLinkVariant::v3 ? UsbSpeed::high : UsbSpeed::full;
}

std::string UsbStLink::probe_kind() const {
  switch (variant_) {
    case StLinkVariant::v2:
      return "stlink-v2";
    case StLinkVariant::v2_1:
      return "stlink-v2-1";
    case StLinkVariant::v3:
      break;
  }
  return "stlink-v3";
}

std::uint8_t UsbStLink::command_endpoint() const {
  return variant_ == StLinkVariant::v2 ? 0x02 : 0x01;
}

std::uint8_t UsbStLink::trace_endpoint() const {
  return variant_ == StLinkVariant::v2 ? 0x83 : 0x82;
}

std::vector<std::uint8_t> UsbStLink::device_descriptor() const {
  // USB 2.0 9.6.1: bcdUSB 2.00, bcdDevice 1.00 as the probes report them. The composite
  // probes declare Interface Association (class 0xEF, subclass 2, protocol 1: USB IAD
  // ECN) for their virtual COM port function.
  const StLinkIdentity& id = stlink_identity(variant_);
  const bool composite = variant_ != StLinkVariant::v2;
  auto d =
      usb::device_descriptor(0x0200, composite ? 0xEF : 0x00, id.vendor_id, id.product_id, 0x0100);
  if (composite) {
    d[5] = 0x02;  // bDeviceSubClass: common class
    d[6] = 0x01;  // bDeviceProtocol: interface association
  }
  return d;
}

std::vector<std::uint8_t> UsbStLink::config_descriptor() const {
  // USB 2.0 9.6.3 (configuration), 9.6.5 (interface), 9.6.6 (endpoint). Bus powered.
  const std::uint16_t mps = max_packet();
  std::vector<std::uint8_t> d;
  if (variant_ == StLinkVariant::v2) {
    // One vendor-specific interface: responses IN 0x81, commands OUT 0x02, SWO IN 0x83.
    d = {9, 2, 0, 0, 1, 1, 0, 0x80, 50};  // 100 mA
    d.insert(d.end(), {9, 4, 0, 0, 3, 0xFF, 0xFF, 0xFF, 0});
    usb::put_endpoint(d, kEpIn, kBulk, mps, 0);
    usb::put_endpoint(d, command_endpoint(), kBulk, mps, 0);
    usb::put_endpoint(d, trace_endpoint(), kBulk, mps, 0);
    usb::finish_config(d);
    return d;
  }
  // Four interfaces: debug (vendor-specific: IN 0x81, OUT 0x01, SWO IN 0x82), mass
  // storage (class 8, SCSI, bulk-only: IN 0x83, OUT 0x03) and a CDC ACM virtual COM port
  // (an IAD, the communication interface with its class descriptors and interrupt IN
  // 0x84, the data interface with OUT 0x05 and IN 0x85). 300 mA on the V2-1, 500 mA on
  // the V3E.
  const std::uint8_t power = variant_ == StLinkVariant::v3 ? 250 : 150;
  d = {9, 2, 0, 0, 4, 1, kStringConfig, 0x80, power};
  d.insert(d.end(), {9, 4, 0, 0, 3, 0xFF, 0xFF, 0xFF, kStringDebug});
  usb::put_endpoint(d, kEpIn, kBulk, mps, 0);
  usb::put_endpoint(d, command_endpoint(), kBulk, mps, 0);
  usb::put_endpoint(d, trace_endpoint(), kBulk, mps, 0);
  d.insert(d.end(), {9, 4, 1, 0, 2, 0x08, 0x06, 0x50, kStringStorage});
  usb::put_endpoint(d, 0x83, kBulk, mps, 0);
  usb::put_endpoint(d, 0x03, kBulk, mps, 0);
  // CDC 1.20 (PSTN): header 1.10, call management (data interface 3), ACM capabilities
  // (line coding, send break), union (master 2, slave 3).
  d.insert(d.end(), {8, 0x0B, 2, 2, 0x02, 0x02, 0x01, kStringVcp});
  d.insert(d.end(), {9, 4, 2, 0, 1, 0x02, 0x02, 0x01, kStringVcp});
  d.insert(d.end(), {5, 0x24, 0x00, 0x10, 0x01});
  d.insert(d.end(), {5, 0x24, 0x01, 0x00, 0x03});
  d.insert(d.end(), {4, 0x24, 0x02, 0x06});
  d.insert(d.end(), {5, 0x24, 0x06, 0x02, 0x03});
  usb::put_endpoint(d, 0x84, kInterrupt, 8, 0xFF);
  d.insert(d.end(), {9, 4, 3, 0, 2, 0x0A, 0x00, 0x00, kStringVcp});
  usb::put_endpoint(d, 0x05, kBulk, mps, 0);
  usb::put_endpoint(d, 0x85, kBulk, mps, 0);
  usb::finish_config(d);
  return d;
}

std::vector<std::uint8_t> UsbStLink::string_descriptor(std::uint8_t index) const {
  const bool composite = variant_ != StLinkVariant::v2;
  switch (index) {
    case 0:
      return usb::langid_descriptor();
    case kStringManufacturer:
      return usb::ascii_string_descriptor("STMicroelectronics");
    case kStringProduct:
      return usb::ascii_string_descriptor(variant_ == StLinkVariant::v3 ? "STLINK-V3"
                                                                        : "STM32 STLink");
    case kStringSerial:
      if (variant_ == StLinkVariant::v2) return binary_string_descriptor(serial_);
      return usb::ascii_string_descriptor(serial_);
    case kStringConfig:
      if (composite) return usb::ascii_string_descriptor("ST-Link");
      break;
    case kStringDebug:
      if (composite) return usb::ascii_string_descriptor("ST-Link Debug");
      break;
    case kStringStorage:
      if (composite) return usb::ascii_string_descriptor("ST-Link Mass Storage");
      break;
    case kStringVcp:
      if (composite) return usb::ascii_string_descriptor("ST-Link VCP");
      break;
    default:
      break;
  }
  return {};
}

UsbStatus UsbStLink::control(const UsbSetup&, std::vector<std::uint8_t>&) {
  // The debug interface has no class or vendor requests. The mass-storage and virtual
  // COM port functions are enumerated but not modelled, their class requests included.
  return UsbStatus::stall;
}

UsbStatus UsbStLink::out(std::uint8_t ep, std::span<const std::uint8_t> data) {
  if (ep != command_endpoint()) return UsbStatus::stall;
  board_.advance(timing_.done_at(board_.now(), data.size()) - board_.now());
  board_.counters().usb_transfers++;
  for (auto& r : engine_->receive(data))
    responses_.push_back(std::move(r));
  return UsbStatus::ok;
}

UsbStatus UsbStLink::in(std::uint8_t ep, std::size_t max_length, std::vector<std::uint8_t>& data) {
  if (ep == trace_endpoint()) return UsbStatus::nak;  // no SWO data ever arrives
  if (ep != kEpIn) return UsbStatus::stall;
  if (responses_.empty()) return UsbStatus::nak;
  auto& front = responses_.front();
  if (front.size() <= max_length) {
    data = std::move(front);
    responses_.pop_front();
  } else {
    // The host asked for less than the response holds: the rest waits for its next IN.
    data.assign(front.begin(), front.begin() + static_cast<long>(max_length));
    front.erase(front.begin(), front.begin() + static_cast<long>(max_length));
  }
  board_.advance(timing_.done_at(board_.now(), data.size()) - board_.now());
  board_.counters().usb_transfers++;
  return UsbStatus::ok;
}

}  // namespace probefarm::sim
