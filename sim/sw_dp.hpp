#pragma once
// Serial Wire Debug Port (ADIv5 SW-DP, DPv1 or DPv2) with one AHB-AP (MEM-AP) behind it,
// driven bit-for-bit the way a probe's SWD engine drives the wire.
// ARM IHI 0031 (ADIv5.2): B4 (SW-DP), B2 (DP registers), C2 (MEM-AP).
#include <cstdint>
#include <memory>

#include "bus.hpp"
#include "chip.hpp"
#include "clock.hpp"

namespace probefarm::sim {

// The three ACK bits as they appear on the wire, LSB first (ADIv5.2 B4.2.3).
enum class SwdAck : std::uint8_t {
  ok = 0b001,
  wait = 0b010,
  fault = 0b100,
  no_response = 0b111,  // nobody drives the line: the pull-up reads as 1s
};

struct SwdResult {
  SwdAck ack = SwdAck::no_response;
  std::uint32_t data = 0;  // read data (only meaningful for reads with ack ok)
  bool parity_ok = true;   // parity of the read data phase as sent by the target
};

class SwDp {
 public:
  virtual ~SwDp() = default;

  // Bits the host drives on SWDIO with SWCLK toggling (DAP_SWJ_Sequence, or the output
  // part of DAP_SWD_Sequence), LSB first. Detects line reset (>= 50 ones) and the
  // JTAG-to-SWD select sequence 0xE79E.
  virtual void sequence(const std::uint8_t* bits, unsigned count) = 0;

  // One SWD packet. `addr` is A[3:2] << 2 (0x0, 0x4, 0x8, 0xC). `wdata_parity_ok` lets a
  // probe model a corrupted write data phase (sets WDATAERR).
  virtual SwdResult transfer(bool ap, bool read, unsigned addr, std::uint32_t wdata,
                             bool wdata_parity_ok = true) = 0;

  // Power-on reset of the debug domain (board power cycle).
  virtual void power_on_reset() = 0;

  // Whether SWDIO/SWCLK reach the DP: false while the target is unpowered or firmware has
  // turned the pins into GPIOs. Meanwhile packets are unanswered and sequences are lost;
  // the DP keeps its state, as its debug domain does on silicon.
  virtual void set_pins_connected(bool connected) = 0;

  // Fault injection: the next `packets` packets that could be answered WAIT (anything but
  // the always-accepted DPIDR/CTRL-STAT reads and ABORT writes) are answered WAIT.
  virtual void inject_wait(unsigned packets) = 0;

  // CTRL/STAT CDBGPWRUPACK: debug domain powered, so the core's debug logic is usable.
  virtual bool debug_powered() const = 0;
};

// `bus` is the system bus behind the AHB-AP; `clock` decides when a stalled access
// (BusStatus::busy) has completed, so that the DP answers WAIT until then.
std::unique_ptr<SwDp> make_sw_dp(const ChipInfo& chip, DebugBus& bus, const VirtualClock& clock);

}  // namespace probefarm::sim
