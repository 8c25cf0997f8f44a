// CMSIS-DAP packet building and parsing (cmsis_dap_packets.hpp). Arm CMSIS-DAP
// specification v2.1, "DAP_Transfer" and "DAP_TransferBlock".
#include "probe/cmsis_dap_packets.hpp"

#include <algorithm>

#include "probe/bytes.hpp"
#include "probe/error.hpp"

namespace probefarm::probe::cmsis_dap {

std::size_t block_capacity(std::size_t packet_size, bool read) {
  std::size_t header = read ? kBlockResponseHeader : kBlockRequestHeader;
  std::size_t words = packet_size > header ? (packet_size - header) / 4 : 0;
  return std::min(words, kMaxBlockCount);
}

std::vector<Packet> pack(std::span<const Access> accesses, std::size_t packet_size) {
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
    if (!a.read) append_le32(p.request, a.value);
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
      append_le16(p.request, static_cast<std::uint16_t>(n));
      p.request.push_back(a.request());
      if (!a.read)
        for (std::size_t k = 0; k < n; ++k)
          append_le32(p.request, accesses[i + done + k].value);
      packets.push_back(std::move(p));
      done += n;
    }
    i += run;
  }
  return packets;
}

DapAck ack_from_response(std::uint8_t response) {
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

Reply parse_reply(const Packet& packet, std::span<const std::uint8_t> response,
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
    if (a.out) *a.out = load_le32(response, at);
    at += 4;
  }
  return r;
}

}  // namespace probefarm::probe::cmsis_dap
