#include "probe_factory.hpp"

#include <cstdio>
#include <stdexcept>

#include "usb_cmsis_dap_v1.hpp"
#include "usb_cmsis_dap_v2.hpp"
#include "usb_stlink.hpp"

namespace probefarm::sim {
namespace {

constexpr std::string_view kKinds[] = {"cmsis-dap-v2", "cmsis-dap-v1", "stlink-v2", "stlink-v2-1",
                                       "stlink-v3"};

}  // namespace

std::span<const std::string_view> probe_kinds() {
  return kKinds;
}

std::string default_probe_serial(std::string_view kind, const ChipInfo& chip, std::size_t index) {
  char nn[8];
  std::snprintf(nn, sizeof(nn), "%02zu", index + 1);
  if (kind.starts_with("stlink")) {
    // ST-Link serials are 24 characters: the V2 carries 12 binary bytes, written as 24 hex
    // digits; V2-1 and V3 report 24 printable hex digits, and OpenOCD expects that length
    // when it scans ST-Links. Here: "PF", the index and the chip, padded with '_', in hex.
    std::string bytes = "PF" + std::string(nn) + std::string(chip.part.substr(5));
    bytes.resize(12, '_');
    std::string hex;
    for (unsigned char c : bytes) {
      char h[3];
      std::snprintf(h, sizeof(h), "%02X", c);
      hex += h;
    }
    return hex;
  }
  return "PFSIM" + std::string(nn) + std::string(chip.part.substr(5));
}

std::unique_ptr<UsbDevice> make_probe(std::string_view kind, Board& board) {
  if (kind == "cmsis-dap-v2") return std::make_unique<UsbCmsisDapV2>(board);
  if (kind == "cmsis-dap-v1") return std::make_unique<UsbCmsisDapV1>(board);
  if (kind == "stlink-v2") return std::make_unique<UsbStLink>(board, StLinkVariant::v2);
  if (kind == "stlink-v2-1") return std::make_unique<UsbStLink>(board, StLinkVariant::v2_1);
  if (kind == "stlink-v3") return std::make_unique<UsbStLink>(board, StLinkVariant::v3);
  std::string known;
  for (auto k : kKinds)
    known += std::string(known.empty() ? "" : ", ") + std::string(k);
  throw std::invalid_argument("unknown probe '" + std::string(kind) + "' (valid: " + known + ")");
}

}  // namespace probefarm::sim
