#pragma once
// The ST-Link command set as pure data: 16-byte command blocks (CDBs) the host sends on the
// bulk OUT endpoint, the layouts of the answers on the bulk IN endpoint, status codes, the
// firmware versions that brought each feature, and the SWD clock tables. No I/O here, so
// that every byte the driver (stlink.cpp) puts on the wire can be unit-tested.
//
// ST does not publish this protocol. Command codes, layouts and status codes are as the
// firmware behaves and as every host tool speaks it (cross-checked against pyOCD's
// probe/stlink and probe-rs' probe/stlink, read for understanding only); product facts
// come from UM1075 (ST-LINK/V2 user manual), UM2448 (STLINK-V3SET user manual) and RN0093
// (ST-LINK firmware release notes). Multi-byte fields are little-endian unless noted.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "probe/dap_probe.hpp"

namespace probefarm::probe::stlink {

constexpr std::size_t kCdbSize = 16;
using Cdb = std::array<std::uint8_t, kCdbSize>;

// Byte 0 of a CDB.
constexpr std::uint8_t kGetVersion = 0xF1;
constexpr std::uint8_t kDebugCommand = 0xF2;
constexpr std::uint8_t kDfuCommand = 0xF3;
constexpr std::uint8_t kSwimCommand = 0xF4;
constexpr std::uint8_t kGetCurrentMode = 0xF5;
constexpr std::uint8_t kGetTargetVoltage = 0xF7;
constexpr std::uint8_t kGetVersionEx = 0xFB;  // STLINK-V3: GET_VERSION leaves J and S zero

// Byte 1 of kDfuCommand / kSwimCommand: leave that mode.
constexpr std::uint8_t kDfuExit = 0x07;
constexpr std::uint8_t kSwimExit = 0x01;

// Byte 1 of kDebugCommand.
constexpr std::uint8_t kReadMem32 = 0x07;
constexpr std::uint8_t kWriteMem32 = 0x08;
constexpr std::uint8_t kReadMem8 = 0x0C;
constexpr std::uint8_t kWriteMem8 = 0x0D;
constexpr std::uint8_t kExit = 0x21;
constexpr std::uint8_t kEnter = 0x30;
constexpr std::uint8_t kDriveNrst = 0x3C;
constexpr std::uint8_t kGetLastRwStatus2 = 0x3E;
constexpr std::uint8_t kSwdSetFreq = 0x43;  // ST-LINK/V2 and V2-1
constexpr std::uint8_t kReadDapReg = 0x45;
constexpr std::uint8_t kWriteDapReg = 0x46;
constexpr std::uint8_t kReadMem16 = 0x47;
constexpr std::uint8_t kWriteMem16 = 0x48;
constexpr std::uint8_t kInitAp = 0x4B;
constexpr std::uint8_t kSetComFreq = 0x61;  // STLINK-V3
constexpr std::uint8_t kGetComFreq = 0x62;  // STLINK-V3

// Byte 2 of kEnter: SWD, without resetting the core.
constexpr std::uint8_t kEnterSwd = 0xA3;
// Byte 2 of kDriveNrst: the level nRST is driven to.
constexpr std::uint8_t kNrstLow = 0x00;
constexpr std::uint8_t kNrstHigh = 0x01;

// GET_CURRENT_MODE answers.
constexpr std::uint8_t kModeDfu = 0x00;
constexpr std::uint8_t kModeMass = 0x01;
constexpr std::uint8_t kModeDebug = 0x02;
constexpr std::uint8_t kModeSwim = 0x03;

// READ_DAP_REG / WRITE_DAP_REG port number that addresses the DP instead of an AP.
constexpr std::uint16_t kDpPort = 0xFFFF;

// Status codes: first byte of most answers and of GETLASTRWSTATUS2.
enum Status : std::uint8_t {
  kOk = 0x80,
  kUnknownError = 0x01,
  kCmdError = 0x08,
  kGetIdcodeError = 0x09,
  kAlignmentError = 0x0A,
  kDbgPowerError = 0x0B,
  kApWait = 0x10,
  kApFault = 0x11,
  kApError = 0x12,
  kApParityError = 0x13,
  kDpWait = 0x14,
  kDpFault = 0x15,
  kDpError = 0x16,
  kDpParityError = 0x17,
  kApWdataError = 0x18,
  kApStickyError = 0x19,
  kApStickyOrunError = 0x1A,
  kBadAp = 0x1D,
  kFreqNotSupported = 0x41,
  kUnknownCommand = 0x42,
};

inline std::string_view status_name(std::uint8_t status) {
  switch (status) {
    case kOk:
      return "OK";
    case kUnknownError:
      return "UNKNOWN_ERROR";
    case kCmdError:
      return "CMD_ERROR";
    case kGetIdcodeError:
      return "GET_IDCODE_ERROR";
    case kAlignmentError:
      return "ALIGNMENT_ERROR";
    case kDbgPowerError:
      return "DBG_POWER_ERROR";
    case kApWait:
      return "SWD_AP_WAIT";
    case kApFault:
      return "SWD_AP_FAULT";
    case kApError:
      return "SWD_AP_ERROR";
    case kApParityError:
      return "SWD_AP_PARITY_ERROR";
    case kDpWait:
      return "SWD_DP_WAIT";
    case kDpFault:
      return "SWD_DP_FAULT";
    case kDpError:
      return "SWD_DP_ERROR";
    case kDpParityError:
      return "SWD_DP_PARITY_ERROR";
    case kApWdataError:
      return "SWD_AP_WDATA_ERROR";
    case kApStickyError:
      return "SWD_AP_STICKY_ERROR";
    case kApStickyOrunError:
      return "SWD_AP_STICKYORUN_ERROR";
    case kBadAp:
      return "BAD_AP";
    case kFreqNotSupported:
      return "FREQ_NOT_SUPPORTED";
    case kUnknownCommand:
      return "UNKNOWN_COMMAND";
    default:
      return "unknown status";
  }
}

// "0x16 (SWD_DP_ERROR)"
inline std::string describe_status(std::uint8_t status) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string s = "0x";
  s += kHex[status >> 4];
  s += kHex[status & 0xF];
  return s + " (" + std::string(status_name(status)) + ")";
}

