#include "probe/hotplug.hpp"

#include <algorithm>
#include <thread>

namespace probefarm::probe {
namespace {

bool same_probe(const ProbeInfo& a, const ProbeInfo& b) {
  return a.serial == b.serial && a.path == b.path && a.kind == b.kind;
}

bool contains(const std::vector<ProbeInfo>& list, const ProbeInfo& p) {
  return std::any_of(list.begin(), list.end(),
                     [&](const ProbeInfo& q) { return same_probe(p, q); });
}

}  // namespace

ProbeWatcher::ProbeWatcher(std::shared_ptr<UsbContext> usb)
    : usb_(std::move(usb)), current_(list_probes(*usb_).probes) {}

std::vector<ProbeEvent> ProbeWatcher::refresh() {
  std::vector<ProbeInfo> now = list_probes(*usb_).probes;
  std::vector<ProbeEvent> events;
  for (const auto& p : current_)
    if (!contains(now, p)) events.push_back({false, p});
  for (const auto& p : now)
    if (!contains(current_, p)) events.push_back({true, p});
  current_ = std::move(now);
  return events;
}

std::vector<ProbeEvent> ProbeWatcher::poll(std::chrono::milliseconds wait,
                                           std::chrono::milliseconds interval) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    auto events = refresh();
    if (!events.empty()) return events;
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return events;
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(interval, deadline - now));
  }
}

}  // namespace probefarm::probe
