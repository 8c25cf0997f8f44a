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
//
// The functions are defined in stlink_commands.cpp.
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
// JTAG API v2 single-access commands (every firmware this driver accepts has them): one
// core register through DCRSR/DCRDR, which waits for S_REGRDY in the probe, and one
// 32-bit word of AP 0's memory. Each answers status, 3 reserved bytes (and the value).
constexpr std::uint8_t kReadReg = 0x33;
constexpr std::uint8_t kWriteReg = 0x34;
constexpr std::uint8_t kWriteDebug32 = 0x35;
constexpr std::uint8_t kReadDebug32 = 0x36;
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

std::string_view status_name(std::uint8_t status);
// "0x16 (SWD_DP_ERROR)"
std::string describe_status(std::uint8_t status);

// What a status means for a DAP transfer. `probe_error`: the firmware refused the command
// itself (bad parameter, unknown command): a driver bug or a firmware limit, not something
// the target did.
enum class StatusClass { ok, wait, fault, no_response, protocol_error, probe_error };

StatusClass classify(std::uint8_t status);
DapAck dap_ack(StatusClass c);

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
  std::string text() const;
};

constexpr std::size_t kGetVersionSize = 6;
constexpr std::size_t kGetVersionExSize = 12;

// GET_VERSION: a big-endian 16-bit word (V:4 | J:6 | X:6), then VID and PID. X is the
// SWIM firmware on the ST-LINK/V2 and the mass-storage firmware on the V2-1, which has
// no SWIM (`x_is_msd`).
Version parse_version(std::span<const std::uint8_t> r, bool x_is_msd);
// GET_VERSION_EX (STLINK-V3): V, S, J, M, B one byte each, 3 reserved, VID, PID.
Version parse_version_ex(std::span<const std::uint8_t> r);

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

bool supports(const Version& v, const FirmwareMinimum& m);
// "V2J24"
std::string minimum_text(const Version& v, const FirmwareMinimum& m);

// Memory command limits. 8-bit transfers move one USB packet's worth (64 bytes on the
// full-speed probes; 512 on the STLINK-V3 from J6). 16- and 32-bit ones go through the
// firmware's 6 KiB buffer, but this driver also splits at every 1 KiB address boundary:
// TAR auto-increment is only guaranteed within 1 KiB (ARM IHI 0031 ADIv5.2 C2.2.2), and
// not every firmware release rewrites TAR there itself.
constexpr std::size_t kMaxRw8FullSpeed = 64;
constexpr std::size_t kMaxRw8V3 = 512;
constexpr std::size_t kMaxRw16_32 = 6144;
constexpr std::uint32_t kTarAutoIncrementBlock = 1024;

std::size_t max_rw8(const Version& v);
// The next piece of a memory transfer at `address` with `remaining` bytes: at most
// `limit` bytes, and never across a 1 KiB boundary.
std::size_t chunk_size(std::uint32_t address, std::size_t remaining, std::size_t limit);

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
SwdDivisor pick_v2_divisor(std::uint32_t khz);
// Same rule over a list in any order (STLINK-V3: GET_COM_FREQ's list). 0 for an empty list.
std::uint32_t pick_frequency(std::span<const std::uint32_t> list, std::uint32_t khz);

// ---- command blocks ----

Cdb cdb_get_version();
Cdb cdb_get_version_ex();
Cdb cdb_get_current_mode();
Cdb cdb_get_target_voltage();
Cdb cdb_dfu_exit();
Cdb cdb_swim_exit();
Cdb cdb_exit_debug();
Cdb cdb_enter_swd();
// Port (2): an AP number or kDpPort. Address (2): the AP register address 0x00..0xFC, or
// for the DP A[3:2] with DPBANKSEL in bits 7:4.
Cdb cdb_read_dap_reg(std::uint16_t port, std::uint16_t addr);
Cdb cdb_write_dap_reg(std::uint16_t port, std::uint16_t addr, std::uint32_t value);
Cdb cdb_init_ap(std::uint8_t ap);
Cdb cdb_drive_nrst(bool low);
Cdb cdb_swd_set_freq(std::uint16_t divisor);
// Byte 2 selects the interface: 0 SWD, 1 JTAG.
Cdb cdb_get_com_freq();
Cdb cdb_set_com_freq(std::uint32_t khz);
Cdb cdb_get_last_rw_status2();
// READREG / WRITEREG: REGSEL (ARMv7-M DCRSR.REGSEL, 1 byte), then the value.
Cdb cdb_read_reg(std::uint8_t regsel);
Cdb cdb_write_reg(std::uint8_t regsel, std::uint32_t value);
// READDEBUG_32BIT / WRITEDEBUG_32BIT: address (4), then the value.
Cdb cdb_read_debug32(std::uint32_t address);
Cdb cdb_write_debug32(std::uint32_t address, std::uint32_t value);
// READMEM/WRITEMEM_8/16/32BIT: address (4), length in bytes (2), AP number (1); bytes
// 9..11 (CSW bits 31:8) stay 0, which asks for the firmware's default CSW.
Cdb cdb_memory(bool write, unsigned width, std::uint32_t address, std::uint16_t length,
               std::uint8_t ap);

// ---- answers ----

// Answer sizes.
constexpr std::size_t kStatusSize = 2;         // status, reserved
constexpr std::size_t kDapRegReadSize = 8;     // status, 3 reserved, value (also READREG,
                                               // READDEBUG_32BIT)
constexpr std::size_t kTargetVoltageSize = 8;  // two ADC readings
constexpr std::size_t kRwStatus2Size = 12;     // status (2), reserved (2), address, reserved
constexpr std::size_t kSetComFreqSize = 8;     // status, 3 reserved, the frequency used
constexpr std::size_t kComFreqMax = 10;
constexpr std::size_t kGetComFreqSize = 12 + 4 * kComFreqMax;

// GET_TARGET_VOLTAGE: ADC readings of the probe's internal 1.2 V reference and of VTref
// halved by a divider; VTref = 2 * 1.2 V * adc1 / adc0. -1 when adc0 is 0 (no reading).
int parse_target_voltage_mv(std::span<const std::uint8_t> r);
// GET_COM_FREQ: status, 7 reserved bytes, the number of entries (byte 8), 3 reserved,
// then up to ten 32-bit frequencies in kHz.
std::vector<std::uint32_t> parse_com_freq(std::span<const std::uint8_t> r);

struct RwStatus {
  std::uint8_t status = kOk;
  std::uint32_t fault_address = 0;  // the access that failed, when status is not OK
};
RwStatus parse_rw_status2(std::span<const std::uint8_t> r);

}  // namespace probefarm::probe::stlink