// What a status means for a DAP transfer. `probe_error`: the firmware refused the command
// itself (bad parameter, unknown command): a driver bug or a firmware limit, not something
// the target did.
enum class StatusClass { ok, wait, fault, no_response, protocol_error, probe_error };

inline StatusClass classify(std::uint8_t status) {
  switch (status) {
    case kOk:
      return StatusClass::ok;
    case kApWait:
    case kDpWait:
      return StatusClass::wait;
    case kApFault:
    case kDpFault:
    // The firmware's own classification of a FAULT (it read CTRL/STAT): a sticky flag is
    // set either way and ABORT clears it (ARM IHI 0031 ADIv5.2 B2.2.1 ABORT, B2.2.2
    // CTRL/STAT WDATAERR, STICKYERR, STICKYORUN).
    case kApWdataError:
    case kApStickyError:
    case kApStickyOrunError:
      return StatusClass::fault;
    // The firmware folds "no ACK" and "an ACK SWD does not define" into SWD_x_ERROR.
    // With a probe that works, no ACK (target unpowered, unwired, SWD pins repurposed) is
    // what causes it in practice, so it is reported as no_response; see DapAck.
    case kApError:
    case kDpError:
    case kGetIdcodeError:
    case kDbgPowerError:
      return StatusClass::no_response;
    case kApParityError:
    case kDpParityError:
      return StatusClass::protocol_error;
    default:
      return StatusClass::probe_error;
  }
}

inline DapAck dap_ack(StatusClass c) {
  switch (c) {
    case StatusClass::ok:
      return DapAck::ok;
    case StatusClass::wait:
      return DapAck::wait;
    case StatusClass::fault:
      return DapAck::fault;
    case StatusClass::no_response:
      return DapAck::no_response;
    case StatusClass::protocol_error:
    case StatusClass::probe_error:
      break;
  }
  return DapAck::protocol_error;
}

// ---- firmware versions and what they support ----

