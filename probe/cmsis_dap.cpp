// The CMSIS-DAP driver. Arm CMSIS-DAP specification v2.1
// (arm-software.github.io/CMSIS_5/DAP/html); section names are cited where a byte comes
// from. Packet building and parsing live in cmsis_dap_packets.hpp.
#include "probe/cmsis_dap.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <optional>
#include <type_traits>
#include <vector>

#include "probe/bytes.hpp"
#include "probe/cmsis_dap_packets.hpp"
#include "probe/error.hpp"
#include "probe/transport_fault.hpp"

namespace probefarm::probe {
namespace {

using namespace std::chrono_literals;
using namespace cmsis_dap;

// Every USB call has a deadline (DESIGN.md); a probe that takes longer than this for one
// packet is hung. The longest thing a packet asks of the probe is DAP_SWJ_Pins' wait, which
// is kept well below it.
constexpr std::chrono::milliseconds kUsbTimeout = 1000ms;

// Transport faults (a packet lost, STALLed or garbled on the way) are retried this many
// times in all, each after a resynchronisation, when repeating the command is safe (see
// "Retry policy" below); a probe that failed that often is given up on.
constexpr unsigned kTransportAttempts = 3;

// DAP_TransferConfigure: WAIT retries before the probe gives up on a transfer. A flash
// write can stall the AHB for a while; at 1 MHz one retry costs ~50 µs, so 1000 retries
// are ~50 ms, far below the USB timeout. Match retries are unused (no match reads).
constexpr std::uint16_t kWaitRetry = 1000;
constexpr std::uint16_t kMatchRetry = 100;

// The SWD clock before anyone asks for another: what most probes and targets manage.
constexpr std::uint32_t kDefaultSpeedKhz = 1000;
// DAP_SWJ_Clock takes Hz in 32 bits.
constexpr std::uint32_t kMaxSpeedKhz = 0xFFFFFFFFu / 1000;

// DAP_SWJ_Pins bit 7: nRESET. How long the probe may wait for the pin to read back what was
// driven (a board's reset capacitor or supervisor), in µs; the spec allows up to 3 s.
constexpr std::uint8_t kPinNreset = 0x80;
constexpr std::uint32_t kNresetWaitUs = 100'000;

// HID 1.11 7.2 (class requests): SET_REPORT, report type Output (2) in wValue's high byte.
// Used only when a v1 probe's HID interface has no interrupt OUT endpoint.
constexpr std::uint8_t kHidSetReport = 0x09;
constexpr std::uint16_t kHidReportOutput = 0x0200;

// SELECT fields, ADIv5.2 B2.2.9: APSEL [31:24], APBANKSEL [7:4], DPBANKSEL [3:0].
constexpr std::uint32_t kSelectDpBankMask = 0x0000000F;

// MEM-AP registers (ADIv5.2 C2.6): CSW and TAR writes set state and can be repeated; DRW
// and the banked data registers BD0..BD3 (0x10..0x1C) reach memory.
constexpr std::uint8_t kApCsw = 0x00;
constexpr std::uint8_t kApTar = 0x04;
constexpr std::uint8_t kApDrw = 0x0C;

// Retry policy. A packet can be lost on the way out (the probe never ran it) or on the way
// back (the probe ran it and its response is gone); a STALL or a garbled response leaves
// the same doubt. The host cannot tell which, so a command is sent again only when running
// it twice does the same as running it once:
// - every command but DAP_Transfer/DAP_TransferBlock (DAP_Info, DAP_Connect, clock, pins,
//   sequences, configuration) sets state and is repeatable;
// - a DAP_Transfer run is repeatable when it holds only reads, DP writes (SELECT, ABORT,
//   CTRL/STAT) and MEM-AP CSW/TAR writes, and every DRW read follows a TAR write of the
//   same run (a DRW read moves TAR by auto-increment, ADIv5.2 C2.2.2);
// - a run with any other AP write (DRW, BDn: memory such as FLASH_KEYR, FLASH_CR or the
//   loader's ring buffer) is never re-sent: the writes may have happened, and repeating
//   them is not idempotent in general. It ends in Error(probe_io) naming the fault.
// Before a re-send the stream is resynchronised (resync()): responses the probe still owes
// are read and dropped until the answer to a fresh DAP_Delay marker arrives.
bool repeatable(std::span<const Access> accesses) {
  std::vector<std::uint8_t> tar_written;  // APs whose TAR this run has written
  for (const Access& a : accesses) {
    if (!a.ap) continue;
    const auto ap = static_cast<std::uint8_t>(a.reg_key >> 8);
    const auto reg = static_cast<std::uint8_t>(a.reg_key & 0xFF);
    const bool tar_known =
        std::find(tar_written.begin(), tar_written.end(), ap) != tar_written.end();
    if (!a.read) {
      if (reg == kApTar) tar_written.push_back(ap);
      if (reg != kApCsw && reg != kApTar) return false;
    } else if (reg == kApDrw && !tar_known) {
      return false;
    }
  }
  return true;
}

std::string command_name(std::uint8_t id) {
  switch (id) {
    case kInfo:
      return "DAP_Info";
    case kConnect:
      return "DAP_Connect";
    case kDisconnect:
      return "DAP_Disconnect";
    case kTransferConfigure:
      return "DAP_TransferConfigure";
    case kSwjPins:
      return "DAP_SWJ_Pins";
    case kSwjClock:
      return "DAP_SWJ_Clock";
    case kSwjSequence:
      return "DAP_SWJ_Sequence";
    case kSwdConfigure:
      return "DAP_SWD_Configure";
    case kDelay:
      return "DAP_Delay";
    default:
      return "command " + std::to_string(id);
  }
}

class CmsisDap final : public DapProbe {
 public:
  CmsisDap(std::unique_ptr<UsbDevice> device, ProbeInfo info)
      : device_(std::move(device)), info_(std::move(info)) {
    find_endpoints();
    // A program that died in the middle of a session (a crash, SIGKILL) can leave responses
    // in the probe's queue; they would be taken for the answers to this session's first
    // commands. One round trip clears them.
    // A lost or garbled transfer here is retried like any repeatable command.
    std::string fault;
    for (unsigned n = 0; n < kTransportAttempts; ++n) {
      try {
        resync(255);
        fault.clear();
        break;
      } catch (const TransportFault& f) {
        if (fault.empty()) fault = f.message;
      }
    }
    if (!fault.empty())
      throw Error(ErrorCategory::probe_io, "probe " + label() + " does not answer: " + fault,
                  "check the probe's USB cable and hub, replug the probe, and run the command "
                  "again");
    read_info();
  }

