// ST-Link command dispatch: versions, modes, clocks, target voltage, nRST and the core
// register commands. The SWD engine behind them is in stlink_swd.cpp.
#include "stlink.hpp"

#include <algorithm>
#include <iterator>

#include "stlink_engine.hpp"

namespace probefarm::sim {
namespace {

// USB identities: ST's VID 0x0483 and the product IDs of the ST-LINK/V2 (0x3748), the
// ST-LINK/V2-1 (0x374B) and the STLINK-V3E (0x374E), the on-board STLINK-V3 of
// NUCLEO/Discovery kits with mass storage and virtual COM port.
//
// Firmware versions: recent releases of each line (RN0093, ST-LINK firmware release notes), so
// that hosts enable everything they know: on the V2 lines DAP register access (from J24),
// 16-bit memory access (J26), INIT_AP (J28), banked DP registers, CSW in memory commands
// and RW_MISC (J32); on the V3 the same from J2 and 512-byte 8-bit transfers from J6.
// The V2 reports the SWIM firmware it carries (S7); the V2-1 and V3E have mass storage
// firmware instead (M27, M3) and no SWIM.
constexpr StLinkIdentity kV2{0x0483, 0x3748, 2, 40, 7, 0, 0};
constexpr StLinkIdentity kV2_1{0x0483, 0x374B, 2, 40, 0, 27, 0};
constexpr StLinkIdentity kV3{0x0483, 0x374E, 3, 11, 0, 3, 0};

// The SWD clock settings of the V2 firmware: SWD_SET_FREQ takes a delay count, each
// count stands for one nominal frequency (kHz). Any other count is refused.
struct Divisor {
  std::uint16_t divisor;
  std::uint32_t khz;
};
constexpr Divisor kV2SwdClocks[] = {
    {0, 4000}, {1, 1800}, {2, 1200}, {3, 950},  {5, 650}, {7, 480},  {9, 400},  {10, 360},
    {15, 240}, {25, 150}, {31, 125}, {40, 100}, {79, 50}, {158, 25}, {265, 15}, {798, 5}};
constexpr std::uint16_t kV2DefaultDivisor = 1;  // 1.8 MHz after power-up
// JTAG_SET_FREQ: a prescaler of the JTAG clock.
constexpr Divisor kV2JtagClocks[] = {{2, 18000}, {4, 9000}, {8, 4500},  {16, 2250},
                                     {32, 1125}, {64, 562}, {128, 281}, {256, 140}};

// STLINK-V3 frequencies in high-performance mode, as GET_COM_FREQ lists them, fastest
// first: SWD from 24 MHz, JTAG from 21.33 MHz (UM2448, STLINK-V3SET user manual). The
// JTAG list below its maximum is this model's; no JTAG reaches these boards.
constexpr std::uint32_t kV3SwdKhz[] = {24000, 8000, 3300, 1000, 200, 50, 5};
constexpr std::uint32_t kV3JtagKhz[] = {21333, 16000, 12000, 8000, 6000, 4000, 2000, 1000};
constexpr std::uint32_t kV3DefaultSwdKhz = 1000;
constexpr std::size_t kV3MaxFrequencies = 10;  // GET_COM_FREQ has room for ten

// The firmware's SWD engine retries a packet answered WAIT this many times before it
// reports SWD_AP_WAIT / SWD_DP_WAIT and lets the host retry the command.
constexpr unsigned kWaitRetries = 100;

// nRST low time of DRIVE_NRST "pulse": far above what the STM32 NRST input needs to see
// a reset (a few hundred ns, the datasheets' "NRST pin characteristics", e.g. DS5319).
constexpr Picoseconds kNrstPulseLength = 1 * kMillisecond;

// ARMv7-M ARM (DDI 0403E) C1.6: DHCSR, DCRSR, DCRDR and AIRCR (B3.2.6).
constexpr std::uint32_t kDhcsr = 0xE000EDF0;
constexpr std::uint32_t kDcrsr = 0xE000EDF4;
constexpr std::uint32_t kDcrdr = 0xE000EDF8;
constexpr std::uint32_t kAircr = 0xE000ED0C;
constexpr std::uint32_t kDbgKey = 0xA05F0000;
constexpr std::uint32_t kCDebugEn = 1u << 0;
constexpr std::uint32_t kCHalt = 1u << 1;
constexpr std::uint32_t kCStep = 1u << 2;
constexpr std::uint32_t kCMaskInts = 1u << 3;
constexpr std::uint32_t kSRegRdy = 1u << 16;
constexpr std::uint32_t kSHalt = 1u << 17;
constexpr std::uint32_t kRegWnR = 1u << 16;
constexpr std::uint32_t kAircrSysResetReq = 0x05FA0004;  // VECTKEY | SYSRESETREQ
// DHCSR reads while waiting for a DCRSR transfer (S_REGRDY) before giving up on it.
constexpr unsigned kRegRdyPolls = 10;
// READALLREGS: r0-r15, xPSR, MSP, PSP and the CONTROL/FAULTMASK/BASEPRI/PRIMASK word,
// after a 4-byte status; the 21st word is not used by hosts and reads 0.
constexpr std::uint8_t kAllRegs[] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,
                                     10, 11, 12, 13, 14, 15, 16, 17, 18, 20};
constexpr std::size_t kAllRegsResponse = 88;

// GET_TARGET_VOLTAGE: two 12-bit ADC conversions of the probe's MCU against its 3.3 V
// supply. The first samples its internal 1.2 V reference, the second VTref through a
// divide-by-two; the host computes 2 * adc1 * 1.2 / adc0 volts.
constexpr double kAdcFullScale = 4095.0;
constexpr double kProbeSupplyVolts = 3.3;
constexpr double kVrefIntVolts = 1.2;

}  // namespace

