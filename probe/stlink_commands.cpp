// The ST-Link command set (stlink_commands.hpp): CDB builders, answer parsers, status
// classification and firmware checks. Sources as cited in the header.
#include "probe/stlink_commands.hpp"

#include <algorithm>
#include <iterator>

#include "probe/bytes.hpp"

namespace probefarm::probe::stlink {
namespace {

// A kDebugCommand CDB for sub-command `sub`, with byte 2 = `b2` where the command has one.
Cdb debug(std::uint8_t sub, std::uint8_t b2 = 0) {
  return Cdb{kDebugCommand, sub, b2};
}

}  // namespace

std::string_view status_name(std::uint8_t status) {
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

std::string describe_status(std::uint8_t status) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string s = "0x";
  s += kHex[status >> 4];
  s += kHex[status & 0xF];
  return s + " (" + std::string(status_name(status)) + ")";
}

StatusClass classify(std::uint8_t status) {
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

DapAck dap_ack(StatusClass c) {
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

// ---- firmware versions ----

std::string Version::text() const {
  std::string s = "V" + std::to_string(stlink) + "J" + std::to_string(jtag);
  if (msd != 0) s += "M" + std::to_string(msd);
  if (bridge != 0) s += "B" + std::to_string(bridge);
  if (swim != 0) s += "S" + std::to_string(swim);
  return s;
}

Version parse_version(std::span<const std::uint8_t> r, bool x_is_msd) {
  Version v;
  const unsigned word = static_cast<unsigned>(r[0]) << 8 | r[1];  // big-endian
  v.stlink = word >> 12;
  v.jtag = (word >> 6) & 0x3F;
  (x_is_msd ? v.msd : v.swim) = word & 0x3F;
  v.vid = load_le16(r, 2);
  v.pid = load_le16(r, 4);
  return v;
}

Version parse_version_ex(std::span<const std::uint8_t> r) {
  Version v;
  v.stlink = r[0];
  v.swim = r[1];
  v.jtag = r[2];
  v.msd = r[3];
  v.bridge = r[4];
  v.vid = load_le16(r, 8);
  v.pid = load_le16(r, 10);
  return v;
}

bool supports(const Version& v, const FirmwareMinimum& m) {
  return v.jtag >= (v.stlink >= 3 ? m.v3 : m.v2);
}

std::string minimum_text(const Version& v, const FirmwareMinimum& m) {
  return "V" + std::to_string(v.stlink >= 3 ? 3 : 2) + "J" +
         std::to_string(v.stlink >= 3 ? m.v3 : m.v2);
}

std::size_t max_rw8(const Version& v) {
  return v.stlink >= 3 && v.jtag >= kV3Rw8_512Bytes ? kMaxRw8V3 : kMaxRw8FullSpeed;
}

std::size_t chunk_size(std::uint32_t address, std::size_t remaining, std::size_t limit) {
  const std::size_t to_boundary = kTarAutoIncrementBlock - address % kTarAutoIncrementBlock;
  return std::min({remaining, limit, to_boundary});
}

// ---- SWD clock ----

SwdDivisor pick_v2_divisor(std::uint32_t khz) {
  for (const auto& d : kV2SwdDivisors)
    if (d.khz <= khz) return d;
  return std::end(kV2SwdDivisors)[-1];
}

std::uint32_t pick_frequency(std::span<const std::uint32_t> list, std::uint32_t khz) {
  std::uint32_t best = 0;
  std::uint32_t slowest = 0;
  for (std::uint32_t f : list) {
    if (f <= khz && f > best) best = f;
    if (slowest == 0 || f < slowest) slowest = f;
  }
  return best != 0 ? best : slowest;
}

// ---- command blocks ----

Cdb cdb_get_version() {
  return Cdb{kGetVersion};
}
Cdb cdb_get_version_ex() {
  return Cdb{kGetVersionEx};
}
Cdb cdb_get_current_mode() {
  return Cdb{kGetCurrentMode};
}
Cdb cdb_get_target_voltage() {
  return Cdb{kGetTargetVoltage};
}
Cdb cdb_dfu_exit() {
  return Cdb{kDfuCommand, kDfuExit};
}
Cdb cdb_swim_exit() {
  return Cdb{kSwimCommand, kSwimExit};
}
Cdb cdb_exit_debug() {
  return debug(kExit);
}
Cdb cdb_enter_swd() {
  return debug(kEnter, kEnterSwd);
}
Cdb cdb_init_ap(std::uint8_t ap) {
  return debug(kInitAp, ap);
}
Cdb cdb_drive_nrst(bool low) {
  return debug(kDriveNrst, low ? kNrstLow : kNrstHigh);
}
Cdb cdb_get_com_freq() {
  return debug(kGetComFreq);
}
Cdb cdb_get_last_rw_status2() {
  return debug(kGetLastRwStatus2);
}

Cdb cdb_read_reg(std::uint8_t regsel) {
  return debug(kReadReg, regsel);
}

Cdb cdb_write_reg(std::uint8_t regsel, std::uint32_t value) {
  Cdb c = debug(kWriteReg, regsel);
  store_le32(c, 3, value);
  return c;
}

Cdb cdb_read_debug32(std::uint32_t address) {
  Cdb c = debug(kReadDebug32);
  store_le32(c, 2, address);
  return c;
}

Cdb cdb_write_debug32(std::uint32_t address, std::uint32_t value) {
  Cdb c = cdb_read_debug32(address);
  c[1] = kWriteDebug32;
  store_le32(c, 6, value);
  return c;
}

Cdb cdb_read_dap_reg(std::uint16_t port, std::uint16_t addr) {
  Cdb c = debug(kReadDapReg);
  store_le16(c, 2, port);
  store_le16(c, 4, addr);
  return c;
}

// READ_DAP_REG's port and address, then the value.
Cdb cdb_write_dap_reg(std::uint16_t port, std::uint16_t addr, std::uint32_t value) {
  Cdb c = cdb_read_dap_reg(port, addr);
  c[1] = kWriteDapReg;
  store_le32(c, 6, value);
  return c;
}

Cdb cdb_swd_set_freq(std::uint16_t divisor) {
  Cdb c = debug(kSwdSetFreq);
  store_le16(c, 2, divisor);
  return c;
}

Cdb cdb_set_com_freq(std::uint32_t khz) {
  Cdb c = debug(kSetComFreq);
  store_le32(c, 4, khz);
  return c;
}

Cdb cdb_memory(bool write, unsigned width, std::uint32_t address, std::uint16_t length,
               std::uint8_t ap) {
  const std::uint8_t sub = width == 8    ? (write ? kWriteMem8 : kReadMem8)
                           : width == 16 ? (write ? kWriteMem16 : kReadMem16)
                                         : (write ? kWriteMem32 : kReadMem32);
  Cdb c = debug(sub);
  store_le32(c, 2, address);
  store_le16(c, 6, length);
  c[8] = ap;
  return c;
}

// ---- answers ----

int parse_target_voltage_mv(std::span<const std::uint8_t> r) {
  const std::uint64_t adc0 = load_le32(r, 0);
  const std::uint64_t adc1 = load_le32(r, 4);
  if (adc0 == 0) return -1;
  return static_cast<int>((2 * 1200 * adc1 + adc0 / 2) / adc0);
}

std::vector<std::uint32_t> parse_com_freq(std::span<const std::uint8_t> r) {
  const std::size_t n = std::min<std::size_t>(r[8], kComFreqMax);
  std::vector<std::uint32_t> list;
  for (std::size_t i = 0; i < n; ++i)
    list.push_back(load_le32(r, 12 + 4 * i));
  return list;
}

RwStatus parse_rw_status2(std::span<const std::uint8_t> r) {
  return RwStatus{r[0], load_le32(r, 4)};
}

}  // namespace probefarm::probe::stlink
