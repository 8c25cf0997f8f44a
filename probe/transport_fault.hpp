#pragma once
// What the probe drivers (cmsis_dap.cpp, stlink_link.cpp) use inside themselves for a USB
// transport fault: a transfer lost (timeout), STALLed, or an answer garbled or stale. It
// never leaves a driver: a driver either cures it (resynchronise, send again, where that is
// safe: probe/README.md "Transport faults and the retry policy") or turns it into
// Error(probe_io) naming the fault. An unplug is never a TransportFault.
#include <string>

#include "probe/error.hpp"

namespace probefarm::probe {

struct TransportFault {
  std::string message;
};

inline bool is_unplug(const Error& e) {
  // usb.hpp: every backend says "probe <label> was unplugged".
  return e.message().find("was unplugged") != std::string_view::npos;
}

}  // namespace probefarm::probe