const StLinkIdentity& stlink_identity(StLinkVariant variant) {
  switch (variant) {
    case StLinkVariant::v2:
      return kV2;
    case StLinkVariant::v2_1:
      return kV2_1;
    case StLinkVariant::v3:
      break;
  }
  return kV3;
}

std::unique_ptr<StLinkEngine> make_stlink_engine(TargetPort& target, StLinkVariant variant) {
  return std::make_unique<stlink::Engine>(target, variant);
}

namespace stlink {

Engine::Engine(TargetPort& target, StLinkVariant variant)
    : target_(target),
      variant_(variant),
      id_(stlink_identity(variant)),
      swd_(target),
      swd_khz_(variant == StLinkVariant::v3 ? kV3DefaultSwdKhz
                                            : kV2SwdClocks[kV2DefaultDivisor].khz) {
  swd_.set_clock_hz(swd_khz_ * 1000);
  swd_.set_wait_retry(kWaitRetries);
}

std::vector<Bytes> Engine::receive(std::span<const std::uint8_t> transfer) {
  std::vector<Bytes> responses;
  if (data_needed_ > 0) {
    // Bytes beyond the data phase in the same transfer are dropped: the firmware reads
    // the next command from a packet of its own.
    const std::size_t take = std::min(data_needed_, transfer.size());
    data_.insert(data_.end(), transfer.begin(), transfer.begin() + static_cast<long>(take));
    data_needed_ -= take;
    if (data_needed_ == 0) finish_data_phase();
    return responses;
  }
  Command c;
  std::copy_n(transfer.begin(), std::min(transfer.size(), kCommandSize), c.b.begin());
  if (auto r = run(c)) responses.push_back(std::move(*r));
  // A write command may carry its data in the same transfer, right after the command.
  if (data_needed_ > 0 && transfer.size() > kCommandSize) {
    auto more = receive(transfer.subspan(kCommandSize));
    std::move(more.begin(), more.end(), std::back_inserter(responses));
  }
  return responses;
}

void Engine::finish_data_phase() {
  Bytes data = std::move(data_);
  data_.clear();
  if (pending_.u8(1) == kRwMiscOut)
    rw_misc(pending_.u32(2), data);
  else
    memory_write_command(pending_, data);
}

std::optional<Bytes> Engine::run(const Command& c) {
  switch (c.u8(0)) {
    case kGetVersion: {
      // 16-bit big-endian version word (V:4 | J:6 | S or M:6), then VID and PID. The V3
      // leaves J and S zero and answers GET_VERSION_EX instead.
      unsigned word = id_.stlink << 12;
      if (id_.stlink == 2) word |= id_.jtag << 6 | (id_.msd != 0 ? id_.msd : id_.swim);
      Bytes r{static_cast<std::uint8_t>(word >> 8),
              static_cast<std::uint8_t>(word),
              static_cast<std::uint8_t>(id_.vendor_id),
              static_cast<std::uint8_t>(id_.vendor_id >> 8),
              static_cast<std::uint8_t>(id_.product_id),
              static_cast<std::uint8_t>(id_.product_id >> 8)};
      return r;
    }
    case kGetVersionEx: {
      if (variant_ != StLinkVariant::v3) break;
      Bytes r(12, 0);
      r[0] = static_cast<std::uint8_t>(id_.stlink);
      r[1] = static_cast<std::uint8_t>(id_.swim);
      r[2] = static_cast<std::uint8_t>(id_.jtag);
      r[3] = static_cast<std::uint8_t>(id_.msd);
      r[4] = static_cast<std::uint8_t>(id_.bridge);
      put32(r, 8, id_.vendor_id | std::uint32_t{id_.product_id} << 16);
      return r;
    }
    case kGetCurrentMode:
      return Bytes{mode_, 0};
    case kDfuCommand:
      if (c.u8(1) != kDfuExit) break;
      // Leaves the USB firmware-update mode; there is no reply.
      if (mode_ == kModeDfu) mode_ = kModeMass;
      return std::nullopt;
    case kGetTargetVoltage:
      return target_voltage();
    case kDebugCommand:
      return debug(c);
    default:
      // SWIM (STM8) is not wired to these boards; everything else is unknown too.
      break;
  }
  return Bytes{kUnknownCommand, 0};
}

std::optional<Bytes> Engine::debug(const Command& c) {
  const std::uint8_t sub = c.u8(1);
  switch (sub) {
    case kEnter:
      return enter(c.u8(2));
    case kExit:
      leave_debug();
      return std::nullopt;
    case kReadIdCodes: {
      begin(true);
      std::uint32_t dpidr = 0;
      dp_read(0x0, dpidr);
      // Status word, the DP's IDCODE, and a second word for a second JTAG TAP: 0 on SWD.
      Bytes r(12, 0);
      r[0] = st_;
      put32(r, 4, dpidr);
      return r;
    }
    case kGetStatus:
      return core_state();
    case kForceDebug:
      return write_dhcsr(kDbgKey | kCHalt | kCDebugEn);
    case kRunCore:
      return write_dhcsr(kDbgKey | kCDebugEn);
    case kStepCore:
      return write_dhcsr(kDbgKey | kCStep | kCMaskInts | kCDebugEn);
    case kResetSys:
      // A system reset request through AIRCR (ARMv7-M ARM B3.2.6).
      begin(true);
      mem_word_write(kAircr, kAircrSysResetReq);
      return Bytes{st_, 0};
    case kReadReg:
      return read_core_reg(c.u8(2));
    case kWriteReg:
      return write_core_reg(c.u8(2), c.u32(3));
    case kReadAllRegs:
      return read_all_regs();
    case kWriteDebugReg:
      begin(true);
      mem_word_write(c.u32(2), c.u32(6));
      return Bytes{st_, 0};
    case kReadDebugReg: {
      begin(true);
      std::uint32_t v = 0;
      mem_word_read(c.u32(2), v);
      Bytes r(8, 0);
      r[0] = st_;
      put32(r, 4, v);
      return r;
    }
    case kGetLastRwStatus:
      return Bytes{last_rw_, 0};
    case kGetLastRwStatus2: {
      // 16-bit status, 16 bits reserved, the address of the failed access, 4 reserved.
      Bytes r(12, 0);
      r[0] = last_rw_;
      put32(r, 4, fault_addr_);
      return r;
    }
    case kDriveNrst:
      return drive_nrst(c.u8(2));
    case kStartTraceRx:
    case kStopTraceRx:
      // SWO capture: accepted; the boards' SWO pin is not modelled, so nothing arrives.
      return Bytes{kOk, 0};
    case kGetTraceNb:
      return Bytes{0, 0};  // bytes of SWO data waiting
    case kSwdSetFreq:
      if (variant_ == StLinkVariant::v3) break;
      return swd_set_freq(c.u16(2));
    case kJtagSetFreq:
      if (variant_ == StLinkVariant::v3) break;
      return jtag_set_freq(c.u16(2));
    case kSetComFreq:
      if (variant_ != StLinkVariant::v3) break;
      return set_com_freq(c.u8(2) != 0, c.u32(4));
    case kGetComFreq:
      if (variant_ != StLinkVariant::v3) break;
      return get_com_freq(c.u8(2) != 0);
    case kReadDapReg:
      return read_dap_reg(c.u16(2), c.u16(4));
    case kWriteDapReg:
      return write_dap_reg(c.u16(2), c.u16(4), c.u32(6));
    case kInitAp:
      return init_ap(c.u8(2));
    case kCloseApDbg:
      return close_ap(c.u8(2));
    case kReadMem8:
    case kReadMem16:
    case kReadMem32:
    case kReadMem32NoInc:
      return memory_read_command(c);
    case kWriteMem8:
    case kWriteMem16:
    case kWriteMem32:
    case kWriteMem32NoInc:
      // The data follows in the next transfer(s); the status is fetched afterwards with
      // GETLASTRWSTATUS(2).
      pending_ = c;
      data_needed_ = c.u16(6);
      if (data_needed_ == 0) finish_data_phase();
      return std::nullopt;
    case kRwMiscOut: {
      // Item codes (padded to a multiple of four), then one 32-bit value per item.
      const std::uint32_t items = c.u32(2);
      misc_results_.clear();
      if (items > rw_misc_max_items()) return std::nullopt;  // refused: no data phase
      pending_ = c;
      data_needed_ = (items + 3) / 4 * 4 + 4 * std::size_t{items};
      if (data_needed_ == 0) finish_data_phase();
      return std::nullopt;
    }
    case kRwMiscIn:
      return rw_misc_results();
    default:
      break;
  }
  return Bytes{kUnknownCommand, 0};
}

Bytes Engine::enter(std::uint8_t how) {
  if (how == kEnterJtagNoReset || how == kEnterJtagReset) {
    // The boards are wired for SWD only: no TAP answers an IDCODE scan.
    swd_.set_connected(false);
    mode_ = kModeDebug;
    return {kGetIdcodeError, 0};
  }
  if (how != kEnterSwdNoReset) return {kCmdError, 0};
  mode_ = kModeDebug;
  swd_.set_connected(true);
  select_valid_ = false;
  // ADIv5.2 B5.2 JTAG-to-SWD switch: >= 50 ones, 0xE79E, then a line reset (>= 50 ones,
  // B4.3.3) and idle cycles, LSB first.
  static constexpr std::uint8_t kSwitch[] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x9E, 0xE7,
                                             0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00};
  swd_.sequence(kSwitch, 8 * sizeof(kSwitch));
  begin(true);
  // B4.3.3: the first packet after a line reset must read DPIDR. Then the firmware
  // clears what an earlier session left sticky (B2.2 ABORT) and powers up the debug
  // domain (B2.2 CTRL/STAT CDBGPWRUPREQ, CSYSPWRUPREQ), waiting for both acknowledges.
  constexpr std::uint32_t kAbortClearAll = 0x1E;
  constexpr std::uint32_t kPowerUpReq = (1u << 28) | (1u << 30);
  constexpr std::uint32_t kPowerUpAck = (1u << 29) | (1u << 31);
  std::uint32_t dpidr = 0;
  std::uint32_t ctrl_stat = 0;
  dp_read(0x0, dpidr);
  dp_write(0x0, kAbortClearAll);
  select(0, 0, 0);
  dp_write(0x4, kPowerUpReq);
  bool powered = false;
  for (unsigned i = 0; i < kRegRdyPolls && st_ == kOk && !powered; ++i) {
    dp_read(0x4, ctrl_stat);
    powered = (ctrl_stat & kPowerUpAck) == kPowerUpAck;
  }
  if (st_ == kOk && !powered) st_ = kDbgPowerError;
  return {st_, 0};
}

