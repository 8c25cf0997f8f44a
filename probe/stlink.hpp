#pragma once
// placeholder: being written
#include <memory>

#include "probe/dap_probe.hpp"

namespace probefarm::probe {
std::unique_ptr<DapProbe> make_stlink(std::unique_ptr<UsbDevice> device, ProbeInfo info);
}
