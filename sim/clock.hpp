#pragma once
// Virtual time of one simulated board. Everything that takes time on real hardware
// (USB transfers, SWD bits, CPU cycles, flash operations) advances it; nothing reads the
// wall clock except the optional pacing in the server.
#include <cstdint>

namespace probefarm::sim {

using Picoseconds = std::uint64_t;

constexpr Picoseconds kNanosecond = 1'000;
constexpr Picoseconds kMicrosecond = 1'000'000;
constexpr Picoseconds kMillisecond = 1'000'000'000;
constexpr Picoseconds kSecond = 1'000'000'000'000;

// Duration of `cycles` periods of a clock running at `hz`.
constexpr Picoseconds cycles_to_ps(std::uint64_t cycles, std::uint64_t hz) {
  return cycles * (kSecond / hz) + cycles * (kSecond % hz) / hz;
}

struct Counters {
  std::uint64_t usb_transfers = 0;
  std::uint64_t swd_transfers = 0;
  std::uint64_t bytes_programmed = 0;
  std::uint64_t pages_erased = 0;    // F1-style page erases
  std::uint64_t sectors_erased = 0;  // F4/F7-style sector erases
  std::uint64_t mass_erases = 0;
};

class VirtualClock {
 public:
  Picoseconds now() const { return now_; }
  void advance(Picoseconds dt) { now_ += dt; }
  void advance_to(Picoseconds t) {
    if (t > now_) now_ = t;
  }

 private:
  Picoseconds now_ = 0;
};

}  // namespace probefarm::sim
