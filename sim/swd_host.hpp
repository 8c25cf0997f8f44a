#pragma once
// The host side of the SWD wire as a probe's SWD engine drives it: one packet at a time
// with WAIT retries, bit sequences (line reset, JTAG-to-SWD), and the virtual time each
// takes at the configured SWCLK. Shared by the probe firmware models (CMSIS-DAP,
// ST-Link), which differ in the commands around it, not in what happens on the wire.
// Packet format: ARM IHI 0031 (ADIv5.2) B4.
#include <cstdint>

#include "sw_dp.hpp"
#include "target_port.hpp"

namespace probefarm::sim {

class SwdHost {
 public:
  explicit SwdHost(TargetPort& target) : target_(target) {}

  // One SWD packet, repeated while the target answers WAIT, at most wait_retry() more
  // times. Every attempt is counted (counters().swd_transfers) and advances virtual
  // time by its bits on the wire, so the target (CPU, flash) progresses between retries.
  // While the pins are not driven (disconnected) nothing reaches the target: no ACK.
  SwdResult packet(bool ap, bool read, unsigned addr, std::uint32_t wdata = 0);

  // `count` bits driven on SWDIO, LSB first, with SWCLK toggling: line resets and the
  // SWJ select sequences. They reach the DP and take their time only while connected.
  void sequence(const std::uint8_t* bits, unsigned count);

  // SWCLK cycles without a packet (a host-read sequence, idle clocks).
  void wire_bits(unsigned bits);

  // Bits one packet takes on the wire for a given ACK (request, turnarounds, ACK, data
  // phase and parity when there is one, idle cycles after it).
  unsigned packet_bits(SwdAck ack) const;

  // The probe drives SWCLK/SWDIO (a connected debug session) or leaves them floating.
  void set_connected(bool on) { connected_ = on; }
  bool connected() const { return connected_; }

  void set_clock_hz(std::uint32_t hz) { clock_hz_ = hz; }
  std::uint32_t clock_hz() const { return clock_hz_; }
  void set_wait_retry(unsigned n) { wait_retry_ = n; }
  unsigned wait_retry() const { return wait_retry_; }
  void set_idle_cycles(unsigned n) { idle_cycles_ = n; }
  // Turnaround period in clocks (1..4, ADIv5.2 B4 and DLCR.TURNROUND).
  void set_turnaround(unsigned clocks) { turnaround_ = clocks; }
  // A data phase after WAIT/FAULT too (ADIv5.2 B4: required while CTRL/STAT.ORUNDETECT
  // is set).
  void set_data_phase(bool on) { data_phase_ = on; }

  TargetPort& target() { return target_; }

 private:
  TargetPort& target_;
  bool connected_ = false;
  std::uint32_t clock_hz_ = 1'000'000;
  unsigned wait_retry_ = 100;
  unsigned idle_cycles_ = 0;
  unsigned turnaround_ = 1;
  bool data_phase_ = false;
};

}  // namespace probefarm::sim
