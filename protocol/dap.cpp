// ADIv5 DP: connect and power-up, AP discovery, sticky-error recovery and the flush with
// WAIT re-issue. References: ARM IHI 0031 (ADIv5.2), chapters B2 (DP registers), B4
// (SW-DP protocol), C2 (MEM-AP). MemAp lives in mem_ap.cpp.
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>

#include "probe/bytes.hpp"
#include "probe/error.hpp"
#include "protocol/dap.hpp"

namespace probefarm::protocol {
namespace {

using probe::hex32;

// ADIv5.2 B2.2 "CTRL/STAT".
constexpr std::uint32_t kStickyOrun = 1u << 1;
constexpr std::uint32_t kStickyCmp = 1u << 4;
constexpr std::uint32_t kStickyErr = 1u << 5;
constexpr std::uint32_t kWDataErr = 1u << 7;
constexpr std::uint32_t kCdbgPwrUpReq = 1u << 28;
constexpr std::uint32_t kCdbgPwrUpAck = 1u << 29;
constexpr std::uint32_t kCsysPwrUpReq = 1u << 30;
constexpr std::uint32_t kCsysPwrUpAck = 1u << 31;
constexpr std::uint32_t kPowerUpReqs = kCdbgPwrUpReq | kCsysPwrUpReq;
constexpr std::uint32_t kPowerUpAcks = kCdbgPwrUpAck | kCsysPwrUpAck;
// Both domains requested and acknowledged (a previous session left them up).
bool powered(std::uint32_t ctrl_stat) {
  return (ctrl_stat & kPowerUpAcks) == kPowerUpAcks && (ctrl_stat & kPowerUpReqs) == kPowerUpReqs;
}
// What each sticky flag means, in the order a FAULT message names them.
constexpr struct {
  std::uint32_t bit;
  const char* cause;
} kStickyCauses[] = {{kStickyErr, "bus error (STICKYERR)"},
                     {kWDataErr, "write data error"},
                     {kStickyOrun, "overrun"},
                     {kStickyCmp, "compare"}};
// ADIv5.2 B2.2 "ABORT": ORUNERRCLR | WDERRCLR | STKERRCLR | STKCMPCLR, and DAPABORT.
constexpr std::uint32_t kAbortClearAll = 0x1E;
constexpr std::uint32_t kDapAbort = 1u << 0;

// ADIv5.2 C2.6 "IDR": CLASS [16:13] = 0b1000 for a MEM-AP; TYPE [3:0] = 0x1 AMBA AHB3
// (0x8 AMBA AHB5 in ADIv6).
constexpr std::uint8_t kApIdr = 0xFC;
constexpr std::uint8_t kApBase = 0xF8;
constexpr std::uint8_t kApCsw = 0x00;
constexpr std::uint8_t kApTar = 0x04;
constexpr std::uint8_t kApDrw = 0x0C;
constexpr unsigned kMaxAps = 256;  // APSEL is 8 bits (B2.2 "SELECT")

// Power-up handshake: the ACKs usually follow at once; allow a slow power controller.
constexpr auto kPowerUpTimeout = std::chrono::milliseconds(100);
// WAIT re-issues of one flush, on top of the probe's own per-packet retries, and a wall
// deadline for all of them.
constexpr unsigned kWaitBudget = 16;
constexpr auto kWaitTimeout = std::chrono::milliseconds(2000);

constexpr const char* kNoResponseHint =
    "check target power and the SWD wiring; firmware may have disabled the SWD pins: try "
    "--connect-under-reset";

constexpr const char* kWaitHint =
    "the target's bus is stalled (a flash operation that does not end, a hung peripheral): "
    "reset or power-cycle the target, then run the command again";

// Below this VTref the target is unpowered: STM32 parts need 1.7 V or more (RM0090 5.1,
// RM0008 5.1 "operating voltage"); probes read a few mV off an open or dead supply.
constexpr int kPoweredMinMv = 1000;

std::string volts(int mv) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%d.%02d V", mv / 1000, (mv % 1000) / 10);
  return buf;
}

// Adds what the Dap was doing to a probe error (which names the probe and the USB fault
// but not the operation), so that "probe X was unplugged" says during what.
Error with_context(const Error& e, const char* what) {
  return Error(e.category(), std::string(e.message()) + " (during " + what + ")", e.hint());
}

}  // namespace

