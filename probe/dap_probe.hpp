#pragma once
// What protocol/ sees of a debug probe: a queue of ADIv5 DP/AP register operations that
// runs on flush(), plus the probe's own controls (clock, nRST). CMSIS-DAP packs the queue
// into DAP_Transfer/DAP_TransferBlock packets; ST-Link sends its DP/AP register commands
// and, for memory, offers its block memory commands through native_memory().
//
// Registers are addressed as ADIv5 names them (ARM IHI 0031, ADIv5.2): DP registers by
// A[3:2] (0x0 DPIDR/ABORT, 0x4 CTRL/STAT, 0x8 SELECT/RESEND, 0xC RDBUFF) with the DP bank
// given separately; AP registers by AP number and full address 0x00..0xFC. The driver
// writes DP SELECT itself (and caches it), so callers never touch SELECT.
//
// Threading: one thread at a time (the probe actor).
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "probe/discovery.hpp"

namespace probefarm::probe {

constexpr std::uint8_t kDpDpidr = 0x0;  // read
constexpr std::uint8_t kDpAbort = 0x0;  // write
constexpr std::uint8_t kDpCtrlStat = 0x4;
constexpr std::uint8_t kDpSelect = 0x8;
constexpr std::uint8_t kDpRdbuff = 0xC;

// How the queue ended (ADIv5.2 B4.2.3 ACK values, plus what a probe reports on top).
enum class DapAck {
  ok,
  wait,            // the target kept answering WAIT past the probe's retry budget
  fault,           // FAULT: a sticky error flag is set in CTRL/STAT; clear it via ABORT
  no_response,     // no ACK at all: target unpowered, SWD pins off, or wrong protocol
  protocol_error,  // read data parity error or an ACK the protocol does not define
};

std::string_view dap_ack_name(DapAck ack);

struct DapFlushResult {
  DapAck ack = DapAck::ok;
  // Operations of the queue that completed before the failure, in queue order (a block
  // counts one per word). Reads among them have delivered their values.
  std::size_t completed = 0;

  bool ok() const { return ack == DapAck::ok; }
};

// Memory access the probe does itself (ST-Link's READMEM/WRITEMEM commands). MEM-AP
// layering above uses it instead of TAR/DRW when a probe offers it.
class NativeMemory {
 public:
  virtual ~NativeMemory() = default;
  // `width` is 8, 16 or 32 bits; address and size are multiples of width/8. The driver
  // splits into the probe's block limits. Throws Error: target_not_responding for a fault
  // or no answer from the target (naming the address), probe_io for USB failures.
  virtual void read(std::uint8_t ap, std::uint32_t address, std::span<std::uint8_t> out,
                    unsigned width) = 0;
  // `check`: WriteCheck::each_command asks the probe after every command whether it
  // reached the target. WriteCheck::at_end asks once, after the last: a command that
  // failed while later ones got through may then go unreported (a persistent fault, such
  // as lost power or an unplugged target, is still reported). Only for data whose arrival
  // is verified another way, such as a flash image checked by CRC afterwards.
  enum class WriteCheck { each_command, at_end };
  virtual void write(std::uint8_t ap, std::uint32_t address, std::span<const std::uint8_t> data,
                     unsigned width, WriteCheck check) = 0;

  // One aligned 32-bit word of AP 0's memory in one probe command instead of CSW, TAR and
  // DRW accesses. The probe writes CSW and TAR itself: both are unknown afterwards.
  virtual std::uint32_t read_word(std::uint32_t address) = 0;
  virtual void write_word(std::uint32_t address, std::uint32_t value) = 0;

  // Core register `regsel` (ARMv7-M DCRSR.REGSEL) of the Cortex-M behind AP 0, halted, in
  // one probe command that runs the DCRSR/DCRDR/S_REGRDY handshake itself.
  virtual std::uint32_t read_core_register(std::uint8_t regsel) = 0;
  virtual void write_core_register(std::uint8_t regsel, std::uint32_t value) = 0;
};

class DapProbe {
 public:
  virtual ~DapProbe() = default;

  // kind, serial, firmware version (filled in by the driver), product strings.
  virtual const ProbeInfo& info() const = 0;

  // Puts the probe in SWD mode, sends the JTAG-to-SWD switch and a line reset, and reads
  // DPIDR (returned). Throws Error(target_not_responding) when nothing answers.
  virtual std::uint32_t connect() = 0;
  // Leaves debug mode (releases the pins); safe to call on an already disconnected probe.
  virtual void disconnect() = 0;

  // The SWD clock: sets the fastest the probe supports that is <= `khz` (or its slowest)
  // and returns it, so callers can say "using 1800 kHz instead of 2000 kHz".
  virtual std::uint32_t set_speed_khz(std::uint32_t khz) = 0;
  // nRST as an open-drain output: true pulls it low.
  virtual void set_nrst(bool asserted) = 0;
  // Target supply sensed on VTref in millivolts, or -1 when the probe cannot tell.
  virtual int target_voltage_mv() = 0;

  // The queue. Nothing is sent until flush(); `out` must stay valid until then. DP `bank`
  // is SELECT.DPBANKSEL (DPv1+), 0 for the registers above.
  virtual void queue_dp_read(std::uint8_t addr, std::uint32_t* out, std::uint8_t bank = 0) = 0;
  virtual void queue_dp_write(std::uint8_t addr, std::uint32_t value, std::uint8_t bank = 0) = 0;
  virtual void queue_ap_read(std::uint8_t ap, std::uint8_t addr, std::uint32_t* out) = 0;
  virtual void queue_ap_write(std::uint8_t ap, std::uint8_t addr, std::uint32_t value) = 0;
  // Repeated accesses to one AP register (a MEM-AP's DRW with TAR auto-increment).
  virtual void queue_ap_read_block(std::uint8_t ap, std::uint8_t addr,
                                   std::span<std::uint32_t> out) = 0;
  virtual void queue_ap_write_block(std::uint8_t ap, std::uint8_t addr,
                                    std::span<const std::uint32_t> data) = 0;

  // Runs the queue and empties it. Transfer-level failures (WAIT past the retry budget,
  // FAULT, no ACK, parity) come back in the result so protocol/ can recover (clear sticky
  // flags through ABORT, retry); what follows the failing operation was not run. Throws
  // Error only when the probe itself fails (USB error, unplugged, malformed response).
  virtual DapFlushResult flush() = 0;

  // Non-null when the probe does MEM-AP memory access itself (ST-Link).
  virtual NativeMemory* native_memory() { return nullptr; }
};

}  // namespace probefarm::probe

namespace probefarm::probe {

// Opens the probe (open_probe) and wraps it in the driver its kind needs. The driver has
// asked the probe for its firmware version (info().firmware_version) but has not connected.
std::unique_ptr<DapProbe> open_dap_probe(UsbContext& usb, const ProbeInfo& info);

}  // namespace probefarm::probe
