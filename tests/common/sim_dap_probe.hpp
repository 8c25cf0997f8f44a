#pragma once
// SimDapProbe: an in-process probe::DapProbe over a simulated board (probefarm_sim), for
// the tests of protocol/ and flash/. No USB and no probe firmware model in between: it
// drives the board's SW-DP packet by packet (sim::SwDp::transfer) the way a probe's SWD
// engine does, so what protocol/ sees is what a real SW-DP answers:
//
//  - DP SELECT is written by the probe itself and cached (ADIv5.2 B2.2 "SELECT");
//  - AP reads are posted (ADIv5.2 B4 "posted reads"): the data of an AP read arrives with
//    the next AP read, or with an RDBUFF read when something else follows;
//  - WAIT is retried up to `wait_retry` times, each attempt taking its bits of wire time,
//    so that the target (CPU, flash) makes progress between attempts;
//  - FAULT and no-ACK end the queue with an exact `completed`: an AP access whose bus
//    transaction failed is the failing operation, even though its own packet got OK and
//    the FAULT only showed on a later packet (as for CMSIS-DAP's "check last write", the
//    queue ends with an RDBUFF read when its last AP access is not yet confirmed);
//  - virtual time advances by the bits of every packet at the configured SWD clock plus a
//    fixed per-flush latency (a USB round trip), so the core runs while the host works.
//
// Options::native_memory makes native_memory() non-null, as on an ST-Link: it then does
// block memory access itself through the AP's CSW/TAR/DRW (which changes them behind
// protocol/'s back, as the ST-Link firmware does).
//
// Counters (flushes, packets, queued operations) let tests assert batching and caching.
//
// Also here: SimTarget, a Board with an optional firmware image preloaded into its flash
// (through a throw-away state directory: the board loads flash.bin at construction).
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

#include "board.hpp"
#include "chip.hpp"
#include "clock.hpp"
#include "probe/dap_probe.hpp"
#include "probe/error.hpp"
#include "sw_dp.hpp"

namespace probefarm::test {

// The demo firmware image built for `chip` ("stm32f407vg"): bytes of
// PROBEFARM_FIRMWARE_DIR/demo_<chip>.bin, empty when missing.
inline std::vector<std::uint8_t> demo_firmware(const std::string& chip) {
#ifdef PROBEFARM_FIRMWARE_DIR
  std::ifstream in(std::string(PROBEFARM_FIRMWARE_DIR) + "/demo_" + chip + ".bin",
                   std::ios::binary);
  if (!in) return {};
  return {std::istreambuf_iterator<char>(in), {}};
#else
  (void)chip;
  return {};
#endif
}

// A simulated board for one test. `chip` is a sim chip name ("stm32f103c8"); `flash_image`
// (optional) is placed at the start of the flash before the core comes out of reset, so
// the board boots it. The temporary state directory is removed again on destruction.
class SimTarget {
 public:
  explicit SimTarget(const std::string& chip, std::span<const std::uint8_t> flash_image = {}) {
    const sim::ChipInfo* info = sim::find_chip(chip);
    if (info == nullptr) throw std::runtime_error("no simulated chip " + chip);
    sim::BoardOptions options;
    options.serial = "SIM-" + chip;
    options.uid_seed = 1;
    if (!flash_image.empty()) {
      if (flash_image.size() > info->flash_size) throw std::runtime_error("image too large");
      static std::atomic<unsigned> sequence{0};
      dir_ =
          std::filesystem::temp_directory_path() /
          ("probefarm-simtarget-" + std::to_string(::getpid()) + "-" + std::to_string(sequence++));
      std::filesystem::create_directories(dir_);
      std::vector<std::uint8_t> flash(info->flash_size, 0xFF);
      std::copy(flash_image.begin(), flash_image.end(), flash.begin());
      std::ofstream out(dir_ / "flash.bin", std::ios::binary);
      out.write(reinterpret_cast<const char*>(flash.data()),
                static_cast<std::streamsize>(flash.size()));
      out.close();
      options.state_dir = dir_;
    }
    board_ = std::make_unique<sim::Board>(*info, options);
  }
  ~SimTarget() {
    board_.reset();
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }
  SimTarget(const SimTarget&) = delete;
  SimTarget& operator=(const SimTarget&) = delete;

  sim::Board& board() { return *board_; }