Dap::Dap(probe::DapProbe& probe) : probe_(probe) {}

void Dap::connect() {
  record_.clear();
  requeued_data_.clear();
  aps_.clear();
  csw_reset_.clear();
  ++generation_;
  try {
    dpidr_ = probe_.connect();
  } catch (const Error& e) {
    if (e.category() != ErrorCategory::target_not_responding) throw;
    throw Error(ErrorCategory::target_not_responding,
                std::string("SWD connect failed: ") + std::string(e.message()),
                e.hint().empty() ? kNoResponseHint : e.hint());
  }
  // Power stays up between sessions (a previous one requested it): then the request and
  // its ACK poll are skipped, a round trip each on probes without a queue (ST-Link).
  if (!powered(clear_sticky_errors())) power_up();

  // AP discovery (ADIv5.2 C2.6 IDR): an absent AP reads IDR 0. AP 0 is always looked at;
  // the first zero IDR after it ends the scan.
  for (unsigned ap = 0; ap < kMaxAps; ++ap) {
    const auto index = static_cast<std::uint8_t>(ap);
    std::uint32_t idr = 0;
    queue_ap_read(index, kApIdr, &idr);
    try {
      flush("AP IDR read");
    } catch (const Error& e) {
      // Some DPs FAULT an access to an AP that is not there (flush cleared the sticky
      // flag): the end of the list, unless even AP 0 cannot be read.
      if (ap == 0 || e.category() != ErrorCategory::target_not_responding) throw;
      break;
    }
    if (idr == 0) {
      if (ap == 0) continue;
      break;
    }
    ApInfo info;
    info.index = index;
    info.idr = idr;
    info.is_mem_ap = ((idr >> 13) & 0xF) == 0x8;
    const std::uint32_t type = idr & 0xF;
    info.is_ahb = info.is_mem_ap && (type == 0x1 || type == 0x8);
    std::uint32_t csw = 0;
    if (info.is_mem_ap) {
      queue_ap_read(index, kApBase, &info.base);
      queue_ap_read(index, kApCsw, &csw);
      flush("MEM-AP BASE/CSW read");
    }
    if (csw_reset_.size() <= ap) csw_reset_.resize(ap + 1, 0);
    csw_reset_[ap] = csw;
    aps_.push_back(info);
  }
}

void Dap::power_up() {
  // ADIv5.2 B2.2 CTRL/STAT and B2.4.2 (system and debug power-up): request both domains,
  // then wait for both ACKs.
  queue_dp_write(probe::kDpCtrlStat, kPowerUpReqs);
  flush("debug power-up request");
  const auto deadline = std::chrono::steady_clock::now() + kPowerUpTimeout;
  std::uint32_t ctrl = 0;
  for (unsigned attempt = 0;; ++attempt) {
    queue_dp_read(probe::kDpCtrlStat, &ctrl);
    flush("CTRL/STAT read");
    if ((ctrl & kPowerUpAcks) == kPowerUpAcks) return;
    // Each poll is a probe round trip; the attempt bound covers a stalled wall clock.
    if (std::chrono::steady_clock::now() > deadline || attempt > 1000) break;
  }
  throw Error(ErrorCategory::target_not_responding,
              "debug power-up not acknowledged (CTRL/STAT " + hex32(ctrl) + ")",
              "the target may be held in a low-power state, or its firmware turned the debug "
              "pins off: try --connect-under-reset, and check power and wiring");
}

bool Dap::ensure_powered() {
  if (powered(clear_sticky_errors())) return false;
  ++generation_;
  power_up();
  return true;
}