  ~CmsisDap() override {
    // Leave the pins released for whoever uses the probe next; a destructor cannot report
    // a failure, and an unplugged probe has nothing to release.
    if (!connected_) return;
    try {
      disconnect();
    } catch (const Error&) {
    }
  }

  const ProbeInfo& info() const override { return info_; }

  std::uint32_t connect() override {
    if (!swd_capable_)
      throw Error(ErrorCategory::usage, "probe " + label() + " does not support SWD",
                  "use a probe whose CMSIS-DAP firmware has SWD (DAP_Info capabilities)");
    // DAP_Connect, port 1 = SWD; the answer is the port now in use, 0 = failed.
    auto r = command({kConnect, 1}, 2);
    if (r[1] != 1)
      throw Error(ErrorCategory::probe_io,
                  "probe " + label() + " refused to switch to SWD (DAP_Connect answered port " +
                      std::to_string(r[1]) + ")",
                  "reconnect the probe; another program may be using it");
    connected_ = true;
    send_clock(speed_khz_);
    // DAP_TransferConfigure: idle cycles 0, WAIT retry, match retry (16-bit each).
    check_status(
        command({kTransferConfigure, 0, static_cast<std::uint8_t>(kWaitRetry),
                 static_cast<std::uint8_t>(kWaitRetry >> 8), static_cast<std::uint8_t>(kMatchRetry),
                 static_cast<std::uint8_t>(kMatchRetry >> 8)},
                2),
        "DAP_TransferConfigure");
    // DAP_SWD_Configure: turnaround 1 clock (bits 1:0 = 0), no data phase on WAIT/FAULT
    // (bit 2 = 0): the SW-DP defaults (ADIv5.2 B4.1.4, DLCR.TURNROUND reset value).
    check_status(command({kSwdConfigure, 0x00}, 2), "DAP_SWD_Configure");
    // DAP_SWJ_Sequence, bits sent LSB first. ADIv5.2 B5.2.2 "JTAG to SWD switching": a line
    // reset (at least 50 clocks with SWDIO high), the 16-bit sequence 0xE79E, another line
    // reset, then at least 2 idle clocks (SWDIO low) before the first packet (B4.3.3).
    std::vector<std::uint8_t> seq = {kSwjSequence, 0};
    seq.insert(seq.end(), 7, 0xFF);  // 56 ones
    seq.insert(seq.end(), {0x9E, 0xE7});
    seq.insert(seq.end(), 7, 0xFF);  // 56 ones
    seq.push_back(0x00);             // 8 idle clocks
    seq[1] = static_cast<std::uint8_t>((seq.size() - 2) * 8);
    check_status(command(seq, 2), "DAP_SWJ_Sequence");

    // After a line reset the DP answers only a DPIDR read (B4.3.3), and SELECT is unknown.
    select_.reset();
    queue_.clear();
    std::uint32_t dpidr = 0;
    std::vector<Access> read_id = {Access{false, true, kDpDpidr, 0, &dpidr, true, 0}};
    DapFlushResult res = run(read_id, std::nullopt);
    if (!res.ok())
      throw Error(ErrorCategory::target_not_responding,
                  std::string("the target does not answer on probe ") + label() +
                      ": reading DPIDR got " + std::string(dap_ack_name(res.ack)),
                  "check that the target is powered (VTref), that SWDIO, SWCLK and GND are "
                  "connected, and that the firmware does not turn the SWD pins off (try "
                  "--connect-under-reset)");
    return dpidr;
  }