struct Version {
  unsigned stlink = 0;  // hardware generation: 2 or 3
  unsigned jtag = 0;    // "Jn": the debug (JTAG/SWD) firmware
  unsigned swim = 0;    // "Sn": SWIM firmware (0: none)
  unsigned msd = 0;     // "Mn": mass-storage firmware (0: none)
  unsigned bridge = 0;  // "Bn": bridge firmware, STLINK-V3 only (0: none)
  std::uint16_t vid = 0;
  std::uint16_t pid = 0;

  // As ST names its firmware releases: "V2J40S7", "V2J40M27", "V3J11M3", "V3J7M3B3S1".
  std::string text() const {
    std::string s = "V" + std::to_string(stlink) + "J" + std::to_string(jtag);
    if (msd != 0) s += "M" + std::to_string(msd);
    if (bridge != 0) s += "B" + std::to_string(bridge);
    if (swim != 0) s += "S" + std::to_string(swim);
    return s;
  }
};

constexpr std::size_t kGetVersionSize = 6;
constexpr std::size_t kGetVersionExSize = 12;

// GET_VERSION: a big-endian 16-bit word (V:4 | J:6 | X:6), then VID and PID. X is the
// SWIM firmware on the ST-LINK/V2 and the mass-storage firmware on the V2-1, which has
// no SWIM (`x_is_msd`).
inline Version parse_version(std::span<const std::uint8_t> r, bool x_is_msd) {
  Version v;
  const unsigned word = static_cast<unsigned>(r[0]) << 8 | r[1];
  v.stlink = word >> 12;
  v.jtag = (word >> 6) & 0x3F;
  (x_is_msd ? v.msd : v.swim) = word & 0x3F;
  v.vid = static_cast<std::uint16_t>(r[2] | r[3] << 8);
  v.pid = static_cast<std::uint16_t>(r[4] | r[5] << 8);
  return v;
}

// GET_VERSION_EX (STLINK-V3): V, S, J, M, B one byte each, 3 reserved, VID, PID.
inline Version parse_version_ex(std::span<const std::uint8_t> r) {
  Version v;
  v.stlink = r[0];
  v.swim = r[1];
  v.jtag = r[2];
  v.msd = r[3];
  v.bridge = r[4];
  v.vid = static_cast<std::uint16_t>(r[8] | r[9] << 8);
  v.pid = static_cast<std::uint16_t>(r[10] | r[11] << 8);
  return v;
}

// The debug firmware ("J") release that brought a feature, per hardware generation
// (RN0093, ST-LINK firmware release notes; the same thresholds pyOCD and OpenOCD check).
struct FirmwareMinimum {
  unsigned v2;  // ST-LINK/V2 and V2-1
  unsigned v3;  // STLINK-V3
  const char* what;
};
constexpr FirmwareMinimum kDapRegisterAccess{24, 1, "DP/AP register access"};
constexpr FirmwareMinimum kMemory16Bit{26, 1, "16-bit memory access"};
constexpr FirmwareMinimum kMultiAp{28, 1, "access to APs other than AP0"};
constexpr FirmwareMinimum kBankedDp{32, 2, "banked DP registers"};
// STLINK-V3 only: 8-bit memory transfers of 512 bytes instead of one 64-byte packet.
constexpr unsigned kV3Rw8_512Bytes = 6;

inline bool supports(const Version& v, const FirmwareMinimum& m) {
  return v.jtag >= (v.stlink >= 3 ? m.v3 : m.v2);
}

// "V2J24"
inline std::string minimum_text(const Version& v, const FirmwareMinimum& m) {
  return "V" + std::to_string(v.stlink >= 3 ? 3 : 2) + "J" +
         std::to_string(v.stlink >= 3 ? m.v3 : m.v2);
}

// Memory command limits. 8-bit transfers move one USB packet's worth (64 bytes on the
// full-speed probes; 512 on the STLINK-V3 from J6). 16- and 32-bit ones go through the
// firmware's 6 KiB buffer, but this driver also splits at every 1 KiB address boundary:
// TAR auto-increment is only guaranteed within 1 KiB (ARM IHI 0031 ADIv5.2 C2.2.2), and
// not every firmware release rewrites TAR there itself.
constexpr std::size_t kMaxRw8FullSpeed = 64;
constexpr std::size_t kMaxRw8V3 = 512;
constexpr std::size_t kMaxRw16_32 = 6144;
constexpr std::uint32_t kTarAutoIncrementBlock = 1024;

