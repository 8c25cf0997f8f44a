#pragma once
// The system bus as seen by a bus master (the AHB-AP, or a peripheral model that needs
// to look at memory). Accesses are aligned to their size; `value` is right-aligned
// (bits [8*size-1:0]), byte lanes are the MEM-AP's business, not the bus's.
#include <cstdint>

#include "clock.hpp"

namespace probefarm::sim {

enum class BusStatus {
  ok,
  error,  // AHB ERROR response: unmapped address, illegal access (MEM-AP sets STICKYERR)
  busy,   // the slave stalls the bus (HREADY low), e.g. flash read during erase;
          // retry the same access at or after `busy_until`
};

struct BusResponse {
  BusStatus status = BusStatus::ok;
  std::uint32_t value = 0;     // read data, for reads with status ok
  Picoseconds busy_until = 0;  // for status busy
};

class DebugBus {
 public:
  virtual ~DebugBus() = default;
  virtual BusResponse read(std::uint32_t addr, unsigned size) = 0;
  virtual BusResponse write(std::uint32_t addr, std::uint32_t value, unsigned size) = 0;
};

// A memory-mapped register block. Offsets are relative to the block base and aligned
// to `size` (1, 2 or 4). Values are right-aligned.
class Peripheral {
 public:
  virtual ~Peripheral() = default;
  virtual std::uint32_t read(std::uint32_t offset, unsigned size) = 0;
  virtual void write(std::uint32_t offset, std::uint32_t value, unsigned size) = 0;
};

}  // namespace probefarm::sim