  void disconnect() override {
    // DAP_Disconnect answers DAP_OK whether or not it was connected.
    auto r = command({kDisconnect}, 2);
    connected_ = false;
    select_.reset();
    check_status(r, "DAP_Disconnect");
  }

  std::uint32_t set_speed_khz(std::uint32_t khz) override {
    if (khz == 0)
      throw Error(ErrorCategory::usage, "an SWD clock of 0 kHz",
                  "give the speed in kHz, e.g. 1000");
    khz = std::min(khz, kMaxSpeedKhz);
    send_clock(khz);
    // The firmware picks its own divider and cannot say which: the request is the answer.
    speed_khz_ = khz;
    return khz;
  }

  void set_nrst(bool asserted) override {
    // DAP_SWJ_Pins: output value, select mask, wait time (µs). nRESET is open drain on
    // the probe: writing 0 pulls it low, writing 1 releases it.
    std::vector<std::uint8_t> req = {kSwjPins, static_cast<std::uint8_t>(asserted ? 0 : kPinNreset),
                                     kPinNreset};
    append_le32(req, kNresetWaitUs);
    command(req, 2);  // the answer is the pin state read back, nothing to check
  }

  int target_voltage_mv() override {
    // The standard command set has no VTref measurement.
    return -1;
  }

  void queue_dp_read(std::uint8_t addr, std::uint32_t* out, std::uint8_t bank) override {
    queue_dp(addr, bank);
    queue_.push_back(Access{false, true, static_cast<std::uint8_t>(addr & 0x0C), 0, out, true, 0});
  }

  void queue_dp_write(std::uint8_t addr, std::uint32_t value, std::uint8_t bank) override {
    queue_dp(addr, bank);
    queue_.push_back(
        Access{false, false, static_cast<std::uint8_t>(addr & 0x0C), value, nullptr, true, 0});
    // A caller that writes SELECT itself sets what the cache must believe.
    if ((addr & 0x0C) == kDpSelect) queued_select_ = value;
  }

  void queue_ap_read(std::uint8_t ap, std::uint8_t addr, std::uint32_t* out) override {
    queue_ap(ap, addr);
    queue_.push_back(ap_access(ap, addr, true, 0, out));
  }

