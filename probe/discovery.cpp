#include "probe/discovery.hpp"

#include <cstdio>
#include <optional>

#include "probe/usb_libusb.hpp"

namespace probefarm::probe {
namespace {

constexpr std::uint16_t kStVid = 0x0483;  // STMicroelectronics

// ST-Link product IDs, as the ST-LINK firmware enumerates them. STLINK-V3: ST TN1235
// ("Overview of ST-LINK derivatives") section 5 gives 374E (no bridge) and 374F (bridge);
// the others are the modes the firmware can be switched to (2 VCP, no mass storage, V3PWR)
// as users and udev rules report them.
struct StLinkPid {
  std::uint16_t pid;
  std::optional<ProbeKind> kind;  // nullopt: not supported
  const char* model;
};
constexpr StLinkPid kStLinkPids[] = {
    {0x3744, std::nullopt, "ST-LINK/V1"},  // mass-storage (SCSI) transport only
    {0x3748, ProbeKind::stlink_v2, "ST-LINK/V2"},
    {0x374B, ProbeKind::stlink_v2_1, "ST-LINK/V2-1"},
    {0x374A, ProbeKind::stlink_v2_1, "ST-LINK/V2-1 (audio)"},
    {0x3752, ProbeKind::stlink_v2_1, "ST-LINK/V2-1 (no mass storage)"},
    {0x374D, ProbeKind::stlink_v3, "STLINK-V3 (USB loader)"},
    {0x374E, ProbeKind::stlink_v3, "STLINK-V3E"},
    {0x374F, ProbeKind::stlink_v3, "STLINK-V3S/V3SET"},
    {0x3753, ProbeKind::stlink_v3, "STLINK-V3 (dual VCP)"},
    {0x3754, ProbeKind::stlink_v3, "STLINK-V3 (no mass storage)"},
    {0x3757, ProbeKind::stlink_v3, "STLINK-V3PWR"},
};

constexpr std::uint8_t kClassHid = 0x03;     // USB HID 1.11 4.1
constexpr std::uint8_t kClassVendor = 0xFF;  // USB 2.0 9.6.5: vendor-specific

const StLinkPid* find_stlink(const UsbDeviceDescriptor& d) {
  if (d.vid != kStVid) return nullptr;
  for (const auto& s : kStLinkPids)
    if (s.pid == d.pid) return &s;
  return nullptr;
}

std::string vid_pid(const UsbDeviceDescriptor& d) {
  char s[16];
  std::snprintf(s, sizeof(s), "%04x:%04x", d.vid, d.pid);
  return s;
}

bool contains_cmsis_dap(const std::string& s) {
  return s.find("CMSIS-DAP") != std::string::npos;
}

// CMSIS-DAP v2.1 "Firmware": the v2 interface is vendor-specific, its string contains
// "CMSIS-DAP", and it carries a bulk OUT and a bulk IN endpoint.
const UsbInterface* find_cmsis_dap_v2(const UsbConfiguration& config) {
  for (const auto& itf : config.interfaces) {
    if (itf.interface_class == kClassVendor && contains_cmsis_dap(itf.name) &&
        itf.find_endpoint(UsbTransferType::bulk, false) &&
        itf.find_endpoint(UsbTransferType::bulk, true))
      return &itf;
  }
  return nullptr;
}

const UsbInterface* find_hid(const UsbConfiguration& config) {
  for (const auto& itf : config.interfaces)
    if (itf.interface_class == kClassHid) return &itf;
  return nullptr;
}

// A device worth opening to look for CMSIS-DAP: only its strings can tell.
bool may_be_cmsis_dap(const UsbConfiguration& config) {
  for (const auto& itf : config.interfaces)
    if (itf.interface_class == kClassHid || itf.interface_class == kClassVendor) return true;
  return false;
}

std::string to_hex(const std::vector<std::uint8_t>& bytes) {
  std::string out;
  char h[3];
  for (auto b : bytes) {
    std::snprintf(h, sizeof(h), "%02X", b);
    out += h;
  }
  return out;
}

// The ST-Link V2 reports its 96-bit unique ID as 12 raw bytes, one per UTF-16 unit, instead
// of text. Like OpenOCD (stlink_usb.c, "alternate serial"), a descriptor of exactly 12
// units is read that way and shown as 24 hex digits; any other length is a printable
// serial (some firmware versions and clones) and is used as is.
std::string read_serial(UsbDevice& dev, ProbeKind kind) {
  std::uint8_t index = dev.descriptor().serial_index;
  if (index == 0) return {};
  if (kind == ProbeKind::stlink_v2) {
    auto raw = dev.read_string_raw(index);
    if (raw.size() == 2 * 12) {
      std::vector<std::uint8_t> bytes;
      for (std::size_t i = 0; i < raw.size(); i += 2)
        bytes.push_back(raw[i]);
      return to_hex(bytes);
    }
  }
  return dev.read_string(index);
}

int first_vendor_interface(const UsbConfiguration& config) {
  for (const auto& itf : config.interfaces)
    if (itf.interface_class == kClassVendor) return itf.number;
  return 0;
}

// Reads the strings into `info`; what cannot be read goes into info.note.
void read_strings(UsbDevice& dev, ProbeInfo& info) {
  const auto& d = dev.descriptor();
  try {
    info.vendor = dev.read_string(d.manufacturer_index);
    info.product = dev.read_string(d.product_index);
    info.serial = read_serial(dev, info.kind);
  } catch (const Error& e) {
    info.note = "cannot read the string descriptors: " + std::string(e.message());
  }
}

ProbeInfo base_info(const UsbDeviceRef& ref, ProbeKind kind) {
  ProbeInfo info;
  info.kind = kind;
  info.vid = ref.descriptor.vid;
  info.pid = ref.descriptor.pid;
  info.path = ref.path;
  return info;
}

void add_stlink(UsbContext& usb, const UsbDeviceRef& ref, const StLinkPid& st, ProbeList& out) {
  if (!st.kind) {
    out.warnings.push_back(std::string(st.model) + " at " + ref.path +
                           " is not supported (it has no USB debug interface, only mass "
                           "storage): skipped");
    return;
  }
  ProbeInfo info = base_info(ref, *st.kind);
  info.product = st.model;
  info.interface_number = first_vendor_interface(ref.configuration);
  try {
    auto dev = usb.open(ref.path);
    std::string model = info.product;
    read_strings(*dev, info);
    if (info.product.empty()) info.product = model;
  } catch (const Error& e) {
    // Listed anyway: the user sees the probe and why it cannot be used.
    info.note = "cannot open: " + std::string(e.message());
    if (!e.hint().empty()) info.note += " (" + e.hint() + ")";
  }
  out.probes.push_back(std::move(info));
}

void add_if_cmsis_dap(UsbContext& usb, const UsbDeviceRef& ref, ProbeList& out) {
  if (!may_be_cmsis_dap(ref.configuration)) return;
  std::unique_ptr<UsbDevice> dev;
  try {
    dev = usb.open(ref.path);
  } catch (const Error& e) {
    // Could be a probe or a keyboard: without its strings nobody can tell.
    out.warnings.push_back(
        "USB device " + vid_pid(ref.descriptor) + " at " + ref.path +
        " could not be opened to check for CMSIS-DAP: " + std::string(e.message()));
    return;
  }
  const auto& config = dev->configuration();
  std::optional<ProbeKind> kind;
  int number = 0;
  // A device with both interfaces is listed once, as v2: bulk is the faster transport.
  if (const UsbInterface* v2 = find_cmsis_dap_v2(config)) {
    kind = ProbeKind::cmsis_dap_v2;
    number = v2->number;
  } else if (const UsbInterface* hid = find_hid(config)) {
    std::string product;
    try {
      product = dev->read_string(dev->descriptor().product_index);
    } catch (const Error&) {
    }
    // CMSIS-DAP v2.1 "Firmware": a v1 probe has "CMSIS-DAP" in its product string.
    if (contains_cmsis_dap(product)) {
      kind = ProbeKind::cmsis_dap_v1;
      number = hid->number;
    }
  }
  if (!kind) return;
  ProbeInfo info = base_info(ref, *kind);
  info.interface_number = number;
  read_strings(*dev, info);
  out.probes.push_back(std::move(info));
}

}  // namespace

std::string_view probe_kind_name(ProbeKind kind) {
  switch (kind) {
    case ProbeKind::cmsis_dap_v1:
      return "cmsis-dap-v1";
    case ProbeKind::cmsis_dap_v2:
      return "cmsis-dap-v2";
    case ProbeKind::stlink_v2:
      return "stlink-v2";
    case ProbeKind::stlink_v2_1:
      return "stlink-v2-1";
    case ProbeKind::stlink_v3:
      return "stlink-v3";
  }
  return "unknown";
}

ProbeList list_probes(UsbContext& usb) {
  ProbeList out;
  for (const auto& ref : usb.list_devices()) {
    if (const StLinkPid* st = find_stlink(ref.descriptor)) {
      add_stlink(usb, ref, *st, out);
      continue;
    }
    if (!ref.config_error.empty()) continue;  // nothing says it could be a probe
    add_if_cmsis_dap(usb, ref, out);
  }
  return out;
}

ProbeList list_probes() {
  return list_probes(*default_usb_context());
}

namespace {

std::string join_serials(const std::vector<const ProbeInfo*>& probes) {
  std::string out;
  for (const auto* p : probes) {
    if (!out.empty()) out += ", ";
    out += p->serial;
  }
  return out;
}

}  // namespace

const ProbeInfo& select_probe(const std::vector<ProbeInfo>& probes,
                              const std::string& serial_or_prefix) {
  std::vector<const ProbeInfo*> all;
  for (const auto& p : probes)
    all.push_back(&p);
  if (serial_or_prefix.empty()) {
    if (probes.size() == 1) return probes.front();
    if (probes.empty()) {
      throw Error(ErrorCategory::probe_not_found, "no probe attached",
                  "connect a probe; on Linux check the udev rules from deploy/");
    }
    throw Error(ErrorCategory::usage,
                std::to_string(probes.size()) + " probes attached: " + join_serials(all),
                "choose one with --probe SERIAL");
  }
  for (const auto& p : probes)
    if (p.serial == serial_or_prefix) return p;
  std::vector<const ProbeInfo*> matches;
  for (const auto& p : probes)
    if (p.serial.starts_with(serial_or_prefix)) matches.push_back(&p);
  if (matches.size() == 1) return *matches.front();
  if (matches.empty()) {
    throw Error(ErrorCategory::probe_not_found, "no probe with serial '" + serial_or_prefix + "'",
                probes.empty() ? "no probe is attached" : "attached probes: " + join_serials(all));
  }
  throw Error(ErrorCategory::probe_not_found,
              "serial prefix '" + serial_or_prefix + "' matches " + std::to_string(matches.size()) +
                  " probes: " + join_serials(matches),
              "give more of the serial");
}

std::unique_ptr<UsbDevice> open_probe(UsbContext& usb, const ProbeInfo& info) {
  auto dev = usb.open(info.path);
  dev->set_label(info.serial.empty() ? info.path : info.serial);
  const auto& d = dev->descriptor();
  // Another device may have taken the port since the probe was listed.
  if (d.vid != info.vid || d.pid != info.pid || read_serial(*dev, info.kind) != info.serial) {
    throw Error(ErrorCategory::probe_not_found,
                "probe " + info.serial + " is no longer at USB " + info.path,
                "list the probes again");
  }
  dev->claim_interface(info.interface_number);
  return dev;
}

std::unique_ptr<UsbDevice> open_probe(const ProbeInfo& info) {
  return open_probe(*default_usb_context(), info);
}

}  // namespace probefarm::probe
