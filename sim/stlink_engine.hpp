#pragma once
// Internals of the ST-Link command interpreter, shared by stlink.cpp (command dispatch,
// modes, versions, clocks, nRST, core registers) and stlink_swd.cpp (the firmware's SWD
// engine: DAP registers, memory transfers, RW_MISC). Not part of the simulator's interface.
//
// Command codes, layouts and status codes are as observed from ST-Link firmware behaviour;
// ST does not publish them.
#include <array>
#include <bitset>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "stlink.hpp"
#include "swd_host.hpp"

namespace probefarm::sim::stlink {

// Command byte 0.
constexpr std::uint8_t kGetVersion = 0xF1;
constexpr std::uint8_t kDebugCommand = 0xF2;
constexpr std::uint8_t kDfuCommand = 0xF3;
constexpr std::uint8_t kSwimCommand = 0xF4;
constexpr std::uint8_t kGetCurrentMode = 0xF5;
constexpr std::uint8_t kGetTargetVoltage = 0xF7;
constexpr std::uint8_t kGetVersionEx = 0xFB;  // STLINK-V3 only
constexpr std::uint8_t kDfuExit = 0x07;       // byte 1 of kDfuCommand

// Byte 1 of kDebugCommand.
enum DebugCommand : std::uint8_t {
  kGetStatus = 0x01,
  kForceDebug = 0x02,
  kReadMem32 = 0x07,
  kWriteMem32 = 0x08,
  kRunCore = 0x09,
  kStepCore = 0x0A,
  kReadMem8 = 0x0C,
  kWriteMem8 = 0x0D,
  kExit = 0x21,
  kEnter = 0x30,
  kReadIdCodes = 0x31,
  kResetSys = 0x32,
  kReadReg = 0x33,
  kWriteReg = 0x34,
  kWriteDebugReg = 0x35,
  kReadDebugReg = 0x36,
  kReadAllRegs = 0x3A,
  kGetLastRwStatus = 0x3B,
  kDriveNrst = 0x3C,
  kGetLastRwStatus2 = 0x3E,
  kStartTraceRx = 0x40,
  kStopTraceRx = 0x41,
  kGetTraceNb = 0x42,
  kSwdSetFreq = 0x43,   // ST-LINK/V2 and V2-1
  kJtagSetFreq = 0x44,  // ST-LINK/V2 and V2-1
  kReadDapReg = 0x45,
  kWriteDapReg = 0x46,
  kReadMem16 = 0x47,
  kWriteMem16 = 0x48,
  kInitAp = 0x4B,
  kCloseApDbg = 0x4C,
  kWriteMem32NoInc = 0x50,
  kRwMiscOut = 0x51,
  kRwMiscIn = 0x52,
  kReadMem32NoInc = 0x54,
  kSetComFreq = 0x61,  // STLINK-V3 only
  kGetComFreq = 0x62,  // STLINK-V3 only
};

// Byte 2 of kEnter.
constexpr std::uint8_t kEnterJtagReset = 0x00;
constexpr std::uint8_t kEnterSwdNoReset = 0xA3;
constexpr std::uint8_t kEnterJtagNoReset = 0xA4;

// Byte 2 of kDriveNrst.
constexpr std::uint8_t kNrstLow = 0x00;
constexpr std::uint8_t kNrstHigh = 0x01;
constexpr std::uint8_t kNrstPulse = 0x02;

// GET_CURRENT_MODE answers.
enum Mode : std::uint8_t { kModeDfu = 0x00, kModeMass = 0x01, kModeDebug = 0x02 };

// Status codes, first byte of most responses and of GETLASTRWSTATUS(2).
enum Status : std::uint8_t {
  kOk = 0x80,
  kCmdError = 0x08,        // a request the firmware cannot carry out (length, parameter)
  kGetIdcodeError = 0x09,  // no JTAG TAP answered
  kAlignmentError = 0x0A,
  kDbgPowerError = 0x0B,  // CDBGPWRUPACK/CSYSPWRUPACK never came
  kApWait = 0x10,
  kApFault = 0x11,
  kApError = 0x12,  // no (or an invalid) ACK
  kApParityError = 0x13,
  kDpWait = 0x14,
  kDpFault = 0x15,
  kDpError = 0x16,
  kDpParityError = 0x17,
  kApWdataError = 0x18,
  kApStickyError = 0x19,
  kApStickyOrunError = 0x1A,
  kBadAp = 0x1D,  // an AP that INIT_AP has not opened
  kFreqNotSupported = 0x41,
  kUnknownCommand = 0x42,
};

// GETSTATUS answers.
constexpr std::uint8_t kCoreRunning = 0x80;
constexpr std::uint8_t kCoreHalted = 0x81;

constexpr std::size_t kCommandSize = 16;
// The firmware's transfer buffer: 16- and 32-bit memory commands move at most this many
// bytes at once; 8-bit ones one USB packet (64 bytes on the full-speed probes, 512 on the
// STLINK-V3 from firmware J6).
constexpr std::size_t kMaxRw16_32 = 6144;
// READ_DAP_REG / WRITE_DAP_REG port number that addresses the DP instead of an AP.
constexpr unsigned kDpPort = 0xFFFF;
// RW_MISC item codes.
constexpr std::uint8_t kMiscAddress = 1;
constexpr std::uint8_t kMiscWrite = 2;
constexpr std::uint8_t kMiscRead = 3;
constexpr std::uint8_t kMiscApNum = 5;

// One command packet; fields are little-endian at byte offsets.
struct Command {
  std::array<std::uint8_t, kCommandSize> b{};
  std::uint8_t u8(std::size_t at) const { return b[at]; }
  std::uint16_t u16(std::size_t at) const {
    return static_cast<std::uint16_t>(b[at] | b[at + 1] << 8);
  }
  std::uint32_t u32(std::size_t at) const { return u16(at) | std::uint32_t{u16(at + 2)} << 16; }
};

using Bytes = std::vector<std::uint8_t>;

inline void put32(Bytes& b, std::size_t at, std::uint32_t v) {
  for (std::size_t i = 0; i < 4; ++i)
    b[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
}

class Engine final : public StLinkEngine {
 public:
  Engine(TargetPort& target, StLinkVariant variant);
  std::vector<Bytes> receive(std::span<const std::uint8_t> transfer) override;
  std::size_t data_expected() const override { return data_needed_; }

 private:
  // A memory transfer on an AP: CSW bits 31:8 from the command (0: the firmware's
  // default), item size 1/2/4, address increment or one address repeatedly.
  struct MemOp {
    unsigned ap = 0;
    std::uint32_t csw = 0;
    std::uint32_t addr = 0;
    unsigned size = 4;
    bool increment = true;
  };

  // stlink.cpp
  // Runs a command packet; a write command only announces its data phase.
  std::optional<Bytes> run(const Command& c);
  std::optional<Bytes> debug(const Command& c);
  void finish_data_phase();
  Bytes enter(std::uint8_t how);
  void leave_debug();
  Bytes target_voltage() const;
  Bytes swd_set_freq(std::uint16_t divisor);
  Bytes jtag_set_freq(std::uint16_t divisor);
  Bytes get_com_freq(bool jtag) const;
  Bytes set_com_freq(bool jtag, std::uint32_t khz);
  Bytes drive_nrst(std::uint8_t how);
  Bytes core_state();
  Bytes write_dhcsr(std::uint32_t control);
  Bytes read_core_reg(std::uint8_t regsel);
  Bytes write_core_reg(std::uint8_t regsel, std::uint32_t value);
  Bytes read_all_regs();
  bool core_reg(std::uint8_t regsel, std::uint32_t& value);

  // stlink_swd.cpp: the firmware's SWD engine.
  // Starts a command's SWD work. `recover`: a FAULT is classified through CTRL/STAT and
  // the sticky flags cleared (the firmware's own transfers), or left to the host (raw
  // DAP register access).
  void begin(bool recover);
  // One packet; false (and st_ set) if it or an earlier one of the command failed.
  bool xfer(bool ap, bool read, unsigned addr, std::uint32_t wdata, std::uint32_t* rdata);
  void fault(bool ap);
  bool select(unsigned apsel, unsigned apbank, unsigned dpbank);
  bool dp_read(unsigned reg, std::uint32_t& value);  // reg: DPBANKSEL << 4 | A[3:2]
  bool dp_write(unsigned reg, std::uint32_t value);
  bool ap_read(unsigned apsel, unsigned reg, std::uint32_t& value);
  bool ap_write(unsigned apsel, unsigned reg, std::uint32_t value);
  std::uint32_t csw_for(const MemOp& op) const;
  void mem_read(const MemOp& op, std::size_t len, Bytes& out);
  void mem_write(const MemOp& op, std::span<const std::uint8_t> data);
  bool mem_word_read(std::uint32_t addr, std::uint32_t& value);
  bool mem_word_write(std::uint32_t addr, std::uint32_t value);
  std::optional<Bytes> memory_read_command(const Command& c);
  std::uint8_t check_memory_command(const Command& c, std::size_t max_len);
  void memory_write_command(const Command& c, std::span<const std::uint8_t> data);
  Bytes read_dap_reg(unsigned port, unsigned addr);
  Bytes write_dap_reg(unsigned port, unsigned addr, std::uint32_t value);
  Bytes init_ap(unsigned apsel);
  Bytes close_ap(unsigned apsel);
  void rw_misc(std::uint32_t items, std::span<const std::uint8_t> data);
  Bytes rw_misc_results();
  std::size_t max_rw8() const;
  std::uint32_t rw_misc_max_items() const;

  TargetPort& target_;
  StLinkVariant variant_;
  const StLinkIdentity& id_;
  SwdHost swd_;
  Mode mode_ = kModeMass;

  // A write command waiting for its data phase.
  Command pending_;
  std::size_t data_needed_ = 0;
  Bytes data_;

  std::uint32_t swd_khz_;
  std::uint32_t jtag_khz_ = 1125;  // no JTAG port on these boards: only remembered

  // SWD engine state.
  std::uint8_t st_ = kOk;
  bool recover_ = true;
  std::uint32_t select_ = 0;
  bool select_valid_ = false;
  std::bitset<256> open_aps_;
  std::uint32_t failed_addr_ = 0;  // the access a failed memory transfer stopped at
  // GETLASTRWSTATUS(2): status and failed address of the last memory command.
  std::uint8_t last_rw_ = kOk;
  std::uint32_t fault_addr_ = 0;
  Bytes misc_results_;
};

}  // namespace probefarm::sim::stlink