  void queue_ap_write(std::uint8_t ap, std::uint8_t addr, std::uint32_t value) override {
    queue_ap(ap, addr);
    queue_.push_back(ap_access(ap, addr, false, value, nullptr));
  }

  void queue_ap_read_block(std::uint8_t ap, std::uint8_t addr,
                           std::span<std::uint32_t> out) override {
    if (out.empty()) return;
    queue_ap(ap, addr);
    for (auto& word : out)
      queue_.push_back(ap_access(ap, addr, true, 0, &word));
  }

  void queue_ap_write_block(std::uint8_t ap, std::uint8_t addr,
                            std::span<const std::uint32_t> data) override {
    if (data.empty()) return;
    queue_ap(ap, addr);
    for (auto word : data)
      queue_.push_back(ap_access(ap, addr, false, word, nullptr));
  }

  DapFlushResult flush() override {
    if (queue_.empty()) return {};
    std::vector<Access> accesses = std::move(queue_);
    queue_.clear();
    const std::optional<std::uint32_t> after = queued_select_;
    DapFlushResult result;
    try {
      result = run(accesses, select_);
    } catch (...) {
      select_.reset();
      throw;
    }
    // After a failure it is unknown whether the SELECT writes before it took effect.
    if (result.ok())
      select_ = after;
    else
      select_.reset();
    return result;
  }

 private:
  const std::string& label() const { return device_->label(); }

  // The interface and its endpoints: v1 a HID interface with interrupt endpoints (CMSIS-DAP
  // "CMSIS-DAP v1 with USB HID"), v2 a vendor interface whose first bulk OUT and IN
  // endpoints carry commands and responses ("CMSIS-DAP v2 with WinUSB").
  void find_endpoints() {
    v1_ = info_.kind == ProbeKind::cmsis_dap_v1;
    const UsbInterface* itf = nullptr;
    for (const auto& i : device_->configuration().interfaces)
      if (i.number == info_.interface_number && i.alt_setting == 0) itf = &i;
    if (!itf)
      throw Error(
          ErrorCategory::probe_io,
          "probe " + label() + " has no interface " + std::to_string(info_.interface_number),
          "list the probes again; the device may have changed");
    const auto type = v1_ ? UsbTransferType::interrupt : UsbTransferType::bulk;
    const UsbEndpoint* in = itf->find_endpoint(type, true);
    const UsbEndpoint* out = itf->find_endpoint(type, false);
    if (!in || (!out && !v1_))
      throw Error(ErrorCategory::probe_io,
                  "probe " + label() + ": CMSIS-DAP interface " +
                      std::to_string(info_.interface_number) + " lacks its " +
                      (v1_ ? "interrupt" : "bulk") + " endpoints",
                  "this does not look like a CMSIS-DAP probe");
    ep_in_ = in->address;
    // A HID interface may have only the IN endpoint; output reports then go by SET_REPORT.
    set_report_ = !out;
    ep_out_ = out ? out->address : 0;
    // Until DAP_Info says otherwise, a packet is one endpoint packet (v1: one report).
    packet_size_ = std::max<std::size_t>(in->max_packet_size, 64);
  }

  // DAP_Info: the answer is [0x00, length, data…].
  std::vector<std::uint8_t> dap_info(std::uint8_t id) {
    // A length beyond the response is a garbled answer: retried like any transport fault.
    return with_retry(true, "DAP_Info", [&] {
      auto r = exchange({kInfo, id}, 2);
      const std::size_t len = r[1];
      if (r.size() < 2 + len)
        throw TransportFault{"probe " + label() + " sent a garbled DAP_Info response (length " +
                             std::to_string(len) + " in " + std::to_string(r.size()) + " bytes)"};
      return std::vector<std::uint8_t>(r.begin() + 2,
                                       r.begin() + 2 + static_cast<std::ptrdiff_t>(len));
    });
  }

  std::string dap_info_string(std::uint8_t id) {
    auto b = dap_info(id);
    std::string s(b.begin(), b.end());
    s.erase(std::find(s.begin(), s.end(), '\0'), s.end());  // strings are NUL-terminated
    return s;
  }

