#pragma once
// A scripted ST-Link behind the UsbDevice interface, for unit tests of the driver without
// USB: it records every command block and data phase, answers like the firmware, and lets
// a test choose the statuses the DAP and memory commands return.
#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <span>
#include <vector>

#include "fake_usb.hpp"
#include "probe/stlink.hpp"
#include "probe/stlink_commands.hpp"

namespace probefarm::probe::test {

namespace stc = probefarm::probe::stlink;

struct FakeStLinkState {
  // Identity: GET_VERSION's fields; V3 answers GET_VERSION_EX from the same fields.
  unsigned hw = 2, jtag = 40, swim = 7, msd = 0, bridge = 0;
  std::uint16_t pid = 0x3748;
  std::uint8_t mode = stc::kModeMass;
  std::uint8_t out_ep = 0x02;  // the V2's; 0x01 on the V2-1 and V3

  // Answers.
  std::uint8_t enter_status = stc::kOk;
  std::uint32_t dpidr = 0x1BA01477;
  std::deque<std::uint8_t> dap_status;          // for successive READ/WRITE_DAP_REG; then OK
  std::map<std::uint32_t, std::uint32_t> regs;  // port << 16 | addr → value
  std::deque<std::uint8_t> rw_status;           // for successive memory commands; then OK
  std::uint32_t rw_fault_address = 0;
  std::uint32_t mem_base = 0x20000000;
  std::vector<std::uint8_t> mem = std::vector<std::uint8_t>(16 * 1024);
  std::vector<std::uint32_t> com_freqs = {24000, 8000, 3300, 1000, 200, 50, 5};
  std::uint32_t adc0 = 1489, adc1 = 2048;  // 3.3 V
  bool unplugged = false;
  // Transport faults: the next `lose_answers` answers are lost (the read times out, as when
  // a USB packet is dropped); the next `garble_reads` reads come back with every byte
  // inverted.
  unsigned lose_answers = 0;
  unsigned garble_reads = 0;

  // What the host sent.
  std::vector<stc::Cdb> cdbs;
  std::vector<std::vector<std::uint8_t>> data_phases;
  std::vector<std::uint8_t> out_endpoints, in_endpoints;

  // Commands with byte 0 = `b0` and (for debug commands) byte 1 = `b1`.
  std::size_t count(std::uint8_t b0, int b1 = -1) const {
    return static_cast<std::size_t>(std::count_if(cdbs.begin(), cdbs.end(), [&](const auto& c) {
      return c[0] == b0 && (b1 < 0 || c[1] == b1);
    }));
  }
  std::size_t debug_count(std::uint8_t sub) const { return count(stc::kDebugCommand, sub); }
};

class FakeStLinkDevice final : public FakeUsbDevice {
 public:
  explicit FakeStLinkDevice(std::shared_ptr<FakeStLinkState> s)
      : FakeUsbDevice("1-1", "FAKE"), s_(std::move(s)) {
    descriptor_.vid = 0x0483;
    descriptor_.pid = s_->pid;
    const std::uint8_t trace = s_->out_ep == 0x02 ? 0x83 : 0x82;
    add_interface(0xFF, {{0x81, 2, 64}, {s_->out_ep, 2, 64}, {trace, 2, 64}});
  }

  std::size_t bulk_write(std::uint8_t ep, std::span<const std::uint8_t> data,
                         std::chrono::milliseconds timeout) override {
    check_alive(timeout);
    s_->out_endpoints.push_back(ep);
    if (data_needed_ > 0) {
      s_->data_phases.emplace_back(data.begin(), data.end());
      data_needed_ -= std::min(data_needed_, data.size());
      if (data_needed_ == 0) finish_write();
      return data.size();
    }
    stc::Cdb c{};
    std::copy_n(data.begin(), std::min(data.size(), c.size()), c.begin());
    s_->cdbs.push_back(c);
    run(c);
    return data.size();
  }

  std::size_t bulk_read(std::uint8_t ep, std::span<std::uint8_t> data,
                        std::chrono::milliseconds timeout) override {
    check_alive(timeout);
    s_->in_endpoints.push_back(ep);
    if (!answers_.empty() && s_->lose_answers > 0) {
      --s_->lose_answers;
      answers_.pop_front();
      throw Error(ErrorCategory::timeout, "USB transfer to probe FAKE timed out");
    }
    if (answers_.empty()) throw Error(ErrorCategory::timeout, "bulk read timed out");
    auto& front = answers_.front();
    const std::size_t n = std::min(front.size(), data.size());
    std::copy_n(front.begin(), n, data.begin());
    if (s_->garble_reads > 0) {
      --s_->garble_reads;
      for (std::size_t i = 0; i < n; ++i)
        data[i] = static_cast<std::uint8_t>(~data[i]);
    }
    front.erase(front.begin(), front.begin() + static_cast<long>(n));
    if (front.empty()) answers_.pop_front();
    return n;
  }

 private:
  using Bytes = std::vector<std::uint8_t>;

  void check_alive(std::chrono::milliseconds timeout) {
    if (timeout.count() <= 0) throw Error(ErrorCategory::internal, "transfer without a timeout");
    if (s_->unplugged) throw Error(ErrorCategory::probe_io, "probe FAKE was unplugged");
  }

  std::uint8_t next(std::deque<std::uint8_t>& q) {
    if (q.empty()) return stc::kOk;
    const std::uint8_t s = q.front();
    q.pop_front();
    return s;
  }

