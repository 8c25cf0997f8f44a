#pragma once
// CMSIS-DAP packets without any I/O: command IDs, the packing of DP/AP accesses into
// DAP_Transfer and DAP_TransferBlock requests, and the parsing of their responses. The
// driver (cmsis_dap.cpp) sends what this builds; the unit tests check it byte by byte.
//
// References: Arm CMSIS-DAP specification v2.1 (arm-software.github.io/CMSIS_5/DAP/html),
// sections "DAP_Info", "DAP_Transfer", "DAP_TransferBlock"; ARM IHI 0031 (ADIv5.2).
//
// Header-only: these are small pure functions, and probe/CMakeLists.txt names its sources.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "probe/dap_probe.hpp"
#include "probe/error.hpp"

namespace probefarm::probe::cmsis_dap {

// Command IDs, CMSIS-DAP "Commands".
enum Command : std::uint8_t {
  kInfo = 0x00,
  kHostStatus = 0x01,
  kConnect = 0x02,
  kDisconnect = 0x03,
  kTransferConfigure = 0x04,
  kTransfer = 0x05,
  kTransferBlock = 0x06,
  kSwjPins = 0x10,
  kSwjClock = 0x11,
  kSwjSequence = 0x12,
  kSwdConfigure = 0x13,
};

// General command status byte ("DAP_OK" / "DAP_ERROR").
constexpr std::uint8_t kDapOk = 0x00;

// DAP_Info IDs.
constexpr std::uint8_t kInfoProtocolVersion = 0x04;
constexpr std::uint8_t kInfoFirmwareVersion = 0x09;  // CMSIS-DAP 2.1: product firmware
constexpr std::uint8_t kInfoCapabilities = 0xF0;
constexpr std::uint8_t kInfoPacketCount = 0xFE;
constexpr std::uint8_t kInfoPacketSize = 0xFF;
constexpr std::uint8_t kCapabilitySwd = 0x01;  // capabilities byte 0, bit 0

// DAP_Transfer request byte: bit 0 APnDP, bit 1 RnW, bits 3:2 A[3:2].
constexpr std::uint8_t kReqAp = 0x01;
constexpr std::uint8_t kReqRead = 0x02;
// Transfer response byte: bits 2:0 the ACK (1 OK, 2 WAIT, 4 FAULT, 7 no ACK), bit 3 SWD
// protocol error (read parity), bit 4 value mismatch (match reads, which we never send).
constexpr std::uint8_t kRespAckMask = 0x07;
constexpr std::uint8_t kRespProtocolError = 0x08;

// Header sizes: DAP_Transfer request [cmd, index, count], response [cmd, count, resp];
// DAP_TransferBlock request [cmd, index, count16, req], response [cmd, count16, resp].
constexpr std::size_t kTransferHeader = 3;
constexpr std::size_t kBlockRequestHeader = 5;
constexpr std::size_t kBlockResponseHeader = 4;
constexpr std::size_t kMaxTransferCount = 255;  // DAP_Transfer count is one byte
constexpr std::size_t kMaxBlockCount = 0xFFFF;  // DAP_TransferBlock count is 16 bits

// One SWD access as the probe runs it. The driver expands its queue into these, with the
// DP SELECT writes it needs inserted (those have counted = false: the caller did not ask
// for them, so they do not count in DapFlushResult::completed).
struct Access {
  bool ap = false;
  bool read = false;
  std::uint8_t addr = 0;         // A[3:2] as 0x0, 0x4, 0x8, 0xC
  std::uint32_t value = 0;       // write data
  std::uint32_t* out = nullptr;  // read destination (may be null)
  bool counted = true;
  // Which AP register this is (AP number << 8 | full register address): consecutive AP
  // accesses with the same key and direction may go into one DAP_TransferBlock. DP
  // accesses are never blocked.
  std::uint16_t reg_key = 0;