inline std::size_t max_rw8(const Version& v) {
  return v.stlink >= 3 && v.jtag >= kV3Rw8_512Bytes ? kMaxRw8V3 : kMaxRw8FullSpeed;
}

// The next piece of a memory transfer at `address` with `remaining` bytes: at most
// `limit` bytes, and never across a 1 KiB boundary.
inline std::size_t chunk_size(std::uint32_t address, std::size_t remaining, std::size_t limit) {
  const std::size_t to_boundary = kTarAutoIncrementBlock - address % kTarAutoIncrementBlock;
  return std::min({remaining, limit, to_boundary});
}

// ---- SWD clock ----

// ST-LINK/V2 and V2-1: SWD_SET_FREQ takes a divisor; each stands for one nominal clock
// (the firmware refuses other values with FREQ_NOT_SUPPORTED). Fastest first.
struct SwdDivisor {
  std::uint16_t divisor;
  std::uint32_t khz;
};
constexpr SwdDivisor kV2SwdDivisors[] = {
    {0, 4000}, {1, 1800}, {2, 1200}, {3, 950},  {5, 650}, {7, 480},  {9, 400},  {10, 360},
    {15, 240}, {25, 150}, {31, 125}, {40, 100}, {79, 50}, {158, 25}, {265, 15}, {798, 5}};

// The fastest entry not above `khz`, or the slowest when all are.
inline SwdDivisor pick_v2_divisor(std::uint32_t khz) {
  for (const auto& d : kV2SwdDivisors)
    if (d.khz <= khz) return d;
  return std::end(kV2SwdDivisors)[-1];
}

// Same rule over a list in any order (STLINK-V3: GET_COM_FREQ's list). 0 for an empty list.
inline std::uint32_t pick_frequency(std::span<const std::uint32_t> list, std::uint32_t khz) {
  std::uint32_t best = 0;
  std::uint32_t slowest = 0;
  for (std::uint32_t f : list) {
    if (f <= khz && f > best) best = f;
    if (slowest == 0 || f < slowest) slowest = f;
  }
  return best != 0 ? best : slowest;
}

// ---- command blocks ----

namespace detail {
inline void put16(Cdb& c, std::size_t at, std::uint32_t v) {
  c[at] = static_cast<std::uint8_t>(v);
  c[at + 1] = static_cast<std::uint8_t>(v >> 8);
}
inline void put32(Cdb& c, std::size_t at, std::uint32_t v) {
  put16(c, at, v);
  put16(c, at + 2, v >> 16);
}
inline Cdb debug(std::uint8_t sub) {
  Cdb c{};
  c[0] = kDebugCommand;
  c[1] = sub;
  return c;
}
}  // namespace detail

inline Cdb cdb_get_version() {
  return Cdb{kGetVersion};
}
inline Cdb cdb_get_version_ex() {
  return Cdb{kGetVersionEx};
}
inline Cdb cdb_get_current_mode() {
  return Cdb{kGetCurrentMode};
}
inline Cdb cdb_get_target_voltage() {
  return Cdb{kGetTargetVoltage};
}
inline Cdb cdb_dfu_exit() {
  return Cdb{kDfuCommand, kDfuExit};
}
inline Cdb cdb_swim_exit() {
  return Cdb{kSwimCommand, kSwimExit};
}
inline Cdb cdb_exit_debug() {
  return detail::debug(kExit);
}

inline Cdb cdb_enter_swd() {
  Cdb c = detail::debug(kEnter);
  c[2] = kEnterSwd;
  return c;
}

// Port (2): an AP number or kDpPort. Address (2): the AP register address 0x00..0xFC, or
// for the DP A[3:2] with DPBANKSEL in bits 7:4.
inline Cdb cdb_read_dap_reg(std::uint16_t port, std::uint16_t addr) {
  Cdb c = detail::debug(kReadDapReg);
  detail::put16(c, 2, port);
  detail::put16(c, 4, addr);
  return c;
}

inline Cdb cdb_write_dap_reg(std::uint16_t port, std::uint16_t addr, std::uint32_t value) {
  Cdb c = detail::debug(kWriteDapReg);
  detail::put16(c, 2, port);
  detail::put16(c, 4, addr);
  detail::put32(c, 6, value);
  return c;
}

