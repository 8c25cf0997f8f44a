#pragma once
// Hot-plug: which probes arrived and which left since the last look. It diffs successive
// list_probes() listings by serial and USB path, so a probe moved to another socket is
// reported as leaving one path and arriving at the other. Polling works on every libusb
// backend (the simulator's stand-in included) and costs one bus listing per poll; the
// daemon's probe manager calls poll() from its own thread.
#include <chrono>
#include <memory>
#include <vector>

#include "probe/discovery.hpp"

namespace probefarm::probe {

struct ProbeEvent {
  bool arrived = false;  // false: left
  ProbeInfo probe;
};

class ProbeWatcher {
 public:
  // Takes the first listing now; those probes are current(), not events.
  explicit ProbeWatcher(std::shared_ptr<UsbContext> usb);

  const std::vector<ProbeInfo>& current() const { return current_; }

  // Lists the bus once and returns the changes since the previous listing: departures
  // first, then arrivals, each in bus order.
  std::vector<ProbeEvent> refresh();

  // Lists the bus every `interval` until something changed or `wait` ran out.
  std::vector<ProbeEvent> poll(std::chrono::milliseconds wait,
                               std::chrono::milliseconds interval = std::chrono::milliseconds(250));

 private:
  std::shared_ptr<UsbContext> usb_;
  std::vector<ProbeInfo> current_;
};

}  // namespace probefarm::probe