  std::uint8_t request() const {
    return static_cast<std::uint8_t>((ap ? kReqAp : 0) | (read ? kReqRead : 0) | (addr & 0x0C));
  }
};

// One command packet and the accesses [first, first + count) it carries.
struct Packet {
  Command command = kTransfer;
  std::vector<std::uint8_t> request;
  std::size_t first = 0;
  std::size_t count = 0;
  std::size_t reads = 0;  // words of read data the full response carries
};

inline void put_u16(std::vector<std::uint8_t>& v, std::uint16_t x) {
  v.push_back(static_cast<std::uint8_t>(x));
  v.push_back(static_cast<std::uint8_t>(x >> 8));
}

inline void put_u32(std::vector<std::uint8_t>& v, std::uint32_t x) {
  put_u16(v, static_cast<std::uint16_t>(x));
  put_u16(v, static_cast<std::uint16_t>(x >> 16));
}

inline std::uint32_t get_u32(std::span<const std::uint8_t> b, std::size_t at) {
  return static_cast<std::uint32_t>(b[at]) | static_cast<std::uint32_t>(b[at + 1]) << 8 |
         static_cast<std::uint32_t>(b[at + 2]) << 16 | static_cast<std::uint32_t>(b[at + 3]) << 24;
}

// Words one DAP_TransferBlock can carry in a packet of `packet_size`: the request holds the
// write data, the response the read data.
inline std::size_t block_capacity(std::size_t packet_size, bool read) {
  std::size_t header = read ? kBlockResponseHeader : kBlockRequestHeader;
  std::size_t words = packet_size > header ? (packet_size - header) / 4 : 0;
  return std::min(words, kMaxBlockCount);
}

// Packs `accesses` into as few packets as the packet size allows, in order:
// - a run of accesses to one AP register (same reg_key and direction) that does not fit
//   the DAP_Transfer being filled goes into DAP_TransferBlock packets, split at the packet
//   size and at the 16-bit count;
// - everything else fills DAP_Transfer packets up to 255 transfers, with the request
//   (1 byte per transfer + 4 per write) and the response (4 per read) within the size.
// Posted AP reads need no extra access: the probe collects the data itself (DAP_Transfer:
// "the read data of AP reads is returned ... without the need of an RDBUFF read").
inline std::vector<Packet> pack(std::span<const Access> accesses, std::size_t packet_size) {
  std::vector<Packet> packets;
  // The DAP_Transfer being filled is always packets.back() while `open`.
  bool open = false;
  std::size_t open_request = 0, open_response = 0;

  // Whether `writes` more writes and `reads` more reads fit a DAP_Transfer that already
  // holds `count` transfers, `request` request bytes and `response` response bytes.
  auto fits = [&](std::size_t count, std::size_t request, std::size_t response, std::size_t writes,
                  std::size_t reads) {
    std::size_t n = writes + reads;
    return count + n <= kMaxTransferCount && request + n + 4 * writes <= packet_size &&
           response + 4 * reads <= packet_size;
  };
  auto fits_open = [&](std::size_t writes, std::size_t reads) {
    return open && fits(packets.back().count, open_request, open_response, writes, reads);
  };
  auto fits_fresh = [&](std::size_t writes, std::size_t reads) {
    return fits(0, kTransferHeader, kTransferHeader, writes, reads);
  };
  auto add_single = [&](std::size_t i) {
    const Access& a = accesses[i];
    if (!fits_open(a.read ? 0 : 1, a.read ? 1 : 0)) {
      packets.push_back({kTransfer, {kTransfer, 0, 0}, i, 0, 0});
      open = true;
      open_request = kTransferHeader;
      open_response = kTransferHeader;
    }
    Packet& p = packets.back();
    p.request.push_back(a.request());
    if (!a.read) put_u32(p.request, a.value);
    p.count++;
    p.request[2] = static_cast<std::uint8_t>(p.count);
    open_request += a.read ? 1 : 5;
    if (a.read) {
      p.reads++;
      open_response += 4;
    }
  };

  std::size_t i = 0;
  while (i < accesses.size()) {
    const Access& a = accesses[i];
    std::size_t run = 1;
    if (a.ap) {
      while (i + run < accesses.size() && accesses[i + run].ap &&
             accesses[i + run].reg_key == a.reg_key && accesses[i + run].read == a.read)
        ++run;
    }
    const std::size_t reads = a.read ? run : 0;
    const std::size_t writes = run - reads;
    // A run that fits the open DAP_Transfer, or (with none open) a fresh one, stays in
    // DAP_Transfer: accesses that follow can then share its packet.
    if (run == 1 || fits_open(writes, reads) || (!open && fits_fresh(writes, reads))) {
      for (std::size_t k = 0; k < run; ++k)
        add_single(i + k);
      i += run;
      continue;
    }
    open = false;
    const std::size_t cap = block_capacity(packet_size, a.read);
    if (cap == 0) throw Error(ErrorCategory::internal, "CMSIS-DAP packet size too small");
    for (std::size_t done = 0; done < run;) {
      std::size_t n = std::min(cap, run - done);
      Packet p{kTransferBlock, {kTransferBlock, 0}, i + done, n, a.read ? n : 0};
      put_u16(p.request, static_cast<std::uint16_t>(n));
      p.request.push_back(a.request());
      if (!a.read)
        for (std::size_t k = 0; k < n; ++k)
          put_u32(p.request, accesses[i + done + k].value);
      packets.push_back(std::move(p));
      done += n;
    }
    i += run;
  }
  return packets;
}

// What the transfer response byte says, ADIv5.2 B4.2.3 ACK encodings as CMSIS-DAP reports
// them (DAP_Transfer "Transfer Response").
inline DapAck ack_from_response(std::uint8_t response) {
  if (response & kRespProtocolError) return DapAck::protocol_error;
  switch (response & kRespAckMask) {
    case 1:
      return DapAck::ok;
    case 2:
      return DapAck::wait;
    case 4:
      return DapAck::fault;
    case 7:
      return DapAck::no_response;
    default:
      return DapAck::protocol_error;
  }
}

struct Reply {
  std::size_t done = 0;  // accesses of the packet that completed
  DapAck ack = DapAck::ok;
};

// Parses the response to `packet`, stores the read data of the completed reads, and says
// how far it got. Throws Error(probe_io) naming `probe` for a response that does not
// belong to the request: wrong command echo, too short, more transfers than were asked,
// or "OK" with transfers missing.
inline Reply parse_reply(const Packet& packet, std::span<const std::uint8_t> response,
                         std::span<const Access> accesses, const std::string& probe) {
  auto malformed = [&](const std::string& what) {
    return Error(ErrorCategory::probe_io,
                 "probe " + probe + " sent a malformed " +
                     (packet.command == kTransfer ? "DAP_Transfer" : "DAP_TransferBlock") +
                     " response: " + what,
                 "reconnect the probe; if it persists, update the probe firmware");
  };
  const bool block = packet.command == kTransferBlock;
  const std::size_t header = block ? kBlockResponseHeader : kTransferHeader;
  if (response.size() < header) throw malformed(std::to_string(response.size()) + " bytes");
  if (response[0] != packet.command) throw malformed("command byte " + std::to_string(response[0]));
  Reply r;
  r.done = block ? (response[1] | std::size_t{response[2]} << 8) : response[1];
  const std::uint8_t status = response[header - 1];
  if (r.done > packet.count)
    throw malformed(std::to_string(r.done) + " transfers done of " + std::to_string(packet.count));
  r.ack = ack_from_response(status);
  if (r.ack == DapAck::ok && r.done < packet.count)
    throw malformed("OK after " + std::to_string(r.done) + " of " + std::to_string(packet.count) +
                    " transfers");

  std::size_t at = header;
  for (std::size_t k = 0; k < r.done; ++k) {
    const Access& a = accesses[packet.first + k];
    if (!a.read) continue;
    if (at + 4 > response.size()) throw malformed("read data missing");
    if (a.out) *a.out = get_u32(response, at);
    at += 4;
  }
  return r;
}

}  // namespace probefarm::probe::cmsis_dap
