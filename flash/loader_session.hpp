#pragma once
// The on-target loader (flash/loader.hpp, firmware/loader/loader_abi.h) put to work: loaded
// into RAM of a halted core, its crc32 entry run per range, and its program entry fed
// through the ring buffer while it programs. Internal to flash/ (the Programmer uses it).
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "flash/chip.hpp"

namespace probefarm::flash {

class Target;

// One CRC-32 of a batch (LoaderSession::crc32_many): of `length` bytes at `address`,
// chained onto the previous request's result (`chain`) or onto `crc_in`.
struct CrcRequest {
  std::uint32_t address = 0;
  std::uint32_t length = 0;
  bool chain = false;
  std::uint32_t crc_in = 0;
};

class LoaderSession {
 public:
  // Halts the core if it runs, masks its interrupts, writes the loader at its base and
  // lays out parameter block, ring buffer and stack in the rest of the chip's RAM.
  // Throws Error(usage) when the RAM is too small for loader, ring and stack. `max_ring`
  // caps the ring (tests use a small one to make it wrap).
  explicit LoaderSession(Target& target, std::uint32_t max_ring = 64 * 1024);

  // zlib CRC-32 of `length` bytes at `address` on the target, chained onto `crc_in`.
  std::uint32_t crc32(std::uint32_t address, std::uint32_t length, std::uint32_t crc_in = 0);
  // All of `requests` in as few loader runs as the table space allows (one, normally):
  // a run costs far more USB round trips than the CRCs it computes. Results in order.
  std::vector<std::uint32_t> crc32_many(std::span<const CrcRequest> requests);

  // Whether this session can serve another operation on the same target without loading
  // the loader again: the core has not been resumed, stepped or reset since the loader was
  // written (only algorithm runs), it is halted, and the image in RAM is intact (its CRC-32,
  // computed by the loader itself, matches). False on any doubt; never throws for a
  // corrupt image (the run may then fail or time out: also false).
  bool reusable();

  // Programs `data` at `address` (both multiples of the programming unit: 2 bytes on
  // F1/F3, 1 << psize on F4/F7) through the ring buffer. The flash must be unlocked and
  // erased where `data` is not 0xFF. `on_progress` gets the bytes programmed so far.
  // Throws Error naming the controller's flag and the failing address. `verified_after`:
  // the caller checks every programmed byte afterwards (CRC or read-back), so the ring
  // writes may leave their per-command status checks to the end (MemAp::WriteCheck).
  void program(std::uint32_t address, std::span<const std::uint8_t> data, unsigned psize,
               const std::function<void(std::uint64_t)>& on_progress = {},
               bool verified_after = false);

  std::uint32_t ring_size() const { return ring_size_; }

  // The loader's CRC runs one instruction per core cycle, so at the reset clock (HSI: 8 MHz
  // on F1/F3, 16 MHz on F4/F7) a CRC of a whole flash takes longer than the USB traffic of
  // an operation. raise_clock() switches SYSCLK to the PLL fed by HSI (64 MHz F1/F3,
  // 168 MHz F4, 180 MHz F7), wait states first; restore_clock() puts back every register it
  // changed. Only from the reset configuration (SYSCLK = HSI, PLL off): a clock the
  // firmware set up is left alone. Both are no-ops when there is nothing to do; both throw
  // Error(timeout) when the RCC does not follow within a deadline.
  void raise_clock();
  void restore_clock();
  bool clock_raised() const { return saved_clock_.raised; }
  // While on, CRC runs of 16 KiB or more and program() raise the clock first (the loader's
  // per-unit overhead is counted in core cycles too); set_fast_crc(false) restores it.
  void set_fast_crc(bool on);

 private:
  struct SavedClock {
    bool raised = false;
    std::uint32_t cr = 0, cfgr = 0, pllcfgr = 0, acr = 0;
  };
  SavedClock saved_clock_;
  bool fast_crc_ = false;

  Target& target_;
  std::uint32_t params_ = 0;  // struct pf_program
  std::uint32_t ring_ = 0;
  std::uint32_t ring_size_ = 0;
  std::uint32_t stack_top_ = 0;
  std::uint64_t core_runs_ = 0;  // CortexM::runs() when the loader was written
};

}  // namespace probefarm::flash
