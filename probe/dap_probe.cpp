#include "probe/dap_probe.hpp"

#include "probe/cmsis_dap.hpp"
#include "probe/stlink.hpp"

namespace probefarm::probe {

std::string_view dap_ack_name(DapAck ack) {
  switch (ack) {
    case DapAck::ok:
      return "OK";
    case DapAck::wait:
      return "WAIT";
    case DapAck::fault:
      return "FAULT";
    case DapAck::no_response:
      return "no ACK";
    case DapAck::protocol_error:
      return "protocol error";
  }
  return "?";
}

std::unique_ptr<DapProbe> open_dap_probe(UsbContext& usb, const ProbeInfo& info) {
  auto device = open_probe(usb, info);
  switch (info.kind) {
    case ProbeKind::cmsis_dap_v1:
    case ProbeKind::cmsis_dap_v2:
      return make_cmsis_dap(std::move(device), info);
    case ProbeKind::stlink_v2:
    case ProbeKind::stlink_v2_1:
    case ProbeKind::stlink_v3:
      return make_stlink(std::move(device), info);
  }
  throw Error(ErrorCategory::internal, "unknown probe kind");
}

}  // namespace probefarm::probe
