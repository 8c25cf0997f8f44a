#include "cmsis_dap.hpp"

#include <algorithm>

#include "cmsis_dap_engine.hpp"

namespace probefarm::sim {
namespace cmsis_dap {

std::uint8_t Reader::u8() {
  if (!has(1)) {
    short_ = true;
    return 0;
  }
  return data_[pos_++];
}

std::uint16_t Reader::u16() {
  std::uint16_t lo = u8();
  std::uint16_t hi = u8();
  return static_cast<std::uint16_t>(lo | hi << 8);
}

std::uint32_t Reader::u32() {
  std::uint32_t lo = u16();
  std::uint32_t hi = u16();
  return lo | hi << 16;
}

std::span<const std::uint8_t> Reader::bytes(std::size_t n) {
  if (!has(n)) {
    short_ = true;
    pos_ = data_.size();
    return {};
  }
  auto s = data_.subspan(pos_, n);
  pos_ += n;
  return s;
}

void Writer::u16(std::uint16_t v) {
  u8(static_cast<std::uint8_t>(v));
  u8(static_cast<std::uint8_t>(v >> 8));
}

void Writer::u32(std::uint32_t v) {
  u16(static_cast<std::uint16_t>(v));
  u16(static_cast<std::uint16_t>(v >> 16));
}

void Writer::put_u16_at(std::size_t at, std::uint16_t v) {
  buf_[at] = static_cast<std::uint8_t>(v);
  buf_[at + 1] = static_cast<std::uint8_t>(v >> 8);
}

Engine::Engine(TargetPort& target, CmsisDapConfig config)
    : target_(target), config_(std::move(config)), swd_(target) {}

std::optional<std::vector<std::uint8_t>> Engine::process(std::span<const std::uint8_t> request) {
  if (!request.empty() && request[0] == kQueueCommands) {
    // DAP_QueueCommands: packets are held, without a response, until a packet without
    // this command arrives; then all of them execute in order.
    queued_.emplace_back(request.begin(), request.end());
    return std::nullopt;
  }
  std::vector<std::uint8_t> response;
  // Each queued packet answers like DAP_ExecuteCommands (0x7F, NumCmd, responses), each
  // within one packet size; the responses are returned back to back, followed by the
  // response of the packet that ended the queue.
  for (const auto& packet : queued_) {
    std::vector<std::uint8_t> part;
    Writer out(part, config_.packet_size);
    Reader in(std::span<const std::uint8_t>(packet).subspan(1));
    out.u8(kExecuteCommands);
    run_packet_list(in, out);
    response.insert(response.end(), part.begin(), part.end());
  }
  queued_.clear();

  std::vector<std::uint8_t> last;
  Writer out(last, config_.packet_size);
  Reader in(request);
  if (request.empty()) {
    out.u8(kDapInvalid);
  } else if (request[0] == kTransferAbort) {
    // Transfers run to completion before the next packet is read, so there is never a
    // transfer to abort; the command has no response (CMSIS-DAP "DAP_TransferAbort").
    if (response.empty()) return std::nullopt;
  } else if (request[0] == kExecuteCommands) {
    in.u8();
    out.u8(kExecuteCommands);
    run_packet_list(in, out);
  } else {
    run(in, out);
  }
  response.insert(response.end(), last.begin(), last.end());
  return response;
}

// Body of DAP_ExecuteCommands / a queued packet: NumCmd, then the commands.
void Engine::run_packet_list(Reader& in, Writer& out) {
  std::uint8_t num = in.u8();
  std::size_t count_at = out.size();
  out.u8(0);
  std::uint8_t done = 0;
  for (unsigned i = 0; i < num && !in.short_read(); ++i) {
    if (!run(in, out)) break;
    ++done;
  }
  out.put_u8_at(count_at, done);
}

bool Engine::run(Reader& in, Writer& out) {
  std::uint8_t cmd = in.u8();
  switch (cmd) {
    case kInfo:
      info(in, out);
      break;
    case kHostStatus: {
      std::uint8_t type = in.u8();
      in.u8();
      out.u8(cmd);
      // Type 0 = connect LED, 1 = running LED; there are no LEDs to drive.
      out.u8(!in.short_read() && type <= 1 ? kDapOk : kDapError);
      break;
    }
    case kConnect: {
      std::uint8_t port = in.u8();
      out.u8(cmd);
      // Port 0 = default (SWD here), 1 = SWD, 2 = JTAG (not implemented): 0 = failed.
      swd_.set_connected(!in.short_read() && (port == 0 || port == 1));
      out.u8(swd_.connected() ? 1 : 0);
      break;
    }
    case kDisconnect:
      swd_.set_connected(false);
      out.u8(cmd);
      out.u8(kDapOk);
      break;
    case kTransferConfigure: {
      std::uint8_t idle = in.u8();
      std::uint16_t wait_retry = in.u16();
      std::uint16_t match_retry = in.u16();
      out.u8(cmd);
      if (in.short_read()) {
        out.u8(kDapError);
        break;
      }
      swd_.set_idle_cycles(idle);
      swd_.set_wait_retry(wait_retry);
      match_retry_ = match_retry;
      out.u8(kDapOk);
      break;
    }
    case kTransfer:
      transfer(in, out);
      break;
    case kTransferBlock:
      transfer_block(in, out);
      break;
    case kTransferAbort:
      break;  // no response, see process()
    case kWriteAbort:
      write_abort(in, out);
      break;
    case kDelay: {
      std::uint16_t us = in.u16();
      out.u8(cmd);
      if (in.short_read()) {
        out.u8(kDapError);
        break;
      }
      target_.advance(us * kMicrosecond);
      out.u8(kDapOk);
      break;
    }
    case kResetTarget:
      out.u8(cmd);
      out.u8(kDapOk);
      out.u8(0);  // Execute = 0: no device-specific reset sequence is implemented
      break;
    case kSwjPins:
      swj_pins(in, out);
      break;
    case kSwjClock: {
      std::uint32_t hz = in.u32();
      out.u8(cmd);
      if (in.short_read() || hz == 0) {
        out.u8(kDapError);
        break;
      }
      swd_.set_clock_hz(hz);
      out.u8(kDapOk);
      break;
    }
    case kSwjSequence:
      swj_sequence(in, out);
      break;
    case kSwdConfigure: {
      std::uint8_t config = in.u8();
      out.u8(cmd);
      if (in.short_read()) {
        out.u8(kDapError);
        break;
      }
      swd_.set_turnaround((config & 3) + 1u);  // bits 1:0: turnaround clocks - 1
      swd_.set_data_phase((config & 4) != 0);  // bit 2: data phase on WAIT/FAULT
      out.u8(kDapOk);
      break;
    }
    case kSwdSequence:
      swd_sequence(in, out);
      break;
    case kJtagSequence:
    case kJtagConfigure:
    case kJtagIdcode:
      return jtag_command(cmd, in, out);
    default:
      // Unknown commands (and nested Execute/Queue) answer DAP_Invalid; their length is
      // unknown, so a command list cannot go on after them.
      out.u8(kDapInvalid);
      return false;
  }
  return !in.short_read();
}

void Engine::info(Reader& in, Writer& out) {
  std::uint8_t id = in.u8();
  out.u8(kInfo);
  auto put_string = [&](const std::string& s) {
    // Strings are sent NUL-terminated and the length byte includes the NUL; an absent
    // string has length 0.
    std::size_t max_len = std::min<std::size_t>(out.room() > 0 ? out.room() - 1 : 0, 255);
    std::size_t len = std::min(s.size() + 1, max_len);
    if (s.empty() || len == 0) {
      out.u8(0);
      return;
    }
    out.u8(static_cast<std::uint8_t>(len));
    for (std::size_t i = 0; i + 1 < len; ++i)
      out.u8(static_cast<std::uint8_t>(s[i]));
    out.u8(0);
  };
  switch (id) {
    case 0x01:
      put_string(config_.vendor);
      break;
    case 0x02:
      put_string(config_.product);
      break;
    case 0x03:
      put_string(config_.serial);
      break;
    case 0x04:
      put_string(config_.protocol_version);
      break;
    case 0x05:
      put_string(config_.target_vendor);
      break;
    case 0x06:
      put_string(config_.target_name);
      break;
    case 0x07:
      put_string(config_.board_vendor);
      break;
    case 0x08:
      put_string(config_.board_name);
      break;
    case 0x09:
      put_string(config_.firmware_version);
      break;
    case 0xF0:
      // Capabilities byte 0: bit 0 SWD, bit 1 JTAG, bit 2/3 SWO UART/Manchester, bit 4
      // atomic commands, bit 5 test domain timer, bit 6 SWO streaming, bit 7 UART port.
      // Byte 1 (USB COM port) would be all zero, so it is left out.
      out.u8(1);
      out.u8(0x01 | 0x10 | 0x20);
      break;
    case 0xF1:
      out.u8(4);
      out.u32(kTimerHz);
      break;
    case 0xFE:
      out.u8(1);
      out.u8(config_.packet_count);
      break;
    case 0xFF:
      out.u8(2);
      out.u16(config_.packet_size);
      break;
    default:
      // 0xFB/0xFC (UART buffers) and 0xFD (SWO buffer): not supported; unknown IDs.
      out.u8(0);
      break;
  }
}

void Engine::swj_pins(Reader& in, Writer& out) {
  std::uint8_t value = in.u8();
  std::uint8_t select = in.u8();
  std::uint32_t wait_us = in.u32();
  out.u8(kSwjPins);
  // Pin bits: 0 SWCLK/TCK, 1 SWDIO/TMS, 2 TDI, 3 TDO, 5 nTRST, 7 nRESET.
  if (!in.short_read()) {
    if (select & 0x01) swclk_ = value & 0x01;
    if (select & 0x02) swdio_ = value & 0x02;
    if (select & 0x04) tdi_ = value & 0x04;
    if (select & 0x20) ntrst_ = value & 0x20;
    if (select & 0x80) target_.set_nrst((value & 0x80) == 0);  // open drain: 0 = pull low
    // The spec caps the wait at 3 s; it ends as soon as nRESET reads what was driven
    // (the board may hold it low itself).
    if ((select & 0x80) && wait_us > 0) {
      std::uint32_t waited = 0;
      bool want_high = value & 0x80;
      wait_us = std::min<std::uint32_t>(wait_us, 3'000'000);
      while (waited < wait_us && target_.nrst_asserted() == want_high) {
        std::uint32_t step = std::min<std::uint32_t>(wait_us - waited, 100);
        target_.advance(step * kMicrosecond);
        waited += step;
      }
    }
  }
  std::uint8_t pins = 0;
  if (swclk_) pins |= 0x01;
  if (swdio_) pins |= 0x02;
  if (tdi_) pins |= 0x04;
  pins |= 0x08;  // TDO: not connected on an SWD board, the pull-up reads high
  if (ntrst_) pins |= 0x20;
  if (!target_.nrst_asserted()) pins |= 0x80;
  out.u8(pins);
}

void Engine::swj_sequence(Reader& in, Writer& out) {
  unsigned bits = in.u8();
  if (bits == 0) bits = 256;
  auto data = in.bytes((bits + 7) / 8);
  out.u8(kSwjSequence);
  if (in.short_read()) {
    out.u8(kDapError);
    return;
  }
  swd_.sequence(data.data(), bits);
  swdio_ = (data[(bits - 1) / 8] >> ((bits - 1) % 8)) & 1;
  out.u8(kDapOk);
}

void Engine::swd_sequence(Reader& in, Writer& out) {
  std::uint8_t count = in.u8();
  out.u8(kSwdSequence);
  std::size_t status_at = out.size();
  out.u8(kDapOk);
  for (unsigned i = 0; i < count; ++i) {
    std::uint8_t info = in.u8();
    unsigned bits = info & 0x3F;
    if (bits == 0) bits = 64;
    unsigned nbytes = (bits + 7) / 8;
    if (in.short_read()) break;
    if (info & 0x80) {
      // Input: nobody drives SWDIO during a host-read sequence here, the pull-up reads 1s.
      if (out.room() < nbytes) {
        out.put_u8_at(status_at, kDapError);
        return;
      }
      for (unsigned b = 0; b < nbytes; ++b) {
        unsigned left = bits - b * 8;
        out.u8(left >= 8 ? 0xFF : static_cast<std::uint8_t>((1u << left) - 1));
      }
      swd_.wire_bits(bits);
    } else {
      auto data = in.bytes(nbytes);
      if (in.short_read()) break;
      swd_.sequence(data.data(), bits);  // takes its wire time too
    }
  }
  if (in.short_read()) out.put_u8_at(status_at, kDapError);
}

bool Engine::jtag_command(std::uint8_t cmd, Reader& in, Writer& out) {
  // No JTAG port (DAP_Info capabilities): consume the request so that a command list
  // can continue, and answer DAP_Error.
  if (cmd == kJtagSequence) {
    std::uint8_t count = in.u8();
    for (unsigned i = 0; i < count && !in.short_read(); ++i) {
      unsigned tck = in.u8() & 0x3F;
      if (tck == 0) tck = 64;
      in.bytes((tck + 7) / 8);
    }
  } else if (cmd == kJtagConfigure) {
    in.bytes(in.u8());
  } else {
    in.u8();  // JTAG index
  }
  out.u8(cmd);
  out.u8(kDapError);
  return !in.short_read();
}

}  // namespace cmsis_dap

std::unique_ptr<CmsisDapEngine> make_cmsis_dap_engine(TargetPort& target, CmsisDapConfig config) {
  return std::make_unique<cmsis_dap::Engine>(target, std::move(config));
}

}  // namespace probefarm::sim
