#pragma once
// Internals of the CMSIS-DAP command interpreter, shared by cmsis_dap.cpp (general, pin
// and sequence commands, command queueing) and cmsis_dap_transfer.cpp (DAP_Transfer,
// DAP_TransferBlock: the SWD engine). Not part of the simulator's interface.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "cmsis_dap.hpp"
#include "sw_dp.hpp"
#include "swd_host.hpp"

namespace probefarm::sim::cmsis_dap {

// Command IDs, CMSIS-DAP v2.1 "Commands".
enum Command : std::uint8_t {
  kInfo = 0x00,
  kHostStatus = 0x01,
  kConnect = 0x02,
  kDisconnect = 0x03,
  kTransferConfigure = 0x04,
  kTransfer = 0x05,
  kTransferBlock = 0x06,
  kTransferAbort = 0x07,
  kWriteAbort = 0x08,
  kDelay = 0x09,
  kResetTarget = 0x0A,
  kSwjPins = 0x10,
  kSwjClock = 0x11,
  kSwjSequence = 0x12,
  kSwdConfigure = 0x13,
  kJtagSequence = 0x14,
  kJtagConfigure = 0x15,
  kJtagIdcode = 0x16,
  kSwdSequence = 0x1D,
  kQueueCommands = 0x7E,
  kExecuteCommands = 0x7F,
};

constexpr std::uint8_t kDapOk = 0x00;
constexpr std::uint8_t kDapError = 0xFF;
constexpr std::uint8_t kDapInvalid = 0xFF;  // the one-byte answer to unknown commands

// Little-endian request reader that never reads past the end: a short request sets
// `short_read` and yields zeros.
class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> data) : data_(data) {}
  bool has(std::size_t n) const { return pos_ + n <= data_.size(); }
  std::uint8_t u8();
  std::uint16_t u16();
  std::uint32_t u32();
  // The next `n` bytes, or an empty span (and short_read) if fewer remain.
  std::span<const std::uint8_t> bytes(std::size_t n);
  std::size_t pos() const { return pos_; }
  bool short_read() const { return short_; }

 private:
  std::span<const std::uint8_t> data_;
  std::size_t pos_ = 0;
  bool short_ = false;
};

// A response being built, bounded by the probe's packet size.
class Writer {
 public:
  Writer(std::vector<std::uint8_t>& buf, std::size_t limit) : buf_(buf), limit_(limit) {}
  std::size_t room() const { return buf_.size() >= limit_ ? 0 : limit_ - buf_.size(); }
  std::size_t size() const { return buf_.size(); }
  void u8(std::uint8_t v) { buf_.push_back(v); }
  void u16(std::uint16_t v);
  void u32(std::uint32_t v);
  void put_u8_at(std::size_t at, std::uint8_t v) { buf_[at] = v; }
  void put_u16_at(std::size_t at, std::uint16_t v);
  void truncate(std::size_t n) { buf_.resize(n); }

 private:
  std::vector<std::uint8_t>& buf_;
  std::size_t limit_;
};

class Engine final : public CmsisDapEngine {
 public:
  Engine(TargetPort& target, CmsisDapConfig config);
  std::optional<std::vector<std::uint8_t>> process(std::span<const std::uint8_t> request) override;

 private:
  // Runs one command from `in` and appends its response. Returns false if the command
  // could not be delimited (unknown or truncated), so a command list must stop there.
  bool run(Reader& in, Writer& out);
  void run_packet_list(Reader& in, Writer& out);

  void info(Reader& in, Writer& out);
  void swj_pins(Reader& in, Writer& out);
  void swj_sequence(Reader& in, Writer& out);
  void swd_sequence(Reader& in, Writer& out);
  bool jtag_command(std::uint8_t cmd, Reader& in, Writer& out);

  // cmsis_dap_transfer.cpp
  void transfer(Reader& in, Writer& out);
  void transfer_block(Reader& in, Writer& out);
  void write_abort(Reader& in, Writer& out);
  std::uint32_t timestamp() const;

  TargetPort& target_;
  CmsisDapConfig config_;
  std::vector<std::vector<std::uint8_t>> queued_;

  // The SWD wire: connection (DAP_Connect), clock (DAP_SWJ_Clock), idle cycles and WAIT
  // retries (DAP_TransferConfigure), turnaround and data phase (DAP_SWD_Configure).
  SwdHost swd_;
  std::uint16_t match_retry_ = 0;
  std::uint32_t match_mask_ = 0xFFFFFFFF;
  // Pin output latches for DAP_SWJ_Pins read-back.
  bool swclk_ = false;
  bool swdio_ = true;
  bool tdi_ = true;
  bool ntrst_ = true;
};

// Test-domain timer of DAP_Info 0xF1 and the transfer timestamps.
constexpr std::uint32_t kTimerHz = 1'000'000;

}  // namespace probefarm::sim::cmsis_dap