const ApInfo& Dap::system_ap() const {
  for (const ApInfo& ap : aps_) {
    if (ap.is_mem_ap && ap.is_ahb) return ap;
  }
  throw Error(ErrorCategory::target_not_responding, "no AHB-AP found on the debug port",
              "the target is not a Cortex-M, or connect() was not called");
}

std::uint32_t Dap::csw_at_connect(std::uint8_t ap) const {
  return ap < csw_reset_.size() ? csw_reset_[ap] : 0;
}

std::uint32_t Dap::clear_sticky_errors() {
  // CTRL/STAT reads and ABORT writes are answered even while a sticky flag is set
  // (ADIv5.2 B4.2), so this works in any state the DP can answer in.
  std::uint32_t ctrl = 0;
  queue_dp_read(probe::kDpCtrlStat, &ctrl);
  queue_dp_write(probe::kDpAbort, kAbortClearAll);
  try {
    flush_raw("clearing sticky errors");
    return ctrl;
  } catch (const Error& e) {
    if (e.category() != ErrorCategory::target_not_responding) throw;
  }
  // A probe that does not know SELECT yet (a new session) writes it before the CTRL/STAT
  // read, and the DP FAULTs that write while a sticky flag is set (ADIv5.2 B4.2.3). ABORT
  // needs no SELECT: clear first, then read. The flags that were set are lost, which only
  // happens for a sticky error left over from before.
  queue_dp_write(probe::kDpAbort, kAbortClearAll);
  queue_dp_read(probe::kDpCtrlStat, &ctrl);
  flush_raw("clearing sticky errors");
  return ctrl;
}

// --- Queue with a record ----------------------------------------------------------------

void Dap::send(const Op& op) {
  switch (op.kind) {
    case Op::Kind::dp_read:
      probe_.queue_dp_read(op.addr, op.out, op.bank);
      break;
    case Op::Kind::dp_write:
      probe_.queue_dp_write(op.addr, op.value, op.bank);
      break;
    case Op::Kind::ap_read:
      probe_.queue_ap_read(op.ap, op.addr, op.out);
      break;
    case Op::Kind::ap_write:
      probe_.queue_ap_write(op.ap, op.addr, op.value);
      break;
  }
}

void Dap::queue(const Op& op) {
  record_.push_back(op);
  send(op);
}

void Dap::queue_dp_read(std::uint8_t addr, std::uint32_t* out, std::uint8_t bank) {
  queue(Op{.kind = Op::Kind::dp_read, .addr = addr, .bank = bank, .out = out});
}

void Dap::queue_dp_write(std::uint8_t addr, std::uint32_t value, std::uint8_t bank) {
  queue(Op{.kind = Op::Kind::dp_write, .addr = addr, .bank = bank, .value = value});
}

void Dap::queue_ap_read(std::uint8_t ap, std::uint8_t addr, std::uint32_t* out) {
  queue(Op{.kind = Op::Kind::ap_read, .ap = ap, .addr = addr, .out = out});
}

void Dap::queue_ap_write(std::uint8_t ap, std::uint8_t addr, std::uint32_t value) {
  queue(Op{.kind = Op::Kind::ap_write, .ap = ap, .addr = addr, .value = value});
}

Dap::Op Dap::memory_op(Op::Kind kind, std::uint8_t ap, std::uint32_t csw, std::uint32_t address) {
  return Op{
      .kind = kind, .ap = ap, .addr = kApDrw, .has_memory = true, .csw = csw, .address = address};
}

void Dap::queue_memory_read(std::uint8_t ap, std::uint32_t csw, std::uint32_t address,
                            std::uint32_t step, std::span<std::uint32_t> out) {
  for (std::size_t k = 0; k < out.size(); ++k) {
    Op op = memory_op(Op::Kind::ap_read, ap, csw, address + static_cast<std::uint32_t>(k) * step);
    op.out = &out[k];
    record_.push_back(op);
  }
  if (out.size() == 1) {
    probe_.queue_ap_read(ap, kApDrw, out.data());
  } else {
    probe_.queue_ap_read_block(ap, kApDrw, out);
  }
}