  void read_info() {
    auto caps = dap_info(kInfoCapabilities);
    swd_capable_ = !caps.empty() && (caps[0] & kCapabilitySwd);
    auto size = dap_info(kInfoPacketSize);
    auto count = dap_info(kInfoPacketCount);
    if (size.size() != 2 || count.size() != 1 || count[0] == 0 || (size[0] | size[1] << 8) < 64)
      throw Error(ErrorCategory::probe_io,
                  "probe " + label() + " reports no usable packet size and count (DAP_Info)",
                  "update the probe firmware");
    packet_size_ = static_cast<std::size_t>(size[0] | size[1] << 8);
    packet_count_ = count[0];
    const std::string firmware = dap_info_string(kInfoFirmwareVersion);  // 2.1+ only
    const std::string protocol = dap_info_string(kInfoProtocolVersion);
    info_.firmware_version =
        firmware.empty() ? "CMSIS-DAP " + protocol : firmware + " (CMSIS-DAP " + protocol + ")";
  }

  // v1: exactly one report of packet size, zero-padded, without a report ID (the report
  // descriptor declares none). v2: the command bytes as they are. USB failures other than
  // an unplug become TransportFault.
  void send(std::span<const std::uint8_t> request) {
    if (request.size() > packet_size_)
      throw Error(ErrorCategory::internal, "CMSIS-DAP request larger than the packet size");
    try {
      if (!v1_) {
        device_->bulk_write(ep_out_, request, kUsbTimeout);
        return;
      }
      std::vector<std::uint8_t> report(request.begin(), request.end());
      report.resize(packet_size_);
      if (set_report_) {
        UsbControlSetup setup{0x21, kHidSetReport, kHidReportOutput,
                              static_cast<std::uint16_t>(info_.interface_number)};
        device_->control_transfer(setup, report, kUsbTimeout);
      } else {
        device_->interrupt_write(ep_out_, report, kUsbTimeout);
      }
    } catch (const Error& e) {
      if (is_unplug(e)) throw;
      throw TransportFault{std::string(e.message())};
    }
  }

  std::vector<std::uint8_t> receive() { return receive_within(kUsbTimeout); }

  std::vector<std::uint8_t> receive_within(std::chrono::milliseconds timeout) {
    std::vector<std::uint8_t> buf(packet_size_);
    std::size_t n = 0;
    try {
      n = v1_ ? device_->interrupt_read(ep_in_, buf, timeout)
              : device_->bulk_read(ep_in_, buf, timeout);
    } catch (const Error& e) {
      if (is_unplug(e)) throw;
      throw TransportFault{std::string(e.message())};
    }
    buf.resize(n);
    return buf;
  }

  // The answer to a fresh marker command proves that no older response is left in the
  // stream: everything read before it is a stale or duplicate response and is dropped. The
  // marker is DAP_Delay of 0 µs (CMSIS-DAP "DAP_Delay": [0x09, delay lo, hi] -> [0x09,
  // status]), which nothing else in this driver sends, so a stale answer to another command
  // can never pass for it (a DAP_Info marker could: DAP_Info (capabilities) has the same
  // shape as DAP_Info (packet count)). Bounded: the probe owes at most `owed` responses
  // (packet_count_ once known; before read_info() up to 255, the field being one byte),
  // plus the one asked.
  void resync() { resync(packet_count_); }
  void resync(std::size_t owed) {
    const std::vector<std::uint8_t> marker = {kDelay, 0x00, 0x00};
    send(marker);
    std::size_t dropped = 0;
    for (std::size_t n = 0; n < owed + 2; ++n) {
      std::vector<std::uint8_t> r;
      try {
        r = receive();
      } catch (const TransportFault& f) {
        // What came before the silence is the fault to name.
        if (dropped == 0) throw;
        throw TransportFault{"probe " + label() + " sent " + std::to_string(dropped) +
                             " garbled or stale response(s), then nothing (" + f.message + ")"};
      }
      if (r.size() >= 2 && r[0] == kDelay) return;
      ++dropped;
    }
    throw TransportFault{"probe " + label() + " kept sending responses nobody asked for"};
  }

