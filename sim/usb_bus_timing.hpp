#pragma once
// Virtual-time cost of USB bulk/interrupt transfers, shared by every simulated probe.
//
// The model: a transfer of N bytes is split into max-packet-size packets (at least one,
// a zero-length packet still takes a transaction). Each packet costs its payload plus the
// per-transaction protocol overhead (token, data framing, handshake, inter-packet gaps)
// at the bus bit rate.
// - Every transfer, OUT or IN, completes at the next (micro)frame boundary after its data
//   has crossed the bus, because the host controller reports completions to the driver
//   on frame boundaries and the host only reacts to a completion after that. So a
//   command/response round trip costs at least two (micro)frames: 250 us on high speed,
//   2 ms on full speed, one report per frame in each direction.
//
// Numbers, USB 2.0 specification:
// - bit rates 480 Mbit/s (high speed) and 12 Mbit/s (full speed): 7.1.11;
// - protocol overhead per bulk transaction: 55 bytes high speed (5.8.4, Table 5-10),
//   13 bytes full speed (5.8.4, Table 5-9);
// - microframe 125 us (high speed), frame 1 ms (full speed): 8.4.3.1.
// Bit stuffing and other traffic on the bus are ignored.
#include <algorithm>
#include <cstddef>

#include "clock.hpp"

namespace probefarm::sim {

struct UsbBusTiming {
  std::uint64_t bit_rate_hz;
  std::size_t overhead_bytes;  // per transaction
  std::size_t max_packet;      // endpoint wMaxPacketSize
  Picoseconds frame;           // completion granularity for INs

  Picoseconds data_time(std::size_t bytes) const {
    std::size_t packets = std::max<std::size_t>(1, (bytes + max_packet - 1) / max_packet);
    std::uint64_t bits = 8 * (bytes + packets * overhead_bytes);
    return cycles_to_ps(bits, bit_rate_hz);
  }
  // Absolute virtual time at which a transfer started at `now` is seen complete by the
  // host.
  Picoseconds done_at(Picoseconds now, std::size_t bytes) const {
    Picoseconds end = now + data_time(bytes);
    return (end + frame - 1) / frame * frame;
  }
};

inline constexpr UsbBusTiming kHighSpeedBulk512{480'000'000, 55, 512, 125 * kMicrosecond};
inline constexpr UsbBusTiming kFullSpeedBulk64{12'000'000, 13, 64, 1 * kMillisecond};

}  // namespace probefarm::sim
