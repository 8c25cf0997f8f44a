#include "probe/stlink.hpp"

#include <algorithm>
#include <array>
#include <bitset>
#include <chrono>
#include <cstdio>
#include <thread>
#include <type_traits>
#include <vector>

#include "probe/bytes.hpp"
#include "probe/stlink_commands.hpp"
#include "probe/stlink_link.hpp"
#include "probe/transport_fault.hpp"

namespace probefarm::probe {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
namespace st = stlink;

// The firmware already retries a WAIT answer many times before it reports SWD_AP_WAIT or
// SWD_DP_WAIT, so a WAIT that reaches the host means the target is busy for longer (a
// flash operation stalling the bus). The host repeats the command a bounded number of
// times with growing pauses, all within one deadline, then reports DapAck::wait.
constexpr unsigned kWaitAttempts = 12;
constexpr auto kWaitBudget = 100ms;
constexpr auto kFirstWaitPause = 100us;
constexpr auto kMaxWaitPause = 10ms;

// Which register accesses may be repeated after a transport fault (stlink_link.hpp, retry
// policy): DP registers, AP reads but DRW, AP writes to CSW or TAR.
constexpr std::uint8_t kApCsw = 0x00;
constexpr std::uint8_t kApTar = 0x04;
constexpr std::uint8_t kApDrw = 0x0C;

// ADIv5.2 B2.2.1 ABORT: STKCMPCLR | STKERRCLR | WDERRCLR | ORUNERRCLR.
constexpr std::uint32_t kAbortClearAll = 0x1E;

const char* const kUpdateHint =
    "update the probe's firmware with STM32CubeProgrammer (Firmware upgrade) or ST-LinkUpgrade";

std::string kind_label(ProbeKind kind) {
  switch (kind) {
    case ProbeKind::stlink_v2:
      return "ST-LINK/V2";
    case ProbeKind::stlink_v2_1:
      return "ST-LINK/V2-1";
    default:
      return "STLINK-V3";
  }
}

// Runs `attempt` (which returns a status) again while it answers WAIT, within the
// budget above. Returns the last status.
template <class Attempt>
std::uint8_t retry_on_wait(Attempt&& attempt) {
  const auto deadline = Clock::now() + kWaitBudget;
  auto pause = std::chrono::duration_cast<Clock::duration>(kFirstWaitPause);
  for (unsigned n = 1;; ++n) {
    const std::uint8_t status = attempt();
    if (st::classify(status) != st::StatusClass::wait || n >= kWaitAttempts) return status;
    const auto now = Clock::now();
    if (now >= deadline) return status;
    std::this_thread::sleep_for(std::min(pause, deadline - now));
    pause = std::min(pause * 2, std::chrono::duration_cast<Clock::duration>(kMaxWaitPause));
  }
}

class StLink final : public DapProbe, public NativeMemory {
 public:
  StLink(std::unique_ptr<UsbDevice> device, ProbeInfo info)
      : usb_(std::move(device)),
        info_(std::move(info)),
        link_(*usb_, info_.interface_number, label()) {
    read_version();
    leave_other_modes();
  }

  ~StLink() override {
    // Release the pins for the next user; an unplugged probe has nothing to release.
    try {
      disconnect();
    } catch (const Error&) {
    }
  }

  const ProbeInfo& info() const override { return info_; }

  std::uint32_t connect() override {
    require(st::kDapRegisterAccess);
    queue_.clear();
    open_aps_.reset();
    // ENTER runs the JTAG-to-SWD switch and line reset (ADIv5.2 B5.2, B4.3.3), reads
    // DPIDR, clears sticky flags and powers up the debug domain itself.
    const std::uint8_t entered =
        retry_on_wait([&] { return link_.status_of(st::cdb_enter_swd(), "ENTER (SWD)"); });
    if (entered != st::kOk) throw no_target("entering SWD mode", entered);
    connected_ = true;
    std::uint32_t dpidr = 0;
    const std::uint8_t status = retry_on_wait([&] { return read_dap_reg(st::kDpPort, 0, dpidr); });
    if (status != st::kOk) throw no_target("reading DPIDR", status);
    return dpidr;
  }

  void disconnect() override {
    queue_.clear();
    open_aps_.reset();
    if (!connected_) return;
    connected_ = false;
    link_.send_only(st::cdb_exit_debug(), "EXIT");  // no answer
  }