void Dap::queue_memory_write(std::uint8_t ap, std::uint32_t csw, std::uint32_t address,
                             std::uint32_t step, std::span<const std::uint32_t> data) {
  for (std::size_t k = 0; k < data.size(); ++k) {
    Op op = memory_op(Op::Kind::ap_write, ap, csw, address + static_cast<std::uint32_t>(k) * step);
    op.value = data[k];
    record_.push_back(op);
  }
  if (data.size() == 1) {
    probe_.queue_ap_write(ap, kApDrw, data[0]);
  } else {
    probe_.queue_ap_write_block(ap, kApDrw, data);
  }
}

// Re-issues the record from `from` on: a DRW access first gets its CSW and TAR back
// (TAR may have advanced, or not, for the access that was cut short), then the rest is
// sent again, runs of DRW accesses as blocks.
void Dap::requeue(std::size_t from) {
  std::vector<Op> rest(record_.begin() + static_cast<std::ptrdiff_t>(from), record_.end());
  record_.clear();
  if (rest.empty()) return;
  if (rest.front().has_memory) {
    queue_ap_write(rest.front().ap, kApCsw, rest.front().csw);
    queue_ap_write(rest.front().ap, kApTar, rest.front().address);
  }
  for (std::size_t i = 0; i < rest.size();) {
    std::size_t j = i + 1;
    const Op& first = rest[i];
    if (first.has_memory) {
      while (j < rest.size() && rest[j].has_memory && rest[j].kind == first.kind &&
             rest[j].ap == first.ap && rest[j].csw == first.csw &&
             (first.kind == Op::Kind::ap_write || rest[j].out == first.out + (j - i))) {
        ++j;
      }
    }
    if (j - i > 1) {
      const std::size_t n = j - i;
      if (first.kind == Op::Kind::ap_read) {
        for (std::size_t k = i; k < j; ++k)
          record_.push_back(rest[k]);
        probe_.queue_ap_read_block(first.ap, first.addr, std::span<std::uint32_t>(first.out, n));
      } else {
        auto& buffer = requeued_data_.emplace_back();
        for (std::size_t k = i; k < j; ++k) {
          buffer.push_back(rest[k].value);
          record_.push_back(rest[k]);
        }
        probe_.queue_ap_write_block(first.ap, first.addr, buffer);
      }
    } else {
      record_.push_back(first);
      send(first);
    }
    i = j;
  }
}

// --- Flush and recovery -------------------------------------------------------------------

void Dap::flush_raw(const char* what) {
  probe::DapFlushResult r;
  try {
    r = probe_.flush();
  } catch (...) {
    record_.clear();
    ++generation_;
    throw;
  }
  record_.clear();
  if (r.ok()) return;
  ++generation_;
  if (r.ack == probe::DapAck::wait) {
    // The probe already retried the WAIT (CMSIS-DAP DAP_TransferConfigure WAIT retry,
    // ST-Link firmware and driver backoff): the debug port stays busy.
    throw Error(ErrorCategory::timeout,
                std::string(what) +
                    ": the target kept answering WAIT past the probe's retries (a WAIT storm: "
                    "the debug port or its bus stays busy)",
                kWaitHint);
  }
  throw Error(
      ErrorCategory::target_not_responding,
      std::string(what) + ": " + std::string(probe::dap_ack_name(r.ack)) + " from the debug port",
      kNoResponseHint);
}