  void run(const stc::Cdb& c) {
    switch (c[0]) {
      case stc::kGetVersion: {
        unsigned word = s_->hw << 12;
        if (s_->hw == 2) word |= s_->jtag << 6 | (s_->msd ? s_->msd : s_->swim);
        answers_.push_back({static_cast<std::uint8_t>(word >> 8), static_cast<std::uint8_t>(word),
                            0x83, 0x04, static_cast<std::uint8_t>(s_->pid),
                            static_cast<std::uint8_t>(s_->pid >> 8)});
        return;
      }
      case stc::kGetVersionEx: {
        Bytes r(12, 0);
        r[0] = static_cast<std::uint8_t>(s_->hw);
        r[1] = static_cast<std::uint8_t>(s_->swim);
        r[2] = static_cast<std::uint8_t>(s_->jtag);
        r[3] = static_cast<std::uint8_t>(s_->msd);
        r[4] = static_cast<std::uint8_t>(s_->bridge);
        put_le32(r, 8, 0x0483u | std::uint32_t{s_->pid} << 16);
        answers_.push_back(r);
        return;
      }
      case stc::kGetCurrentMode:
        answers_.push_back({s_->mode, 0});
        return;
      case stc::kDfuCommand:
        s_->mode = stc::kModeMass;
        return;
      case stc::kGetTargetVoltage: {
        Bytes r(8, 0);
        put_le32(r, 0, s_->adc0);
        put_le32(r, 4, s_->adc1);
        answers_.push_back(r);
        return;
      }
      case stc::kDebugCommand:
        debug(c);
        return;
      default:
        answers_.push_back({stc::kUnknownCommand, 0});
    }
  }

  void debug(const stc::Cdb& c) {
    switch (c[1]) {
      case stc::kEnter:
        s_->mode = stc::kModeDebug;
        answers_.push_back({s_->enter_status, 0});
        return;
      case stc::kExit:
        s_->mode = stc::kModeMass;
        return;
      case stc::kReadDapReg: {
        Bytes r(8, 0);
        r[0] = next(s_->dap_status);
        const std::uint32_t key = std::uint32_t{le16(c, 2)} << 16 | le16(c, 4);
        if (r[0] == stc::kOk) put_le32(r, 4, key == (0xFFFFu << 16) ? s_->dpidr : s_->regs[key]);
        answers_.push_back(r);
        return;
      }
      case stc::kWriteDapReg: {
        const std::uint8_t st = next(s_->dap_status);
        if (st == stc::kOk) s_->regs[std::uint32_t{le16(c, 2)} << 16 | le16(c, 4)] = le32(c, 6);
        answers_.push_back({st, 0});
        return;
      }
      case stc::kGetLastRwStatus2: {
        Bytes r(12, 0);
        r[0] = last_rw_;
        put_le32(r, 4, last_rw_ == stc::kOk ? 0 : s_->rw_fault_address);
        answers_.push_back(r);
        return;
      }
      case stc::kReadMem8:
      case stc::kReadMem16:
      case stc::kReadMem32: {
        const std::uint32_t addr = le32(c, 2);
        const std::size_t len = le16(c, 6);
        last_rw_ = next(s_->rw_status);
        Bytes r(std::max<std::size_t>(len, c[1] == stc::kReadMem8 ? 2 : 0), 0);
        for (std::size_t i = 0; i < len && last_rw_ == stc::kOk; ++i)
          r[i] = s_->mem.at(addr - s_->mem_base + i);
        answers_.push_back(r);
        return;
      }
      case stc::kWriteMem8:
      case stc::kWriteMem16:
      case stc::kWriteMem32:
        pending_ = c;
        data_needed_ = le16(c, 6);
        return;
      case stc::kGetComFreq: {
        Bytes r(stc::kGetComFreqSize, 0);
        r[0] = stc::kOk;
        r[8] = static_cast<std::uint8_t>(s_->com_freqs.size());
        for (std::size_t i = 0; i < s_->com_freqs.size(); ++i)
          put_le32(r, 12 + 4 * i, s_->com_freqs[i]);
        answers_.push_back(r);
        return;
      }
      case stc::kSetComFreq: {
        Bytes r(8, 0);
        r[0] = stc::kOk;
        put_le32(r, 4, le32(c, 4));
        answers_.push_back(r);
        return;
      }
      case stc::kSwdSetFreq:
      case stc::kDriveNrst:
      case stc::kInitAp:
        answers_.push_back({stc::kOk, 0});
        return;
      default:
        answers_.push_back({stc::kUnknownCommand, 0});
    }
  }

  void finish_write() {
    const std::uint32_t addr = le32(pending_, 2);
    last_rw_ = next(s_->rw_status);
    if (last_rw_ != stc::kOk) return;
    // The driver sends a data phase as one transfer.
    std::size_t i = 0;
    const auto& data = s_->data_phases.back();
    for (std::uint8_t b : data)
      s_->mem.at(addr - s_->mem_base + i++) = b;
  }

  std::shared_ptr<FakeStLinkState> s_;
  std::deque<Bytes> answers_;
  stc::Cdb pending_{};
  std::size_t data_needed_ = 0;
  std::uint8_t last_rw_ = stc::kOk;
};

inline ProbeKind kind_of(const FakeStLinkState& s) {
  if (s.hw >= 3) return ProbeKind::stlink_v3;
  return s.msd != 0 ? ProbeKind::stlink_v2_1 : ProbeKind::stlink_v2;
}

// A driver on a fake probe; `state` stays shared with the test.
inline std::unique_ptr<DapProbe> make_fake_stlink(const std::shared_ptr<FakeStLinkState>& state) {
  ProbeInfo info;
  info.kind = kind_of(*state);
  info.vid = 0x0483;
  info.pid = state->pid;
  info.serial = "FAKE";
  return make_stlink(std::make_unique<FakeStLinkDevice>(state), info);
}

}  // namespace probefarm::probe::test
