#pragma once
// The on-target loader (flash/loader.hpp, firmware/loader/loader_abi.h) put to work: loaded
// into RAM of a halted core, its crc32 entry run per range, and its program entry fed
// through the ring buffer while it programs. Internal to flash/ (the Programmer uses it).
#include <cstdint>
#include <functional>
#include <span>

#include "flash/chip.hpp"

namespace probefarm::flash {

class Target;

class LoaderSession {
 public:
  // Halts the core if it runs, masks its interrupts, writes the loader at its base and
  // lays out parameter block, ring buffer and stack in the rest of the chip's RAM.
  // Throws Error(usage) when the RAM is too small for loader, ring and stack. `max_ring`
  // caps the ring (tests use a small one to make it wrap).
  explicit LoaderSession(Target& target, std::uint32_t max_ring = 64 * 1024);

  // zlib CRC-32 of `length` bytes at `address` on the target, chained onto `crc_in`.
  std::uint32_t crc32(std::uint32_t address, std::uint32_t length, std::uint32_t crc_in = 0);

  // Programs `data` at `address` (both multiples of the programming unit: 2 bytes on
  // F1/F3, 1 << psize on F4/F7) through the ring buffer. The flash must be unlocked and
  // erased where `data` is not 0xFF. `on_progress` gets the bytes programmed so far.
  // Throws Error naming the controller's flag and the failing address.
  void program(std::uint32_t address, std::span<const std::uint8_t> data, unsigned psize,
               const std::function<void(std::uint64_t)>& on_progress = {});

  std::uint32_t ring_size() const { return ring_size_; }

 private:
  Target& target_;
  std::uint32_t params_ = 0;  // struct pf_program
  std::uint32_t ring_ = 0;
  std::uint32_t ring_size_ = 0;
  std::uint32_t stack_top_ = 0;
};

}  // namespace probefarm::flash