 private:
  std::filesystem::path dir_;
  std::unique_ptr<sim::Board> board_;
};

class SimDapProbe final : public probe::DapProbe, private probe::NativeMemory {
 public:
  struct Options {
    std::uint32_t swd_khz = 4000;  // SWCLK; bits of every packet take their time at it
    unsigned wait_retry = 64;      // WAIT retries per packet before DapAck::wait
    // Host-side latency of one flush (a USB round trip of a full-speed probe).
    sim::Picoseconds flush_latency = sim::kMillisecond;
    bool native_memory = false;  // offer NativeMemory (ST-Link style block access)
  };
  struct Stats {
    std::uint64_t flushes = 0;     // flush() calls (native memory calls count one each)
    std::uint64_t packets = 0;     // SWD packets sent, WAIT retries included
    std::uint64_t operations = 0;  // queued operations (a block counts one per word)
    std::uint64_t dp_writes = 0;   // queued DP writes (not the probe's own SELECTs)
    std::uint64_t ap_writes = 0;   // queued AP writes
    std::uint64_t ap_reads = 0;    // queued AP reads
    std::uint64_t nrst_pulses = 0;
  };

  // `board` must outlive the probe. Nothing is sent until connect().
  explicit SimDapProbe(sim::Board& board) : SimDapProbe(board, Options{}) {}
  SimDapProbe(sim::Board& board, Options options) : board_(board), options_(options) {
    info_.serial = "SIM-" + std::string(board.chip().name);
    info_.product = "probefarm SimDapProbe";
  }

  const probe::ProbeInfo& info() const override { return info_; }

  // Line reset, JTAG-to-SWD, line reset, idle bits, then DPIDR (ADIv5.2 B5.2, B4.3.3).
  std::uint32_t connect() override {
    queue_.clear();
    select_valid_ = false;
    connected_ = true;
    const std::uint8_t ones[7] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    const std::uint8_t jtag_to_swd[2] = {0x9E, 0xE7};
    const std::uint8_t idle[1] = {0x00};
    sequence(ones, 56);
    sequence(jtag_to_swd, 16);
    sequence(ones, 56);
    sequence(idle, 8);
    const sim::SwdResult r = packet(false, true, probe::kDpDpidr, 0);
    if (r.ack != sim::SwdAck::ok) {
      throw Error(ErrorCategory::target_not_responding, "no answer to the DPIDR read",
                  "check target power and the SWD wiring");
    }
    return r.data;
  }
  void disconnect() override { connected_ = false; }

  std::uint32_t set_speed_khz(std::uint32_t khz) override {
    options_.swd_khz = khz == 0 ? 1 : khz;
    return options_.swd_khz;
  }
  void set_nrst(bool asserted) override {
    if (asserted && !board_.nrst_asserted()) ++stats_.nrst_pulses;
    board_.set_nrst(asserted);
    // The pin change and the probe's command take a USB round trip.
    board_.advance(options_.flush_latency);
  }
  int target_voltage_mv() override { return static_cast<int>(board_.vtref_mv()); }

  void queue_dp_read(std::uint8_t addr, std::uint32_t* out, std::uint8_t bank = 0) override {
    push(Op{Kind::dp_read, 0, addr, bank, 0, out});
  }
  void queue_dp_write(std::uint8_t addr, std::uint32_t value, std::uint8_t bank = 0) override {
    ++stats_.dp_writes;
    push(Op{Kind::dp_write, 0, addr, bank, value, nullptr});
  }
  void queue_ap_read(std::uint8_t ap, std::uint8_t addr, std::uint32_t* out) override {
    ++stats_.ap_reads;
    push(Op{Kind::ap_read, ap, addr, 0, 0, out});
  }
  void queue_ap_write(std::uint8_t ap, std::uint8_t addr, std::uint32_t value) override {
    ++stats_.ap_writes;
    push(Op{Kind::ap_write, ap, addr, 0, value, nullptr});
  }
  void queue_ap_read_block(std::uint8_t ap, std::uint8_t addr,
                           std::span<std::uint32_t> out) override {
    for (std::uint32_t& word : out)
      queue_ap_read(ap, addr, &word);
  }
  void queue_ap_write_block(std::uint8_t ap, std::uint8_t addr,
                            std::span<const std::uint32_t> data) override {
    for (std::uint32_t word : data)
      queue_ap_write(ap, addr, word);
  }

  probe::DapFlushResult flush() override {
    ++stats_.flushes;
    board_.advance(options_.flush_latency);
    std::vector<Op> ops;
    ops.swap(queue_);
    return run(ops);
  }