void Engine::leave_debug() {
  // The pins go back to high impedance: SWD undriven, nRST released. INIT_AP must be
  // repeated in the next session.
  swd_.set_connected(false);
  target_.set_nrst(false);
  mode_ = kModeMass;
  open_aps_.reset();
  select_valid_ = false;
}

Bytes Engine::target_voltage() const {
  const double vtref = target_.vtref_mv() / 1000.0;
  const auto adc0 =
      static_cast<std::uint32_t>(kVrefIntVolts / kProbeSupplyVolts * kAdcFullScale + 0.5);
  const auto adc1 = static_cast<std::uint32_t>(
      std::min(vtref / 2 / kProbeSupplyVolts, 1.0) * kAdcFullScale + 0.5);
  Bytes r(8, 0);
  put32(r, 0, adc0);
  put32(r, 4, adc1);
  return r;
}

Bytes Engine::swd_set_freq(std::uint16_t divisor) {
  for (const auto& d : kV2SwdClocks) {
    if (d.divisor != divisor) continue;
    swd_khz_ = d.khz;
    swd_.set_clock_hz(swd_khz_ * 1000);
    return {kOk, 0};
  }
  return {kFreqNotSupported, 0};
}

Bytes Engine::jtag_set_freq(std::uint16_t divisor) {
  for (const auto& d : kV2JtagClocks) {
    if (d.divisor != divisor) continue;
    jtag_khz_ = d.khz;
    return {kOk, 0};
  }
  return {kFreqNotSupported, 0};
}

