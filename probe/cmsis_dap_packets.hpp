#pragma once
// CMSIS-DAP packets without any I/O: command IDs, the packing of DP/AP accesses into
// DAP_Transfer and DAP_TransferBlock requests, and the parsing of their responses. The
// driver (cmsis_dap.cpp) sends what this builds; the unit tests check it byte by byte.
//
// References: Arm CMSIS-DAP specification v2.1 (arm-software.github.io/CMSIS_5/DAP/html),
// sections "DAP_Info", "DAP_Transfer", "DAP_TransferBlock"; ARM IHI 0031 (ADIv5.2).
//
// The functions are defined in cmsis_dap_packets.cpp.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "probe/dap_probe.hpp"

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
  kDelay = 0x09,
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

// Words one DAP_TransferBlock can carry in a packet of `packet_size`: the request holds the
// write data, the response the read data.
std::size_t block_capacity(std::size_t packet_size, bool read);

// Packs `accesses` into as few packets as the packet size allows, in order:
// - a run of accesses to one AP register (same reg_key and direction) that does not fit
//   the DAP_Transfer being filled goes into DAP_TransferBlock packets, split at the packet
//   size and at the 16-bit count;
// - everything else fills DAP_Transfer packets up to 255 transfers, with the request
//   (1 byte per transfer + 4 per write) and the response (4 per read) within the size.
// Posted AP reads need no extra access: the probe collects the data itself (DAP_Transfer:
// "the read data of AP reads is returned ... without the need of an RDBUFF read").
// Throws Error(internal) when `packet_size` cannot hold one block transfer.
std::vector<Packet> pack(std::span<const Access> accesses, std::size_t packet_size);

// What the transfer response byte says, ADIv5.2 B4.2.3 ACK encodings as CMSIS-DAP reports
// them (DAP_Transfer "Transfer Response").
DapAck ack_from_response(std::uint8_t response);

struct Reply {
  std::size_t done = 0;  // accesses of the packet that completed
  DapAck ack = DapAck::ok;
};

// Parses the response to `packet`, stores the read data of the completed reads, and says
// how far it got. Throws Error(probe_io) naming `probe` for a response that does not
// belong to the request: wrong command echo, too short, more transfers than were asked,
// or "OK" with transfers missing.
Reply parse_reply(const Packet& packet, std::span<const std::uint8_t> response,
                  std::span<const Access> accesses, const std::string& probe);

}  // namespace probefarm::probe::cmsis_dap