  probe::NativeMemory* native_memory() override {
    return options_.native_memory ? static_cast<probe::NativeMemory*>(this) : nullptr;
  }

  // Test hooks.
  const Stats& stats() const { return stats_; }
  void reset_stats() { stats_ = {}; }
  sim::Board& board() { return board_; }
  std::size_t queued() const { return queue_.size(); }
  // Forgets the cached SELECT, as a probe does after a reconnect.
  void forget_select() { select_valid_ = false; }

 private:
  enum class Kind { dp_read, dp_write, ap_read, ap_write };
  struct Op {
    Kind kind;
    std::uint8_t ap;
    std::uint8_t addr;
    std::uint8_t bank;
    std::uint32_t value;
    std::uint32_t* out;
  };

  void push(const Op& op) {
    ++stats_.operations;
    queue_.push_back(op);
  }

  void sequence(const std::uint8_t* bits, unsigned count) {
    if (!connected_) return;
    board_.swd().sequence(bits, count);
    board_.advance(bits_time(count));
  }

  sim::Picoseconds bits_time(std::uint64_t bits) const {
    return sim::cycles_to_ps(bits, std::uint64_t{options_.swd_khz} * 1000);
  }

  // One packet with WAIT retries (ADIv5.2 B4.2): 8 request bits, turnaround, 3 ACK bits,
  // and for OK a turnaround, 32 data bits and parity, then 2 idle cycles.
  sim::SwdResult packet(bool ap, bool read, unsigned addr, std::uint32_t wdata) {
    if (!connected_) return {};
    for (unsigned attempt = 0;; ++attempt) {
      const sim::SwdResult r = board_.swd().transfer(ap, read, addr, wdata);
      ++stats_.packets;
      ++board_.counters().swd_transfers;
      board_.advance(bits_time(r.ack == sim::SwdAck::ok ? 8 + 1 + 3 + 1 + 33 + 2 : 8 + 1 + 3 + 1));
      if (r.ack != sim::SwdAck::wait || attempt >= options_.wait_retry) return r;
    }
  }

  static probe::DapAck to_ack(const sim::SwdResult& r) {
    switch (r.ack) {
      case sim::SwdAck::ok:
        return r.parity_ok ? probe::DapAck::ok : probe::DapAck::protocol_error;
      case sim::SwdAck::wait:
        return probe::DapAck::wait;
      case sim::SwdAck::fault:
        return probe::DapAck::fault;
      case sim::SwdAck::no_response:
        return probe::DapAck::no_response;
    }
    return probe::DapAck::protocol_error;
  }

  // SELECT: APSEL [31:24], APBANKSEL [7:4], DPBANKSEL [3:0] (ADIv5.2 B2.2 "SELECT").
  // Returns false when the SELECT write failed (`r` says how); `sent` tells whether a
  // packet went out.
  bool ensure_select(std::uint32_t value, sim::SwdResult& r, bool& sent) {
    sent = false;
    if (select_valid_ && select_ == value) return true;
    sent = true;
    r = packet(false, false, probe::kDpSelect, value);
    if (r.ack != sim::SwdAck::ok) {
      select_valid_ = false;
      return false;
    }
    select_ = value;
    select_valid_ = true;
    return true;
  }
  std::uint32_t ap_select(const Op& op) const {
    const std::uint32_t dpbank = select_valid_ ? (select_ & 0xF) : 0;
    return std::uint32_t{op.ap} << 24 | (op.addr & 0xF0u) | dpbank;
  }
  // Only the DP registers at 0x4 are banked (DPBANKSEL); the AP fields stay as they are.
  std::uint32_t dp_select(const Op& op) const {
    return (select_valid_ ? (select_ & ~0xFu) : 0) | (op.bank & 0xFu);
  }