void Dap::flush(const char* what) {
  const auto deadline = std::chrono::steady_clock::now() + kWaitTimeout;
  for (unsigned round = 0;; ++round) {
    probe::DapFlushResult r;
    try {
      r = probe_.flush();
    } catch (const Error& e) {
      std::string where = what;
      if (!record_.empty() && record_.front().has_memory)
        where += " at " + hex32(record_.front().address);
      drop_queue();
      ++generation_;
      throw with_context(e, where.c_str());
    } catch (...) {
      drop_queue();
      ++generation_;
      throw;
    }
    if (r.ok()) {
      drop_queue();
      return;
    }
    ++generation_;  // the AP's CSW/TAR may not be what MemAp thinks
    // A copy: the record is dropped before the error is thrown.
    const std::optional<Op> failed =
        r.completed < record_.size() ? std::optional<Op>(record_[r.completed]) : std::nullopt;
    if (r.ack != probe::DapAck::wait) fail(what, r.ack, failed ? &*failed : nullptr);
    // WAIT past the probe's retries: the AP is still busy with an access (a flash write
    // stalls the bus). The access in flight finishes by itself; re-issue what did not
    // complete, from the failure point on.
    if (!failed || round + 1 >= kWaitBudget || std::chrono::steady_clock::now() > deadline) {
      drop_queue();
      // DAPABORT ends the stalled AP transaction so that the DP answers again.
      try {
        queue_dp_write(probe::kDpAbort, kDapAbort | kAbortClearAll);
        flush_raw("DAP abort");
      } catch (const Error&) {
      }
      std::string message = std::string(what) + ": the target kept answering WAIT (" +
                            std::to_string(round + 1) +
                            " re-issues, each after the probe's own WAIT retries)";
      if (failed && failed->has_memory) message += " at " + hex32(failed->address);
      throw Error(ErrorCategory::timeout, message, kWaitHint);
    }
    // Keep the data of re-issued blocks alive until this round's flush.
    std::vector<std::vector<std::uint32_t>> keep;
    keep.swap(requeued_data_);
    requeue(r.completed);
    keep.clear();
  }
}

void Dap::drop_queue() {
  record_.clear();
  requeued_data_.clear();
}

void Dap::fail(const char* what, probe::DapAck ack, const Op* failed) {
  drop_queue();
  std::string where;
  if (failed && failed->has_memory) where = " at " + hex32(failed->address);
  if (ack == probe::DapAck::fault) {
    // ADIv5.2 B4.2.3: FAULT means a sticky flag is set. Which one says what happened.
    std::uint32_t ctrl = 0;
    try {
      ctrl = clear_sticky_errors();
    } catch (const Error&) {
    }
    std::string cause;
    for (const auto& sticky : kStickyCauses) {
      if (!(ctrl & sticky.bit)) continue;
      if (!cause.empty()) cause += ", ";
      cause += sticky.cause;
    }
    if (cause.empty()) cause = "FAULT";
    throw Error(ErrorCategory::target_not_responding,
                std::string(what) + " failed: " + cause + where,
                "the address may be unmapped, its peripheral clock off, or the memory "
                "protected");
  }
  if (ack == probe::DapAck::protocol_error) {
    throw Error(ErrorCategory::target_not_responding,
                std::string(what) + " failed: SWD protocol error (parity)" + where,
                "lower the SWD clock (adapter speed) and check the wiring");
  }
  // No ACK after the target answered before: power lost, held in reset, or its SWD pins
  // taken away. VTref tells the first apart where the probe can measure it (ST-Link).
  int mv = -1;
  try {
    mv = probe_.target_voltage_mv();
  } catch (const Error&) {
  }
  if (mv >= 0 && mv < kPoweredMinMv) {
    throw Error(ErrorCategory::target_not_responding,
                "target power lost during " + std::string(what) + where + " (VTref " + volts(mv) +
                    "): no ACK from the target",
                "restore the target's supply and run the command again");
  }
  throw Error(ErrorCategory::target_not_responding,
              std::string(what) + " failed: no ACK from the target" + where +
                  (mv >= 0 ? " (VTref " + volts(mv) + ")" : std::string()) +
                  ": it lost power, was reset, or its SWD pins were turned off",
              kNoResponseHint);
}

}  // namespace probefarm::protocol
