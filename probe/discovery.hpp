#pragma once
// Probe discovery: which of the attached USB devices are debug probes we can drive, and
// which one the user meant.
//
// Hot-plug (libusb_hotplug_register_callback, or polling list_probes where libusb has no
// hot-plug support) will sit on top of list_probes: it will diff successive listings by
// path + serial and post arrivals and departures to the server's probe actors.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "probe/usb.hpp"

namespace probefarm::probe {

enum class ProbeKind { cmsis_dap_v1, cmsis_dap_v2, stlink_v2, stlink_v2_1, stlink_v3 };

// "cmsis-dap-v1", …, "stlink-v3": the names of the command line and the simulator.
std::string_view probe_kind_name(ProbeKind kind);

struct ProbeInfo {
  ProbeKind kind = ProbeKind::cmsis_dap_v2;
  std::uint16_t vid = 0;
  std::uint16_t pid = 0;
  std::string vendor;   // manufacturer string
  std::string product;  // product string
  // As users see it elsewhere: the ST-Link V2's 12 binary bytes as 24 uppercase hex digits.
  std::string serial;
  std::string firmware_version;  // empty until a driver has asked the probe
  std::string path;              // USB bus/port path, see UsbDevice::path()
  int interface_number = 0;      // the interface the driver claims
  std::string note;              // why something above could not be read; empty if all was
};

struct ProbeList {
  std::vector<ProbeInfo> probes;
  // Devices that look like probes but were skipped (unsupported, unreadable).
  std::vector<std::string> warnings;
};

// Every attached probe. Never throws for one bad device; only if the bus cannot be listed.
ProbeList list_probes(UsbContext& usb);
ProbeList list_probes();  // on default_usb_context()

// Exact serial first, then a unique prefix; empty selector with exactly one probe picks it.
// Throws Error(probe_not_found) for no or several matches, Error(usage) for an empty
// selector with several probes attached.
const ProbeInfo& select_probe(const std::vector<ProbeInfo>& probes,
                              const std::string& serial_or_prefix);

// Opens the probe at info.path, checks it is still the same probe (vid, pid, serial) and
// claims its interface. The device is labelled with the serial for error messages.
std::unique_ptr<UsbDevice> open_probe(UsbContext& usb, const ProbeInfo& info);
std::unique_ptr<UsbDevice> open_probe(const ProbeInfo& info);  // on default_usb_context()

}  // namespace probefarm::probe