  probe::DapFlushResult run(std::vector<Op>& ops) {
    probe::DapFlushResult result;
    // The posted AP read whose data has not been collected yet, and the oldest AP access
    // whose bus transaction is not known to have succeeded (a later non-exempt packet
    // that got OK proves it: the DP would have answered FAULT otherwise).
    std::optional<std::size_t> pending_read;
    std::optional<std::size_t> unconfirmed;
    auto fail = [&](std::size_t at, const sim::SwdResult& r) {
      result.ack = to_ack(r);
      std::size_t done = at;
      if (r.ack != sim::SwdAck::wait && unconfirmed) done = std::min(done, *unconfirmed);
      if (pending_read) done = std::min(done, *pending_read);
      result.completed = done;
      return result;
    };
    // Collects a posted read with RDBUFF; true on OK.
    auto collect = [&](std::size_t at, sim::SwdResult& r) {
      if (!pending_read) return true;
      r = packet(false, true, probe::kDpRdbuff, 0);
      if (r.ack != sim::SwdAck::ok) return false;
      if (ops[*pending_read].out) *ops[*pending_read].out = r.data;
      pending_read.reset();
      unconfirmed.reset();
      (void)at;
      return true;
    };

    for (std::size_t i = 0; i < ops.size(); ++i) {
      const Op& op = ops[i];
      sim::SwdResult r;
      if (op.kind != Kind::ap_read && !collect(i, r)) return fail(i, r);
      switch (op.kind) {
        case Kind::dp_read:
        case Kind::dp_write: {
          const bool read = op.kind == Kind::dp_read;
          if (op.addr == probe::kDpSelect && !read) {
            // The driver owns SELECT; a caller's SELECT write only invalidates the cache.
            select_valid_ = false;
          }
          bool sent = false;
          if (op.addr == 0x4 && !ensure_select(dp_select(op), r, sent)) return fail(i, r);
          if (sent) unconfirmed.reset();
          r = packet(false, read, op.addr, op.value);
          if (r.ack != sim::SwdAck::ok) return fail(i, r);
          if (read && op.out) *op.out = r.data;
          // DPIDR/CTRL-STAT reads and ABORT writes are answered even with a sticky flag
          // set (ADIv5.2 B4): they prove nothing about earlier AP accesses.
          const bool exempt =
              (read && (op.addr == 0x0 || op.addr == 0x4)) || (!read && op.addr == 0x0);
          if (!exempt) unconfirmed.reset();
          break;
        }
        case Kind::ap_read:
        case Kind::ap_write: {
          const bool read = op.kind == Kind::ap_read;
          bool sent = false;
          if (!ensure_select(ap_select(op), r, sent)) return fail(i, r);
          // A SELECT write answered OK proves the earlier AP accesses succeeded.
          if (sent) unconfirmed.reset();
          r = packet(true, read, op.addr & 0xC, op.value);
          if (r.ack != sim::SwdAck::ok) return fail(i, r);
          if (pending_read) {
            if (ops[*pending_read].out) *ops[*pending_read].out = r.data;
            pending_read.reset();
          }
          if (read) pending_read = i;
          unconfirmed = i;
          break;
        }
      }
    }
    // Check the last AP access (and collect a last posted read) with an RDBUFF read.
    if (pending_read || unconfirmed) {
      const std::size_t at = pending_read ? *pending_read : *unconfirmed;
      sim::SwdResult r = packet(false, true, probe::kDpRdbuff, 0);
      if (r.ack != sim::SwdAck::ok) return fail(at, r);
      if (pending_read && ops[*pending_read].out) *ops[*pending_read].out = r.data;
    }
    result.completed = ops.size();
    return result;
  }