  std::uint32_t set_speed_khz(std::uint32_t khz) override {
    if (version_.stlink >= 3) {
      // The V3 lists what it supports; SET_COM_FREQ answers with the clock it chose.
      std::vector<std::uint8_t> r(st::kGetComFreqSize);
      link_.command(st::cdb_get_com_freq(), r, "GET_COM_FREQ");
      check(r[0], "GET_COM_FREQ");
      const auto list = st::parse_com_freq(r);
      const std::uint32_t want = st::pick_frequency(list, khz);
      if (want == 0) throw Error(ErrorCategory::probe_io, label() + " lists no SWD clock");
      std::vector<std::uint8_t> s(st::kSetComFreqSize);
      link_.command(st::cdb_set_com_freq(want), s, "SET_COM_FREQ");
      check(s[0], "SET_COM_FREQ");
      const std::uint32_t used = load_le32(s, 4);
      return used != 0 ? used : want;
    }
    const st::SwdDivisor d = st::pick_v2_divisor(khz);
    check(link_.status_of(st::cdb_swd_set_freq(d.divisor), "SWD_SET_FREQ"), "SWD_SET_FREQ");
    return d.khz;
  }

  void set_nrst(bool asserted) override {
    check(link_.status_of(st::cdb_drive_nrst(asserted), "DRIVE_NRST"), "DRIVE_NRST");
  }

  int target_voltage_mv() override {
    std::vector<std::uint8_t> r(st::kTargetVoltageSize);
    // Two 12-bit ADC readings (UM1075 does not document them; every host reads them so):
    // larger values are a garbled answer.
    link_.command(st::cdb_get_target_voltage(), r, "GET_TARGET_VOLTAGE",
                  [](std::span<const std::uint8_t> a) {
                    return load_le32(a, 0) < 0x1000 && load_le32(a, 4) < 0x1000;
                  });
    return st::parse_target_voltage_mv(r);
  }

  void queue_dp_read(std::uint8_t addr, std::uint32_t* out, std::uint8_t bank) override {
    queue_.push_back(Op{st::kDpPort, dp_address(addr, bank), 0, out, true});
  }
  void queue_dp_write(std::uint8_t addr, std::uint32_t value, std::uint8_t bank) override {
    queue_.push_back(Op{st::kDpPort, dp_address(addr, bank), value, nullptr, false});
  }
  void queue_ap_read(std::uint8_t ap, std::uint8_t addr, std::uint32_t* out) override {
    queue_.push_back(Op{ap, static_cast<std::uint16_t>(addr & 0xFC), 0, out, true});
  }
  void queue_ap_write(std::uint8_t ap, std::uint8_t addr, std::uint32_t value) override {
    queue_.push_back(Op{ap, static_cast<std::uint16_t>(addr & 0xFC), value, nullptr, false});
  }
  // The firmware has no register block command: a block is that many single accesses,
  // which is correct but slow. Memory goes faster through native_memory().
  void queue_ap_read_block(std::uint8_t ap, std::uint8_t addr,
                           std::span<std::uint32_t> out) override {
    for (auto& word : out)
      queue_ap_read(ap, addr, &word);
  }
  void queue_ap_write_block(std::uint8_t ap, std::uint8_t addr,
                            std::span<const std::uint32_t> data) override {
    for (std::uint32_t word : data)
      queue_ap_write(ap, addr, word);
  }

  DapFlushResult flush() override {
    std::vector<Op> ops = std::move(queue_);
    queue_.clear();
    if (ops.empty()) return {};
    require_connected();
    DapFlushResult result;
    for (const Op& op : ops) {
      if (op.port != st::kDpPort) open_ap(static_cast<std::uint8_t>(op.port));
      std::uint32_t value = 0;
      const std::uint8_t status = retry_on_wait([&] {
        return op.read ? read_dap_reg(op.port, op.addr, value)
                       : write_dap_reg(op.port, op.addr, op.value);
      });
      const st::StatusClass c = st::classify(status);
      if (c == st::StatusClass::probe_error) {
        throw Error(ErrorCategory::probe_io,
                    label() + " refused " + (op.read ? "READ_DAP_REG" : "WRITE_DAP_REG") + " (" +
                        where(op) + "): status " + st::describe_status(status));
      }
      if (c != st::StatusClass::ok) {
        result.ack = st::dap_ack(c);
        return result;
      }
      if (op.read && op.out) *op.out = value;
      ++result.completed;
    }
    return result;
  }