inline Cdb cdb_init_ap(std::uint8_t ap) {
  Cdb c = detail::debug(kInitAp);
  c[2] = ap;
  return c;
}

inline Cdb cdb_drive_nrst(bool low) {
  Cdb c = detail::debug(kDriveNrst);
  c[2] = low ? kNrstLow : kNrstHigh;
  return c;
}

inline Cdb cdb_swd_set_freq(std::uint16_t divisor) {
  Cdb c = detail::debug(kSwdSetFreq);
  detail::put16(c, 2, divisor);
  return c;
}

// Byte 2 selects the interface: 0 SWD, 1 JTAG.
inline Cdb cdb_get_com_freq() {
  return detail::debug(kGetComFreq);
}

inline Cdb cdb_set_com_freq(std::uint32_t khz) {
  Cdb c = detail::debug(kSetComFreq);
  detail::put32(c, 4, khz);
  return c;
}

inline Cdb cdb_get_last_rw_status2() {
  return detail::debug(kGetLastRwStatus2);
}

// READMEM/WRITEMEM_8/16/32BIT: address (4), length in bytes (2), AP number (1); bytes
// 9..11 (CSW bits 31:8) stay 0, which asks for the firmware's default CSW.
inline Cdb cdb_memory(bool write, unsigned width, std::uint32_t address, std::uint16_t length,
                      std::uint8_t ap) {
  const std::uint8_t sub = width == 8    ? (write ? kWriteMem8 : kReadMem8)
                           : width == 16 ? (write ? kWriteMem16 : kReadMem16)
                                         : (write ? kWriteMem32 : kReadMem32);
  Cdb c = detail::debug(sub);
  detail::put32(c, 2, address);
  detail::put16(c, 6, length);
  c[8] = ap;
  return c;
}

// ---- answers ----

inline std::uint32_t get32(std::span<const std::uint8_t> r, std::size_t at) {
  return r[at] | r[at + 1] << 8 | r[at + 2] << 16 | static_cast<std::uint32_t>(r[at + 3]) << 24;
}

// Answer sizes.
constexpr std::size_t kStatusSize = 2;         // status, reserved
constexpr std::size_t kDapRegReadSize = 8;     // status, 3 reserved, value
constexpr std::size_t kTargetVoltageSize = 8;  // two ADC readings
constexpr std::size_t kRwStatus2Size = 12;     // status (2), reserved (2), address, reserved
constexpr std::size_t kSetComFreqSize = 8;     // status, 3 reserved, the frequency used
constexpr std::size_t kComFreqMax = 10;
constexpr std::size_t kGetComFreqSize = 12 + 4 * kComFreqMax;

// GET_TARGET_VOLTAGE: ADC readings of the probe's internal 1.2 V reference and of VTref
// halved by a divider; VTref = 2 * 1.2 V * adc1 / adc0. -1 when adc0 is 0 (no reading).
inline int parse_target_voltage_mv(std::span<const std::uint8_t> r) {
  const std::uint64_t adc0 = get32(r, 0);
  const std::uint64_t adc1 = get32(r, 4);
  if (adc0 == 0) return -1;
  return static_cast<int>((2 * 1200 * adc1 + adc0 / 2) / adc0);
}

// GET_COM_FREQ: status, 7 reserved bytes, the number of entries (byte 8), 3 reserved,
// then up to ten 32-bit frequencies in kHz.
inline std::vector<std::uint32_t> parse_com_freq(std::span<const std::uint8_t> r) {
  const std::size_t n = std::min<std::size_t>(r[8], kComFreqMax);
  std::vector<std::uint32_t> list;
  for (std::size_t i = 0; i < n; ++i)
    list.push_back(get32(r, 12 + 4 * i));
  return list;
}

struct RwStatus {
  std::uint8_t status = kOk;
  std::uint32_t fault_address = 0;  // the access that failed, when status is not OK
};

inline RwStatus parse_rw_status2(std::span<const std::uint8_t> r) {
  return RwStatus{r[0], get32(r, 4)};
}

}  // namespace probefarm::probe::stlink
