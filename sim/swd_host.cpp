#include "swd_host.hpp"

namespace probefarm::sim {

unsigned SwdHost::packet_bits(SwdAck ack) const {
  // Request (8), turnaround, ACK (3); then for OK a turnaround and 32 data bits + parity
  // (the turnaround comes after the data for reads, before it for writes). WAIT and
  // FAULT end after a turnaround unless the data phase is always sent.
  unsigned bits = 8 + turnaround_ + 3 + turnaround_;
  if (ack == SwdAck::ok || data_phase_) bits += 33;
  return bits + idle_cycles_;
}

SwdResult SwdHost::packet(bool ap, bool read, unsigned addr, std::uint32_t wdata) {
  if (!connected_) return {};  // SWD pins not driven: the target sees nothing
  for (unsigned attempt = 0;; ++attempt) {
    SwdResult r = target_.swd().transfer(ap, read, addr, wdata);
    ++target_.counters().swd_transfers;
    // Time passes packet by packet so that the target (CPU, flash) progresses between
    // WAIT retries.
    target_.advance(cycles_to_ps(packet_bits(r.ack), clock_hz_));
    if (r.ack != SwdAck::wait || attempt >= wait_retry_) return r;
  }
}

void SwdHost::sequence(const std::uint8_t* bits, unsigned count) {
  if (!connected_) return;
  target_.swd().sequence(bits, count);
  wire_bits(count);
}

void SwdHost::wire_bits(unsigned bits) {
  if (!connected_) return;
  target_.advance(cycles_to_ps(bits, clock_hz_));
}

}  // namespace probefarm::sim