  // Runs `attempt` (one exchange with the probe) and, when it meets a transport fault and
  // `may_repeat`, resynchronises and runs it again, kTransportAttempts times in all. A
  // run that is not repeated still gets a resynchronisation (best effort), so that the
  // probe is clean for what the caller does next (an ABORT, a disconnect).
  template <class Attempt>
  std::invoke_result_t<Attempt&> with_retry(bool may_repeat, const char* what, Attempt&& attempt) {
    std::string last;
    const unsigned attempts = may_repeat && !given_up_ ? kTransportAttempts : 1;
    for (unsigned n = 0; n < attempts; ++n) {
      try {
        if (n > 0) resync();
        auto result = attempt();
        given_up_ = false;
        return result;
      } catch (const TransportFault& f) {
        // The first fault is the one to name; later ones are usually its after-effects.
        if (last.empty()) last = f.message;
      }
    }
    given_up_ = true;
    if (!may_repeat) {
      try {
        resync();
        given_up_ = false;  // the stream is clean again: the next command may retry
      } catch (const TransportFault&) {
      }
      throw Error(ErrorCategory::probe_io,
                  last + "; " + what +
                      " carried memory writes that may have run already, so it was not "
                      "repeated",
                  "run the command again; if it keeps happening, check the USB cable and hub "
                  "or replug the probe");
    }
    throw Error(ErrorCategory::probe_io,
                last + " (" + what + ", " + std::to_string(attempts) + " attempts)",
                "check the probe's USB cable and hub, replug the probe, and run the command "
                "again");
  }

  // One command, one response that echoes its command byte and has at least `min_size`
  // bytes. Every command sent this way is repeatable (see the retry policy); a response
  // with the wrong echo is garbled or stale and is never taken as the answer.
  std::vector<std::uint8_t> command(std::vector<std::uint8_t> request, std::size_t min_size) {
    const std::string name = command_name(request[0]);
    return with_retry(true, name.c_str(), [&] { return exchange(request, min_size); });
  }

  // One attempt of command(): a TransportFault for a wrong echo or a short response.
  std::vector<std::uint8_t> exchange(const std::vector<std::uint8_t>& request,
                                     std::size_t min_size) {
    send(request);
    auto r = receive();
    if (r.size() < min_size || r[0] != request[0])
      throw TransportFault{"probe " + label() + " answered " + command_name(request[0]) +
                           " with a garbled response (" +
                           (r.empty() ? std::string("empty")
                                      : "command byte " + std::to_string(r[0]) + ", " +
                                            std::to_string(r.size()) + " bytes") +
                           ")"};
    return r;
  }

  void check_status(const std::vector<std::uint8_t>& r, const char* name) {
    if (r[1] != kDapOk)
      throw Error(ErrorCategory::probe_io, "probe " + label() + " rejected " + name,
                  "update the probe firmware");
  }

  void send_clock(std::uint32_t khz) {
    std::vector<std::uint8_t> req = {kSwjClock};
    append_le32(req, khz * 1000);  // DAP_SWJ_Clock takes Hz
    check_status(command(req, 2), "DAP_SWJ_Clock");
  }

  // SELECT as the queue will have left it; starts from the cache when the queue is empty.
  void start_queue() {
    if (queue_.empty()) queued_select_ = select_;
  }

  // Writes SELECT before the next access unless it already holds `want`.
  void need_select(std::uint32_t want) {
    if (queued_select_ && *queued_select_ == want) return;
    queue_.push_back(Access{false, false, kDpSelect, want, nullptr, false, 0});
    queued_select_ = want;
  }

  void queue_dp(std::uint8_t addr, std::uint8_t bank) {
    start_queue();
    // ADIv5.2 B2.2: only CTRL/STAT's address (0x4) is banked by DPBANKSEL; a non-zero bank
    // at 0x0 is DPv3's DPIDR1 and friends, banked the same way.
    addr &= 0x0C;
    if (addr == kDpCtrlStat || (addr == kDpDpidr && bank != 0)) {
      std::uint32_t base = queued_select_ ? *queued_select_ & ~kSelectDpBankMask : 0;
      need_select(base | (bank & kSelectDpBankMask));
    }
  }

