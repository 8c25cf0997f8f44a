#pragma once
// The AHB-AP of a Cortex-M3/M4/M7: a MEM-AP (ARM IHI 0031 ADIv5.2, chapter C2) that turns
// DRW/BDn accesses into system bus accesses. The SW-DP owns the ACK/WAIT/FAULT protocol;
// this class only knows its registers and the one bus access it may have in flight.
#include <cstdint>

#include "bus.hpp"
#include "clock.hpp"

namespace probefarm::sim {

// Outcome of one AP register access as the DP sees it on the DAP bus.
struct ApResponse {
  BusStatus status = BusStatus::ok;  // error: sets STICKYERR; busy: call resume() later
  std::uint32_t data = 0;            // read data (0 after an error)
  Picoseconds busy_until = 0;        // for status busy
};

class MemAp {
 public:
  // `idr` is the AP's IDR value (ChipInfo::ap_idr).
  // `increment_block`: the size of the block within which TAR auto-increments and wraps
  // (1 KiB minimum per ADIv5; 4 KiB on the Cortex-M3/M4 AHB-AP).
  MemAp(std::uint32_t idr, DebugBus& bus, std::uint32_t increment_block = 1024);

  // `reg` is the AP register address: APBANKSEL << 4 | A[3:2] << 2.
  ApResponse read(unsigned reg);
  ApResponse write(unsigned reg, std::uint32_t value);

  // Retries the stalled bus access of the last read()/write() that answered busy.
  ApResponse resume();
  bool in_progress() const { return pending_.active; }

  // DP ABORT.DAPABORT: the stalled access is abandoned (a write does not happen).
  void abort() { pending_.active = false; }
  void reset();

  // Register offsets, ADIv5.2 C2.6 (MEM-AP register summary).
  static constexpr unsigned kCsw = 0x00;
  static constexpr unsigned kTar = 0x04;
  static constexpr unsigned kDrw = 0x0C;
  static constexpr unsigned kBd0 = 0x10;
  static constexpr unsigned kBd3 = 0x1C;
  static constexpr unsigned kCfg = 0xF4;
  static constexpr unsigned kBase = 0xF8;
  static constexpr unsigned kIdr = 0xFC;

  // Cortex-M3/M4 TRM (DDI 0337, DDI 0439), AHB-AP CSW register description: Prot =
  // privileged data access (HPROT[1:0] = 0b11 in bits [25:24]), DbgStatus/DeviceEn = 1,
  // Size = byte, AddrInc off.
  static constexpr std::uint32_t kCswReset = 0x03000040;
  // ADIv5.2 C2.6 "BASE": ROM table at 0xE00FF000, Format = 1 (bit 1), entry present
  // (bit 0). The Cortex-M ROM table is at 0xE00FF000 (ARMv7-M ARM DDI 0403E C1.2.1).
  static constexpr std::uint32_t kBaseValue = 0xE00FF003;

 private:
  struct Pending {
    bool active = false;
    bool read = false;
    std::uint32_t addr = 0;   // aligned bus address
    std::uint32_t value = 0;  // right-aligned write data
    unsigned size = 4;
    unsigned lane_shift = 0;  // bit position of the data within the 32-bit DRW value
    bool increment = false;   // DRW with AddrInc = single: advance TAR on success
  };

  ApResponse data_access(unsigned reg, bool read, std::uint32_t value);
  ApResponse perform();
  std::uint32_t csw_value() const;

  std::uint32_t idr_;
  DebugBus& bus_;
  std::uint32_t increment_block_;
  std::uint32_t csw_ = kCswReset;  // stored bits; TrInProg and DeviceEn are computed
  std::uint32_t tar_ = 0;
  Pending pending_;
};

}  // namespace probefarm::sim
