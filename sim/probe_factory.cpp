#include "probe_factory.hpp"

#include <cstdio>
#include <stdexcept>

#include "usb_cmsis_dap_v1.hpp"
#include "usb_cmsis_dap_v2.hpp"

namespace probefarm::sim {
namespace {

constexpr std::string_view kKinds[] = {"cmsis-dap-v2", "cmsis-dap-v1"};

}  // namespace

std::span<const std::string_view> probe_kinds() {
  return kKinds;
}

std::string default_probe_serial(std::string_view, const ChipInfo& chip, std::size_t index) {
  char nn[8];
  std::snprintf(nn, sizeof(nn), "%02zu", index + 1);
  return "PFSIM" + std::string(nn) + std::string(chip.part.substr(5));
}

std::unique_ptr<UsbDevice> make_probe(std::string_view kind, Board& board) {
  if (kind == "cmsis-dap-v2") return std::make_unique<UsbCmsisDapV2>(board);
  if (kind == "cmsis-dap-v1") return std::make_unique<UsbCmsisDapV1>(board);
  std::string known;
  for (auto k : kKinds)
    known += std::string(known.empty() ? "" : ", ") + std::string(k);
  throw std::invalid_argument("unknown probe '" + std::string(kind) + "' (valid: " + known + ")");
}

}  // namespace probefarm::sim
