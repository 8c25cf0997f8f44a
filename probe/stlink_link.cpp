// The ST-Link command pipe and its transport-fault policy (stlink_link.hpp).
#include "probe/stlink_link.hpp"

#include <algorithm>
#include <vector>

namespace probefarm::probe::stlink {

bool plausible_status(std::uint8_t status) {
  return status != kUnknownCommand && status_name(status) != "unknown status";
}

Link::Link(UsbDevice& usb, int interface_number, std::string label)
    : usb_(usb), label_(std::move(label)) {
  // The debug interface's first bulk OUT carries commands, its first bulk IN answers (the
  // second bulk IN is SWO trace): OUT 0x02 / IN 0x81 on the V2, OUT 0x01 / IN 0x81 on the
  // V2-1 and V3.
  for (const auto& itf : usb_.configuration().interfaces) {
    if (itf.number != interface_number || itf.alt_setting != 0) continue;
    const UsbEndpoint* out = itf.find_endpoint(UsbTransferType::bulk, false);
    const UsbEndpoint* in = itf.find_endpoint(UsbTransferType::bulk, true);
    if (out && in) {
      ep_out_ = out->address;
      ep_in_ = in->address;
      ep_in_max_ = std::max<std::size_t>(in->max_packet_size, 1);
      return;
    }
  }
  throw Error(ErrorCategory::probe_io,
              label_ + ": USB interface " + std::to_string(interface_number) +
                  " has no bulk endpoint pair for debug commands",
              "this does not look like an ST-Link in debug mode: unplug it and plug it in again");
}

void Link::send_bytes(std::span<const std::uint8_t> data, std::chrono::milliseconds timeout) {
  try {
    usb_.bulk_write(ep_out_, data, timeout);
  } catch (const Error& e) {
    if (is_unplug(e)) throw;
    throw TransportFault{std::string(e.message())};
  }
}

// Over as many transfers as the probe splits the answer into. A short packet (USB 2.0
// 5.8.3: fewer bytes than wMaxPacketSize) ends a transfer, so one that leaves bytes missing
// is an answer of the wrong size: the command block arrived garbled, or it is a stale one.
void Link::receive(std::span<std::uint8_t> in, std::chrono::milliseconds timeout,
                   const char* what) {
  std::size_t got = 0;
  while (got < in.size()) {
    std::size_t n = 0;
    try {
      n = usb_.bulk_read(ep_in_, in.subspan(got), timeout);
    } catch (const Error& e) {
      if (is_unplug(e)) throw;
      throw TransportFault{std::string(e.message())};
    }
    got += n;
    if (got < in.size() && (n == 0 || n % ep_in_max_ != 0)) {
      throw TransportFault{label_ + " answered " + what + " with " + std::to_string(got) + " of " +
                           std::to_string(in.size()) + " bytes (a garbled or stale answer)"};
    }
  }
}

void Link::drain() {
  std::vector<std::uint8_t> junk(4096);
  for (unsigned n = 0; n < kDrainReads; ++n) {
    try {
      if (usb_.bulk_read(ep_in_, junk, kDrainTimeout) == 0) return;
    } catch (const Error& e) {
      if (is_unplug(e)) throw;
      return;  // nothing more is queued (or the link is gone: the retry will say)
    }
  }
}

void Link::command(const Cdb& cdb, std::span<std::uint8_t> answer, const char* what) {
  command(cdb, answer, what,
          [](std::span<const std::uint8_t> r) { return plausible_status(r[0]); });
}

std::uint8_t Link::status_of(const Cdb& cdb, const char* what, bool may_repeat) {
  std::array<std::uint8_t, kStatusSize> r{};
  command(
      cdb, r, what, [](std::span<const std::uint8_t> a) { return plausible_status(a[0]); },
      may_repeat);
  return r[0];
}

void Link::send_only(const Cdb& cdb, const char* what) {
  with_retry(true, what, [&] {
    send(cdb);
    return true;
  });
}

Error Link::give_up(const std::string& fault, const std::string& what, bool may_repeat,
                    unsigned attempts) const {
  if (!may_repeat) {
    return Error(ErrorCategory::probe_io,
                 fault + "; " + what +
                     " writes to the target and may have run already, so it was not repeated",
                 "replug the probe (its firmware may still wait for the rest of the data), then "
                 "run the command again");
  }
  return Error(ErrorCategory::probe_io,
               fault + " (" + what + ", " + std::to_string(attempts) + " attempts)",
               "check the probe's USB cable and hub, replug the probe, and run the command again");
}

}  // namespace probefarm::probe::stlink