  // NativeMemory: the probe's own memory commands, through CSW/TAR/DRW like ST-Link
  // firmware (which leaves CSW and TAR changed).
  void native(std::uint8_t ap, std::uint32_t address, std::size_t bytes, unsigned width,
              const std::uint8_t* in, std::uint8_t* out) {
    if (width != 8 && width != 16 && width != 32) throw Error(ErrorCategory::usage, "bad width");
    const unsigned step = width / 8;
    if (address % step != 0 || bytes % step != 0) {
      throw Error(ErrorCategory::usage, "unaligned native memory access");
    }
    ++stats_.flushes;
    board_.advance(options_.flush_latency);
    std::vector<Op> ops;
    std::vector<std::uint32_t> words(bytes / step);
    const std::uint32_t size_bits = width == 8 ? 0 : width == 16 ? 1 : 2;
    // The AP's reset CSW upper bits (Prot, DbgSwEnable) with AddrInc single.
    const std::uint32_t csw = 0x03000000u | 0x10u | size_bits;
    ops.push_back(Op{Kind::ap_write, ap, 0x00, 0, csw, nullptr});
    for (std::size_t k = 0; k < words.size(); ++k) {
      const std::uint32_t a = address + static_cast<std::uint32_t>(k * step);
      if (k == 0 || a % 1024 == 0) ops.push_back(Op{Kind::ap_write, ap, 0x04, 0, a, nullptr});
      const unsigned lane = (a & 3) * 8;
      if (in) {
        std::uint32_t v = 0;
        for (unsigned b = 0; b < step; ++b)
          v |= std::uint32_t{in[k * step + b]} << (8 * b);
        ops.push_back(Op{Kind::ap_write, ap, 0x0C, 0, v << lane, nullptr});
      } else {
        ops.push_back(Op{Kind::ap_read, ap, 0x0C, 0, 0, &words[k]});
      }
    }
    const probe::DapFlushResult r = run(ops);
    if (!r.ok()) {
      // As ST-Link firmware does: report the fault and clear the sticky flags.
      sim::SwdResult ignored = packet(false, false, probe::kDpAbort, 0x1E);
      (void)ignored;
      throw Error(ErrorCategory::target_not_responding,
                  std::string("memory ") + (in ? "write" : "read") + " failed (" +
                      std::string(probe::dap_ack_name(r.ack)) + ") near 0x" + hex(address));
    }
    if (out) {
      for (std::size_t k = 0; k < words.size(); ++k) {
        const std::uint32_t a = address + static_cast<std::uint32_t>(k * step);
        const std::uint32_t v = words[k] >> ((a & 3) * 8);
        for (unsigned b = 0; b < step; ++b)
          out[k * step + b] = static_cast<std::uint8_t>(v >> (8 * b));
      }
    }
  }
  void read(std::uint8_t ap, std::uint32_t address, std::span<std::uint8_t> out,
            unsigned width) override {
    native(ap, address, out.size(), width, nullptr, out.data());
  }
  void write(std::uint8_t ap, std::uint32_t address, std::span<const std::uint8_t> data,
             unsigned width, WriteCheck) override {
    native(ap, address, data.size(), width, data.data(), nullptr);
  }
  std::uint32_t read_word(std::uint32_t address) override {
    std::uint8_t b[4] = {};
    native(0, address, 4, 32, nullptr, b);
    return b[0] | b[1] << 8 | b[2] << 16 | static_cast<std::uint32_t>(b[3]) << 24;
  }
  void write_word(std::uint32_t address, std::uint32_t value) override {
    const std::uint8_t b[4] = {
        static_cast<std::uint8_t>(value), static_cast<std::uint8_t>(value >> 8),
        static_cast<std::uint8_t>(value >> 16), static_cast<std::uint8_t>(value >> 24)};
    native(0, address, 4, 32, b, nullptr);
  }
  // As ST-Link firmware runs READREG/WRITEREG: DCRSR, DHCSR polled for S_REGRDY, DCRDR
  // (ARMv7-M ARM C1.6.3). Counted as one command each.
  std::uint32_t read_core_register(std::uint8_t regsel) override {
    const std::uint64_t before = stats_.flushes;
    write_word(kDcrsr, regsel);
    wait_register_ready();
    const std::uint32_t v = read_word(kDcrdr);
    stats_.flushes = before + 1;
    return v;
  }
  void write_core_register(std::uint8_t regsel, std::uint32_t value) override {
    const std::uint64_t before = stats_.flushes;
    write_word(kDcrdr, value);
    write_word(kDcrsr, regsel | 1u << 16);  // REGWnR
    wait_register_ready();
    stats_.flushes = before + 1;
  }
  void wait_register_ready() {
    for (int i = 0; i < 100; ++i)
      if (read_word(kDhcsr) & 1u << 16) return;  // S_REGRDY
    throw Error(ErrorCategory::timeout, "S_REGRDY never set");
  }
  static constexpr std::uint32_t kDhcsr = 0xE000EDF0;
  static constexpr std::uint32_t kDcrsr = 0xE000EDF4;
  static constexpr std::uint32_t kDcrdr = 0xE000EDF8;

  static std::string hex(std::uint32_t v) {
    static const char* digits = "0123456789ABCDEF";
    std::string s(8, '0');
    for (int i = 7; i >= 0; --i, v >>= 4)
      s[static_cast<std::size_t>(i)] = digits[v & 0xF];
    return s;
  }

  sim::Board& board_;
  Options options_;
  probe::ProbeInfo info_;
  std::vector<Op> queue_;
  bool connected_ = false;
  bool select_valid_ = false;
  std::uint32_t select_ = 0;
  Stats stats_;
};

}  // namespace probefarm::test