Bytes Engine::get_com_freq(bool jtag) const {
  // Status, 7 reserved bytes, the number of frequencies, 3 reserved, then up to ten
  // 32-bit frequencies in kHz.
  const std::span<const std::uint32_t> list =
      jtag ? std::span<const std::uint32_t>(kV3JtagKhz) : std::span<const std::uint32_t>(kV3SwdKhz);
  Bytes r(12 + 4 * kV3MaxFrequencies, 0);
  r[0] = kOk;
  r[8] = static_cast<std::uint8_t>(list.size());
  for (std::size_t i = 0; i < list.size(); ++i)
    put32(r, 12 + 4 * i, list[i]);
  return r;
}

Bytes Engine::set_com_freq(bool jtag, std::uint32_t khz) {
  // The fastest listed frequency not above the request; the slowest if all are.
  const std::span<const std::uint32_t> list =
      jtag ? std::span<const std::uint32_t>(kV3JtagKhz) : std::span<const std::uint32_t>(kV3SwdKhz);
  std::uint32_t chosen = list.back();
  for (std::uint32_t f : list) {
    if (f <= khz) {
      chosen = f;
      break;
    }
  }
  if (jtag) {
    jtag_khz_ = chosen;
  } else {
    swd_khz_ = chosen;
    swd_.set_clock_hz(chosen * 1000);
  }
  Bytes r(8, 0);
  r[0] = kOk;
  put32(r, 4, chosen);
  return r;
}

