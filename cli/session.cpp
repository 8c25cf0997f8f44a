#include "cli/session.hpp"

#include <iostream>
#include <nlohmann/json.hpp>

#include "probe/usb_libusb.hpp"

namespace probefarm::cli {

using nlohmann::json;

namespace {
constexpr std::uint32_t kDefaultSpeedKhz = 4000;
}

void print_json(const json& j) {
  std::cout << j.dump(2) << std::endl;
}

Session attach(const Options& o, bool halt) {
  Session s;
  auto list = probe::list_probes();
  if (list.probes.empty()) {
    std::string why = "no debug probe found";
    for (const auto& w : list.warnings)
      why += "; " + w;
    throw Error(ErrorCategory::probe_not_found, why,
                "plug in an ST-Link or CMSIS-DAP probe (check 'probefarm list' and the udev "
                "rules in deploy/), or try --simulate stm32f407vg:cmsis-dap-v2");
  }
  s.info = probe::select_probe(list.probes, o.probe);
  s.probe = probe::open_dap_probe(*probe::default_usb_context(), s.info);
  s.requested_khz = o.speed_khz.value_or(kDefaultSpeedKhz);
  flash::AttachOptions attach_options;
  attach_options.speed_khz = s.requested_khz;
  attach_options.halt = halt;
  attach_options.connect_under_reset = o.connect_under_reset;
  s.target = std::make_unique<flash::Target>(*s.probe, attach_options);
  if (s.target->speed_khz() != s.requested_khz)
    note(o, "note: SWD clock %u kHz (the probe's nearest to the requested %u kHz)",
         s.target->speed_khz(), s.requested_khz);
  return s;
}

json chip_json(const Session& s) {
  const auto& c = s.target->chip();
  return {{"name", c.name},
          {"dev_id", c.dev_id},
          {"rev_id", c.rev_id},
          {"core", c.core},
          {"flash_base", c.flash_base},
          {"flash_size", c.flash_size},
          {"sectors", c.sectors.size()},
          {"ram_base", c.ram_base},
          {"ram_size", c.ram_size}};
}

json probe_json(const probe::ProbeInfo& p) {
  return {{"serial", p.serial},
          {"kind", probe::probe_kind_name(p.kind)},
          {"vendor", p.vendor},
          {"product", p.product},
          {"vid", p.vid},
          {"pid", p.pid},
          {"firmware", p.firmware_version},
          {"path", p.path},
          {"note", p.note}};
}

}  // namespace probefarm::cli
