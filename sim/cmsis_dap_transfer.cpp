// DAP_Transfer, DAP_TransferBlock and DAP_WriteABORT: the probe's SWD engine.
// CMSIS-DAP v2.1 "Transfer Commands"; SWD packet format ADIv5.2 B4.
#include <algorithm>

#include "cmsis_dap_engine.hpp"

namespace probefarm::sim::cmsis_dap {
namespace {

// Transfer Request byte (DAP_Transfer, DAP_TransferBlock).
constexpr std::uint8_t kReqAp = 0x01;
constexpr std::uint8_t kReqRead = 0x02;
constexpr std::uint8_t kReqAddr = 0x0C;
constexpr std::uint8_t kReqMatchValue = 0x10;
constexpr std::uint8_t kReqMatchMask = 0x20;
constexpr std::uint8_t kReqTimestamp = 0x80;
// Transfer Response byte: bits 2:0 ACK, bit 3 SWD protocol error, bit 4 value mismatch.
constexpr std::uint8_t kRespProtocolError = 0x08;
constexpr std::uint8_t kRespMismatch = 0x10;

constexpr unsigned kDpRdbuff = 0xC;
constexpr unsigned kDpAbort = 0x0;

bool good(const SwdResult& r) {
  return r.ack == SwdAck::ok && r.parity_ok;
}

std::uint8_t status(const SwdResult& r) {
  auto s = static_cast<std::uint8_t>(r.ack);
  if (r.ack == SwdAck::ok && !r.parity_ok) s |= kRespProtocolError;
  return s;
}

}  // namespace

std::uint32_t Engine::timestamp() const {
  return static_cast<std::uint32_t>(target_.now() / (kSecond / kTimerHz));
}

void Engine::transfer(Reader& in, Writer& out) {
  in.u8();  // DAP index: JTAG only
  std::uint8_t count = in.u8();
  out.u8(kTransfer);
  std::size_t count_at = out.size();
  out.u8(0);
  std::size_t response_at = out.size();
  out.u8(0);

  unsigned done = 0;  // transfers fully executed and answered
  std::uint8_t response = 0;
  bool failed = false;
  // AP reads are posted (ADIv5.2 B4): the data of AP read n arrives with the ACK of the
  // next AP read, or from RDBUFF. The host sees one result per read as if they were not.
  bool posted = false;
  unsigned posted_index = 0;
  std::size_t posted_rollback = 0;  // response size before the posted read's output
  bool check_write = false;         // the last transfer was an AP write
  std::size_t write_rollback = 0;

  auto collect_posted = [&]() {
    if (!posted) return true;
    posted = false;
    SwdResult r = swd_.packet(false, true, kDpRdbuff);
    response = status(r);
    if (!good(r)) {
      out.truncate(posted_rollback);
      done = posted_index;
      return false;
    }
    out.u32(r.data);
    done = posted_index + 1;
    return true;
  };

  for (unsigned i = 0; i < count; ++i) {
    std::uint8_t req = in.u8();
    bool ap = req & kReqAp;
    bool read = req & kReqRead;
    unsigned addr = req & kReqAddr;
    bool match = read && (req & kReqMatchValue);
    bool ts = req & kReqTimestamp;
    std::uint32_t data = (!read || match) ? in.u32() : 0;
    if (in.short_read()) break;
    std::size_t need = (posted ? 4 : 0) + (ts ? 4 : 0) + (read && !match ? 4 : 0);
    if (out.room() < need) break;  // the host asked for more than one response holds

    if (ap && read && !match) {
      SwdResult r = swd_.packet(true, true, addr);
      response = status(r);
      if (!good(r)) {
        if (posted) {
          out.truncate(posted_rollback);
          done = posted_index;
        }
        posted = false;
        failed = true;
        break;
      }
      if (posted) {
        out.u32(r.data);
        done = posted_index + 1;
      }
      posted = true;
      posted_index = i;
      posted_rollback = out.size();
      if (ts) out.u32(timestamp());
      check_write = false;
      continue;
    }

    if (!collect_posted()) {
      failed = true;
      break;
    }
    if (!read && (req & kReqMatchMask)) {
      match_mask_ = data;  // no SWD traffic
      done = i + 1;
      continue;
    }
    if (!read) {
      write_rollback = out.size();
      SwdResult r = swd_.packet(ap, false, addr, data);
      response = status(r);
      if (!good(r)) {
        failed = true;
        break;
      }
      if (ts) out.u32(timestamp());
      done = i + 1;
      check_write = ap;
      continue;
    }

    check_write = false;
    if (!match) {
      SwdResult r = swd_.packet(false, true, addr);
      response = status(r);
      if (!good(r)) {
        failed = true;
        break;
      }
      if (ts) out.u32(timestamp());
      out.u32(r.data);
      done = i + 1;
      continue;
    }
    // Value match: read until (value & mask) == match value, match_retry more times at
    // most. An AP read is followed by an RDBUFF read so every attempt is exactly one AP
    // access.
    bool matched = false;
    for (unsigned attempt = 0;; ++attempt) {
      SwdResult r = swd_.packet(ap, true, addr);
      if (ap && good(r)) r = swd_.packet(false, true, kDpRdbuff);
      response = status(r);
      if (!good(r)) {
        failed = true;
        break;
      }
      if ((r.data & match_mask_) == data) {
        matched = true;
        break;
      }
      if (attempt >= match_retry_) break;
    }
    if (failed) break;
    if (!matched) {
      response |= kRespMismatch;
      failed = true;
      break;
    }
    if (ts) out.u32(timestamp());
    done = i + 1;
  }

  if (!failed) {
    if (posted) {
      collect_posted();
    } else if (check_write) {
      // Make sure the last posted write completed: RDBUFF is stalled (WAIT) until it
      // has, and faults if it raised a sticky error.
      SwdResult r = swd_.packet(false, true, kDpRdbuff);
      response = status(r);
      if (!good(r)) {
        out.truncate(write_rollback);
        --done;
      }
    }
  }
  out.put_u8_at(count_at, static_cast<std::uint8_t>(done));
  out.put_u8_at(response_at, response);
}

void Engine::transfer_block(Reader& in, Writer& out) {
  in.u8();  // DAP index: JTAG only
  std::uint16_t count = in.u16();
  std::uint8_t req = in.u8();
  out.u8(kTransferBlock);
  std::size_t count_at = out.size();
  out.u16(0);
  std::size_t response_at = out.size();
  out.u8(0);
  if (in.short_read()) return;

  bool ap = req & kReqAp;
  bool read = req & kReqRead;
  unsigned addr = req & kReqAddr;
  unsigned done = 0;
  std::uint8_t response = 0;

  if (read) {
    count = static_cast<std::uint16_t>(std::min<std::size_t>(count, out.room() / 4));
    if (ap && count > 0) {
      // Posted reads: the first AP read only starts the pipeline, RDBUFF ends it.
      SwdResult r = swd_.packet(true, true, addr);
      response = status(r);
      bool ok = good(r);
      for (unsigned k = 1; ok && k <= count; ++k) {
        r = k < count ? swd_.packet(true, true, addr) : swd_.packet(false, true, kDpRdbuff);
        response = status(r);
        ok = good(r);
        if (ok) {
          out.u32(r.data);
          done = k;
        }
      }
    } else {
      for (unsigned k = 0; k < count; ++k) {
        SwdResult r = swd_.packet(false, true, addr);
        response = status(r);
        if (!good(r)) break;
        out.u32(r.data);
        done = k + 1;
      }
    }
  } else {
    bool ok = true;
    for (unsigned k = 0; k < count; ++k) {
      std::uint32_t data = in.u32();
      if (in.short_read()) break;
      SwdResult r = swd_.packet(ap, false, addr, data);
      response = status(r);
      ok = good(r);
      if (!ok) break;
      done = k + 1;
    }
    if (ok && ap && done > 0) {
      SwdResult r = swd_.packet(false, true, kDpRdbuff);  // wait for the last write
      response = status(r);
      if (!good(r)) --done;
    }
  }
  out.put_u16_at(count_at, static_cast<std::uint16_t>(done));
  out.put_u8_at(response_at, response);
}

void Engine::write_abort(Reader& in, Writer& out) {
  in.u8();  // DAP index: JTAG only
  std::uint32_t value = in.u32();
  out.u8(kWriteAbort);
  if (in.short_read()) {
    out.u8(kDapError);
    return;
  }
  SwdResult r = swd_.packet(false, false, kDpAbort, value);
  out.u8(r.ack == SwdAck::ok ? kDapOk : kDapError);
}

}  // namespace probefarm::sim::cmsis_dap