  NativeMemory* native_memory() override { return this; }

  // NativeMemory
  void read(std::uint8_t ap, std::uint32_t address, std::span<std::uint8_t> out,
            unsigned width) override {
    transfer_memory(false, ap, address, out.size(), width,
                    [&](std::uint32_t at, std::size_t done, std::size_t n) {
                      return read_chunk(ap, at, out.subspan(done, n), width);
                    });
  }

  // WriteCheck::at_end: each GETLASTRWSTATUS2 costs two USB transfers after the target
  // has taken the data, a third of a 1 KiB chunk's cost on a full-speed probe. The status
  // of the last command still reports a fault that persists (no power, no target).
  void write(std::uint8_t ap, std::uint32_t address, std::span<const std::uint8_t> data,
             unsigned width, WriteCheck check) override {
    transfer_memory(true, ap, address, data.size(), width,
                    [&](std::uint32_t at, std::size_t done, std::size_t n) {
                      const bool ask = check == WriteCheck::each_command || done + n == data.size();
                      return write_chunk(ap, at, data.subspan(done, n), width, ask);
                    });
  }

  std::uint32_t read_word(std::uint32_t address) override {
    check_memory_request(0, address, 4, 32);
    std::array<std::uint8_t, st::kDapRegReadSize> r{};
    const std::uint8_t status = retry_on_wait([&] {
      // It names its address: repeatable, like READMEM.
      link_.command(st::cdb_read_debug32(address), r, "READDEBUG_32BIT", answer_plausible, true);
      return r[0];
    });
    fault_address_ = address;
    finish_memory(status, false, 0, address, 4, 32);
    return load_le32(r, 4);
  }

  void write_word(std::uint32_t address, std::uint32_t value) override {
    check_memory_request(0, address, 4, 32);
    const std::uint8_t status = retry_on_wait([&] {
      return link_.status_of(st::cdb_write_debug32(address, value), "WRITEDEBUG_32BIT", false);
    });
    fault_address_ = address;
    finish_memory(status, true, 0, address, 4, 32);
  }

  std::uint32_t read_core_register(std::uint8_t regsel) override {
    require_connected();
    std::array<std::uint8_t, st::kDapRegReadSize> r{};
    const std::uint8_t status = retry_on_wait([&] {
      link_.command(st::cdb_read_reg(regsel), r, "READREG", answer_plausible, true);
      return r[0];
    });
    finish_register(status, "reading", regsel);
    return load_le32(r, 4);
  }

  void write_core_register(std::uint8_t regsel, std::uint32_t value) override {
    require_connected();
    // Writing the same value again is harmless: repeatable.
    const std::uint8_t status = retry_on_wait(
        [&] { return link_.status_of(st::cdb_write_reg(regsel, value), "WRITEREG", true); });
    finish_register(status, "writing", regsel);
  }

 private:
  struct Op {
    std::uint16_t port;  // AP number or kDpPort
    std::uint16_t addr;
    std::uint32_t value;
    std::uint32_t* out;
    bool read;
  };

  std::string label() const { return kind_label(info_.kind) + " " + info_.serial; }

  // ---- transport ----

  void check(std::uint8_t status, const char* what) {
    if (status == st::kOk) return;
    throw Error(ErrorCategory::probe_io,
                label() + " refused " + what + ": status " + st::describe_status(status));
  }

  // ---- identity and modes ----

  void read_version() {
    // The answer repeats the probe's USB VID and PID: a check that it is not garbled.
    const UsbDeviceDescriptor& d = usb_->descriptor();
    const bool x_is_msd = info_.kind == ProbeKind::stlink_v2_1;
    std::array<std::uint8_t, st::kGetVersionSize> r{};
    link_.command(st::cdb_get_version(), r, "GET_VERSION", [&](std::span<const std::uint8_t> a) {
      const st::Version v = st::parse_version(a, x_is_msd);
      return v.vid == d.vid && v.pid == d.pid;
    });
    version_ = st::parse_version(r, x_is_msd);
    if (version_.stlink >= 3) {
      std::array<std::uint8_t, st::kGetVersionExSize> x{};
      link_.command(st::cdb_get_version_ex(), x, "GET_VERSION_EX",
                    [&](std::span<const std::uint8_t> a) {
                      const st::Version v = st::parse_version_ex(a);
                      return v.vid == d.vid && v.pid == d.pid;
                    });
      version_ = st::parse_version_ex(x);
    }
    info_.firmware_version = version_.text();
  }