  void queue_ap(std::uint8_t ap, std::uint8_t addr) {
    start_queue();
    std::uint32_t dpbank = queued_select_ ? *queued_select_ & kSelectDpBankMask : 0;
    need_select(static_cast<std::uint32_t>(ap) << 24 | (addr & 0xF0u) | dpbank);
  }

  static Access ap_access(std::uint8_t ap, std::uint8_t addr, bool read, std::uint32_t value,
                          std::uint32_t* out) {
    return Access{true, read, static_cast<std::uint8_t>(addr & 0x0C),    value,
                  out,  true, static_cast<std::uint16_t>(ap << 8 | addr)};
  }

  // Runs the accesses with the retry policy: a repeatable run that meets a transport fault
  // is run again from the start, with DP SELECT first set back to `select_before` (what the
  // DP held when the run began, if known) because the partial run may have changed it.
  DapFlushResult run(std::span<const Access> accesses, std::optional<std::uint32_t> select_before) {
    if (accesses.empty()) return {};
    std::vector<Access> replay;
    bool first = true;
    return with_retry(repeatable(accesses), "a DAP_Transfer", [&] {
      if (first) {
        first = false;
        return run_once(accesses);
      }
      if (replay.empty()) {
        if (select_before)
          replay.push_back(Access{false, false, kDpSelect, *select_before, nullptr, false, 0});
        replay.insert(replay.end(), accesses.begin(), accesses.end());
      }
      return run_once(replay);
    });
  }

  // Sends the accesses in as few packets as fit, up to packet_count_ of them in flight
  // (CMSIS-DAP "Packet Count": the probe buffers that many commands), and collects the
  // responses in order. The first failure ends the run: packets already in flight still
  // execute on the probe, their responses are read and dropped (after a FAULT the sticky
  // flag makes them fail too), and no further packet is sent. A response that does not
  // belong to its request (wrong echo, impossible counts: garbled) is a TransportFault.
  DapFlushResult run_once(std::span<const Access> accesses) {
    DapFlushResult result;
    if (accesses.empty()) return result;
    const auto packets = pack(accesses, packet_size_);
    std::size_t sent = 0, received = 0;
    auto drain = [&] {
      for (; received < sent; ++received)
        receive();
    };
    while (received < packets.size()) {
      while (sent < packets.size() && sent - received < packet_count_)
        send(packets[sent++].request);
      auto response = receive();
      const Packet& packet = packets[received++];
      Reply reply;
      try {
        reply = parse_reply(packet, response, accesses, label());
      } catch (const Error& e) {
        throw TransportFault{std::string(e.message()) + " (garbled or stale)"};
      }
      for (std::size_t k = 0; k < reply.done; ++k)
        if (accesses[packet.first + k].counted) ++result.completed;
      if (reply.ack != DapAck::ok) {
        result.ack = reply.ack;
        drain();
        break;
      }
    }
    return result;
  }

  std::unique_ptr<UsbDevice> device_;
  ProbeInfo info_;
  bool v1_ = false;
  bool set_report_ = false;  // v1 without an interrupt OUT endpoint
  std::uint8_t ep_in_ = 0;
  std::uint8_t ep_out_ = 0;
  std::size_t packet_size_ = 64;
  std::size_t packet_count_ = 1;
  bool swd_capable_ = false;
  bool connected_ = false;
  // Set when retries ran out: later commands get one attempt each (no more waiting on a
  // link that is known to be bad), until a resynchronisation succeeds again.
  bool given_up_ = false;
  std::uint32_t speed_khz_ = kDefaultSpeedKhz;

  std::vector<Access> queue_;
  // DP SELECT as the probe's DP holds it, when known; and as it will be once the queue ran.
  std::optional<std::uint32_t> select_;
  std::optional<std::uint32_t> queued_select_;
};

}  // namespace

std::unique_ptr<DapProbe> make_cmsis_dap(std::unique_ptr<UsbDevice> device, ProbeInfo info) {
  return std::make_unique<CmsisDap>(std::move(device), std::move(info));
}

}  // namespace probefarm::probe