Bytes Engine::drive_nrst(std::uint8_t how) {
  switch (how) {
    case kNrstLow:
      target_.set_nrst(true);
      break;
    case kNrstHigh:
      target_.set_nrst(false);
      break;
    case kNrstPulse:
      target_.set_nrst(true);
      target_.advance(kNrstPulseLength);
      target_.set_nrst(false);
      break;
    default:
      return {kCmdError, 0};
  }
  return {kOk, 0};
}

Bytes Engine::core_state() {
  begin(true);
  std::uint32_t dhcsr = 0;
  if (!mem_word_read(kDhcsr, dhcsr)) return {st_, 0};
  return {(dhcsr & kSHalt) ? kCoreHalted : kCoreRunning, 0};
}

Bytes Engine::write_dhcsr(std::uint32_t control) {
  begin(true);
  mem_word_write(kDhcsr, control);
  return {st_, 0};
}

bool Engine::core_reg(std::uint8_t regsel, std::uint32_t& value) {
  // ARMv7-M ARM C1.6.3: DCRSR starts the transfer, DHCSR.S_REGRDY says it is done,
  // DCRDR holds the value.
  if (!mem_word_write(kDcrsr, regsel & 0x7Fu)) return false;
  std::uint32_t dhcsr = 0;
  for (unsigned i = 0; i < kRegRdyPolls && mem_word_read(kDhcsr, dhcsr); ++i) {
    if (dhcsr & kSRegRdy) break;
  }
  return mem_word_read(kDcrdr, value);
}

Bytes Engine::read_core_reg(std::uint8_t regsel) {
  begin(true);
  std::uint32_t v = 0;
  core_reg(regsel, v);
  Bytes r(8, 0);
  r[0] = st_;
  put32(r, 4, v);
  return r;
}

Bytes Engine::write_core_reg(std::uint8_t regsel, std::uint32_t value) {
  begin(true);
  if (mem_word_write(kDcrdr, value) && mem_word_write(kDcrsr, (regsel & 0x7Fu) | kRegWnR)) {
    std::uint32_t dhcsr = 0;
    for (unsigned i = 0; i < kRegRdyPolls && mem_word_read(kDhcsr, dhcsr); ++i) {
      if (dhcsr & kSRegRdy) break;
    }
  }
  return {st_, 0};
}

Bytes Engine::read_all_regs() {
  begin(true);
  Bytes r(kAllRegsResponse, 0);
  for (std::size_t i = 0; i < std::size(kAllRegs); ++i) {
    std::uint32_t v = 0;
    if (!core_reg(kAllRegs[i], v)) break;
    put32(r, 4 + 4 * i, v);
  }
  r[0] = st_;
  return r;
}

std::size_t Engine::max_rw8() const {
  return variant_ == StLinkVariant::v3 ? 512 : 64;
}

std::uint32_t Engine::rw_misc_max_items() const {
  // Items one RW_MISC sequence may hold: what fits the firmware's buffers on each line.
  return variant_ == StLinkVariant::v3 ? 1227 : 64;
}

}  // namespace stlink
}  // namespace probefarm::sim