  void leave_other_modes() {
    std::array<std::uint8_t, 2> mode{};
    link_.command(st::cdb_get_current_mode(), mode, "GET_CURRENT_MODE",
                  [](std::span<const std::uint8_t> a) { return a[0] <= 4 && a[1] == 0; });
    // None of the exits is answered.
    switch (mode[0]) {
      case st::kModeDfu:
        link_.send_only(st::cdb_dfu_exit(), "DFU_EXIT");
        break;
      case st::kModeDebug:
        link_.send_only(st::cdb_exit_debug(), "EXIT");
        break;
      case st::kModeSwim:
        link_.send_only(st::cdb_swim_exit(), "SWIM_EXIT");
        break;
      default:
        break;
    }
  }

  void require(const st::FirmwareMinimum& m) const {
    if (st::supports(version_, m)) return;
    throw Error(ErrorCategory::probe_io,
                std::string(m.what) + " needs ST-Link firmware " + st::minimum_text(version_, m) +
                    " or later; " + label() + " has " + info_.firmware_version,
                kUpdateHint);
  }

  void require_connected() const {
    if (connected_) return;
    throw Error(ErrorCategory::usage, label() + " is not connected to a target",
                "call connect() first");
  }

  Error no_target(const char* what, std::uint8_t status) {
    if (st::classify(status) == st::StatusClass::wait) {
      // The firmware retried, then this driver backed off (retry_on_wait): a WAIT storm.
      return Error(ErrorCategory::timeout,
                   label() + ": the target kept answering WAIT " + what + " (status " +
                       st::describe_status(status) + ", after " + std::to_string(kWaitAttempts) +
                       " tries with backoff): a WAIT storm",
                   "the target's bus is stalled: reset or power-cycle the target, then run the "
                   "command again");
    }
    std::string hint =
        "check the SWD wiring (SWDIO, SWCLK, GND) and that the target is powered; if its "
        "firmware turns the SWD pins off, try --connect-under-reset";
    try {
      const int mv = target_voltage_mv();
      if (mv >= 0) hint += " (VTref reads " + std::to_string(mv) + " mV)";
    } catch (const Error&) {
    }
    return Error(
        ErrorCategory::target_not_responding,
        label() + ": no target answered " + what + " (status " + st::describe_status(status) + ")",
        hint);
  }

  // ---- DAP registers ----

  std::uint16_t dp_address(std::uint8_t addr, std::uint8_t bank) {
    if (bank != 0) require(st::kBankedDp);
    return static_cast<std::uint16_t>((bank & 0xF) << 4 | (addr & 0xC));
  }

  std::string where(const Op& op) const {
    char buf[48];
    if (op.port == st::kDpPort)
      std::snprintf(buf, sizeof buf, "DP register 0x%X bank %u", op.addr & 0xC, op.addr >> 4);
    else
      std::snprintf(buf, sizeof buf, "AP %u register 0x%02X", op.port, op.addr);
    return buf;
  }

  // Firmware that knows several APs must be told about each before it accesses it;
  // older firmware only ever talks to AP0 and has no INIT_AP.
  void open_ap(std::uint8_t ap) {
    if (open_aps_[ap] || !st::supports(version_, st::kMultiAp)) return;
    check(link_.status_of(st::cdb_init_ap(ap), "INIT_AP"), "INIT_AP");
    open_aps_.set(ap);
  }

  // Repeatable (retry policy) unless it reads DRW, which moves TAR.
  std::uint8_t read_dap_reg(std::uint16_t port, std::uint16_t addr, std::uint32_t& value) {
    std::array<std::uint8_t, st::kDapRegReadSize> r{};
    const bool may_repeat = port == st::kDpPort || addr != kApDrw;
    link_.command(st::cdb_read_dap_reg(port, addr), r, "READ_DAP_REG", answer_plausible,
                  may_repeat);
    value = load_le32(r, 4);
    return r[0];
  }

