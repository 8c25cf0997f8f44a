#pragma once
// placeholder: being written
#include <memory>

#include "probe/dap_probe.hpp"

namespace probefarm::probe {
std::unique_ptr<DapProbe> make_cmsis_dap(std::unique_ptr<UsbDevice> device, ProbeInfo info);
}