  // Repeatable for DP registers and MEM-AP CSW/TAR only.
  std::uint8_t write_dap_reg(std::uint16_t port, std::uint16_t addr, std::uint32_t value) {
    const bool may_repeat = port == st::kDpPort || addr == kApCsw || addr == kApTar;
    return link_.status_of(st::cdb_write_dap_reg(port, addr, value), "WRITE_DAP_REG", may_repeat);
  }

  // ---- memory ----

  // Validates a NativeMemory request; returns the per-command byte limit for its width.
  std::size_t check_memory_request(std::uint8_t ap, std::uint32_t address, std::size_t size,
                                   unsigned width) {
    if (width != 8 && width != 16 && width != 32) {
      throw Error(ErrorCategory::usage,
                  "memory access width " + std::to_string(width) + " (must be 8, 16 or 32)");
    }
    const unsigned bytes = width / 8;
    if (address % bytes != 0 || size % bytes != 0) {
      throw Error(ErrorCategory::usage,
                  std::to_string(width) + "-bit access of " + std::to_string(size) + " bytes at " +
                      hex32(address) + " is not aligned to " + std::to_string(bytes) + " bytes");
    }
    require_connected();
    require(st::kDapRegisterAccess);
    if (width == 16) require(st::kMemory16Bit);
    if (ap != 0) require(st::kMultiAp);
    open_ap(ap);
    return width == 8 ? st::max_rw8(version_) : st::kMaxRw16_32;
  }

  // Moves `size` bytes at `address` in memory commands within the probe's limits;
  // `chunk(at, done, n)` runs one command for bytes [done, done + n) and returns its status.
  template <class Chunk>
  void transfer_memory(bool write, std::uint8_t ap, std::uint32_t address, std::size_t size,
                       unsigned width, Chunk&& chunk) {
    const std::size_t limit = check_memory_request(ap, address, size, width);
    for (std::size_t done = 0; done < size;) {
      const auto at = static_cast<std::uint32_t>(address + done);
      const std::size_t n = st::chunk_size(at, size - done, limit);
      finish_memory(retry_on_wait([&] { return chunk(at, done, n); }), write, ap, at, n, width);
      done += n;
    }
  }

  // READMEM names its address, so the whole chunk (command, data, status) is repeatable.
  // Its data phase has no framing to check: a damaged data packet that keeps its length
  // cannot be told from data (real USB has a CRC on every packet; a garbled status that
  // follows is caught). Flash verification computes CRCs on the target, not from this.
  std::uint8_t read_chunk(std::uint8_t ap, std::uint32_t address, std::span<std::uint8_t> out,
                          unsigned width) {
    const std::string what = "READMEM at " + hex32(address);
    return link_.with_retry(true, what, [&] {
      link_.send(st::cdb_memory(false, width, address, static_cast<std::uint16_t>(out.size()), ap));
      // The firmware never sends a one-byte packet: a single byte comes padded to two.
      if (out.size() == 1) {
        std::array<std::uint8_t, 2> two{};
        link_.receive(two, st::kDataTimeout, "READMEM_8BIT");
        out[0] = two[0];
      } else {
        link_.receive(out, st::kDataTimeout, "READMEM");
      }
      return rw_status_once();
    });
  }

  // WRITEMEM is never repeated (retry policy): a fault anywhere in it is Error(probe_io).
  // Without `ask_status` the command counts as OK here; a later status query tells.
  std::uint8_t write_chunk(std::uint8_t ap, std::uint32_t address,
                           std::span<const std::uint8_t> data, unsigned width, bool ask_status) {
    const std::string what =
        "WRITEMEM of " + std::to_string(data.size()) + " bytes at " + hex32(address);
    return link_.with_retry(false, what, [&] {
      link_.send(st::cdb_memory(true, width, address, static_cast<std::uint16_t>(data.size()), ap));
      link_.send_bytes(data, st::kDataTimeout);
      return ask_status ? rw_status_once() : std::uint8_t{st::kOk};
    });
  }

  // An answer that starts with a status byte.
  static bool answer_plausible(std::span<const std::uint8_t> a) {
    return st::plausible_status(a[0]);
  }

  void finish_register(std::uint8_t status, const char* verb, std::uint8_t regsel) {
    const st::StatusClass c = st::classify(status);
    if (c == st::StatusClass::ok) return;
    const std::string what = std::string(verb) + " core register " + std::to_string(regsel);
    if (c == st::StatusClass::probe_error) {
      throw Error(ErrorCategory::probe_io,
                  label() + " refused " + what + ": status " + st::describe_status(status));
    }
    // Like finish_memory: leave the DAP without sticky flags for what comes next.
    if (c != st::StatusClass::wait) write_dap_reg(st::kDpPort, 0, kAbortClearAll);
    throw no_target(what.c_str(), status);
  }

  // GETLASTRWSTATUS2 inside an attempt of the caller (no retry of its own).
  std::uint8_t rw_status_once() {
    std::array<std::uint8_t, st::kRwStatus2Size> r{};
    link_.send(st::cdb_get_last_rw_status2());
    link_.receive(r, st::kCommandTimeout, "GETLASTRWSTATUS2");
    if (!st::plausible_status(r[0]))
      throw TransportFault{label() + " answered GETLASTRWSTATUS2 with a garbled answer"};
    const st::RwStatus s = st::parse_rw_status2(r);
    fault_address_ = s.fault_address;
    return s.status;
  }

  void finish_memory(std::uint8_t status, bool write, std::uint8_t ap, std::uint32_t address,
                     std::size_t size, unsigned width) {
    const st::StatusClass c = st::classify(status);
    if (c == st::StatusClass::ok) return;
    const std::string op = std::string(write ? "writing " : "reading ") + std::to_string(size) +
                           " bytes (" + std::to_string(width) + "-bit) at " + hex32(address) +
                           " through AP " + std::to_string(ap);
    if (c == st::StatusClass::probe_error) {
      throw Error(ErrorCategory::probe_io,
                  label() + " refused " + op + ": status " + st::describe_status(status));
    }
    // The firmware clears sticky flags after its own transfers; clearing them again is
    // harmless and leaves the DAP clean for whatever the caller does next.
    if (c != st::StatusClass::wait) write_dap_reg(st::kDpPort, 0, kAbortClearAll);
    const std::uint32_t failed =
        fault_address_ >= address && fault_address_ < address + size ? fault_address_ : address;
    std::string what;
    switch (c) {
      case st::StatusClass::wait:
        what = "the target kept answering WAIT";
        break;
      case st::StatusClass::fault:
        what = "the target answered FAULT at " + hex32(failed);
        break;
      case st::StatusClass::no_response: {
        what = "the target did not answer at " + hex32(failed);
        // Power lost mid-operation is the usual cause; VTref says so.
        int mv = -1;
        try {
          mv = target_voltage_mv();
        } catch (const Error&) {
        }
        if (mv >= 0) {
          char v[32];
          std::snprintf(v, sizeof v, " (VTref %d.%02d V)", mv / 1000, (mv % 1000) / 10);
          if (mv < 1000) {
            throw Error(ErrorCategory::target_not_responding,
                        "target power lost during " + op + v + ": no answer at " + hex32(failed),
                        "restore the target's supply and run the command again");
          }
          what += v;
        }
        break;
      }
      default:
        what = "SWD protocol error at " + hex32(failed);
        break;
    }
    throw Error(ErrorCategory::target_not_responding,
                label() + ": " + op + ": " + what + " (status " + st::describe_status(status) + ")",
                c == st::StatusClass::fault
                    ? "the address may be unmapped, or its peripheral not clocked"
                    : "check that the target is powered and not held in reset; if its "
                      "firmware turns the SWD pins off, try --connect-under-reset");
  }

  std::unique_ptr<UsbDevice> usb_;
  ProbeInfo info_;
  st::Link link_;  // after usb_ and info_: built from them
  st::Version version_;
  bool connected_ = false;
  std::bitset<256> open_aps_;  // APs INIT_AP has announced in this session
  std::vector<Op> queue_;
  std::uint32_t fault_address_ = 0;  // from the last GETLASTRWSTATUS2
};

}  // namespace

std::unique_ptr<DapProbe> make_stlink(std::unique_ptr<UsbDevice> device, ProbeInfo info) {
  return std::make_unique<StLink>(std::move(device), std::move(info));
}

}  // namespace probefarm::probe
