#pragma once
// A fake CMSIS-DAP probe behind probe::UsbDevice, for unit tests of the driver without the
// simulator: it records every packet written, answers from a small model of the commands
// (DAP_Info, the setup commands, DAP_Transfer, DAP_TransferBlock over a register map), can
// fail the n-th SWD transfer with a chosen ACK, and can replace responses by scripted bytes.
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "fake_usb.hpp"

namespace probefarm::probe::test {

class FakeDap final : public FakeUsbDevice {
 public:
  // v1: a HID interface with interrupt endpoints and 64-byte reports; v2: bulk endpoints.
  // `out_endpoint` false: a HID interface with only its IN endpoint (output reports by
  // SET_REPORT on the control pipe).
  FakeDap(bool v1, std::uint16_t packet_size, std::uint8_t packet_count, bool out_endpoint = true)
      : FakeUsbDevice("1-2", "FAKE123"),
        v1_(v1),
        packet_size_(packet_size),
        packet_count_(packet_count) {
    const std::uint8_t type = v1 ? 0x03 : 0x02;
    const std::uint16_t max = v1 ? 64 : 512;
    std::vector<UsbEndpoint> endpoints = {{0x01, type, max}, {0x81, type, max}};
    if (!out_endpoint) endpoints.erase(endpoints.begin());
    add_interface(v1 ? 0x03 : 0xFF, std::move(endpoints));
  }

  // --- what the tests look at and steer
  std::vector<std::vector<std::uint8_t>> writes;  // every packet written, as written
  std::size_t max_in_flight = 0;                  // most responses owed at once
  std::uint32_t dpidr = 0x2BA01477;
  std::uint32_t ctrl_stat = 0xF0000000;
  std::vector<std::uint32_t> select_writes;        // values written to DP SELECT
  std::vector<std::uint32_t> drw_writes;           // values written to any AP's 0x0C
  std::map<std::uint32_t, std::uint32_t> ap_regs;  // (APSEL << 8 | register) → value
  std::uint32_t next_drw = 0x1000;                 // DRW reads return this, then +1 each time
  // Fails SWD transfer number `fail_at` (0-based, counting every transfer the probe ran,
  // SELECT writes included) with ACK `fail_ack`; with `sticky`, every later one fails too.
  std::optional<std::size_t> fail_at;
  std::uint8_t fail_ack = 2;
  bool sticky = false;
  std::size_t swd_transfers = 0;
  // Replaces the next computed responses, one per packet, in order.
  std::deque<std::vector<std::uint8_t>> scripted;
  // Thrown by the next read instead of answering (timeout, unplug).
  std::optional<Error> fail_read;
  bool answer_connect = true;

  // Commands written (first byte of each packet), for sequence checks.
  std::vector<std::uint8_t> commands() const {
    std::vector<std::uint8_t> c;
    for (const auto& w : writes)
      c.push_back(w.empty() ? 0xEE : w[0]);
    return c;
  }

  // --- UsbDevice
  std::vector<UsbControlSetup> set_reports;
  std::size_t control_transfer(const UsbControlSetup& setup, std::span<std::uint8_t> data,
                               std::chrono::milliseconds) override {
    // HID 1.11 7.2.2 SET_REPORT (class, interface, OUT), report type Output.
    if (!v1_ || setup.request_type != 0x21 || setup.request != 0x09 || setup.value != 0x0200)
      throw Error(ErrorCategory::internal, "fake: unexpected control transfer");
    set_reports.push_back(setup);
    return write(data);
  }
  std::size_t bulk_write(std::uint8_t ep, std::span<const std::uint8_t> data,
                         std::chrono::milliseconds) override {
    if (v1_ || ep != 0x01) throw Error(ErrorCategory::internal, "fake: wrong endpoint");
    return write(data);
  }
  std::size_t bulk_read(std::uint8_t ep, std::span<std::uint8_t> data,
                        std::chrono::milliseconds) override {
    if (v1_ || ep != 0x81) throw Error(ErrorCategory::internal, "fake: wrong endpoint");
    return read(data);
  }
  std::size_t interrupt_write(std::uint8_t ep, std::span<const std::uint8_t> data,
                              std::chrono::milliseconds) override {
    if (!v1_ || ep != 0x01) throw Error(ErrorCategory::internal, "fake: wrong endpoint");
    return write(data);
  }
  std::size_t interrupt_read(std::uint8_t ep, std::span<std::uint8_t> data,
                             std::chrono::milliseconds) override {
    if (!v1_ || ep != 0x81) throw Error(ErrorCategory::internal, "fake: wrong endpoint");
    return read(data);
  }

 private:
  std::size_t write(std::span<const std::uint8_t> data) {
    writes.emplace_back(data.begin(), data.end());
    std::vector<std::uint8_t> r;
    if (!scripted.empty()) {
      r = std::move(scripted.front());
      scripted.pop_front();
    } else {
      r = process(data);
    }
    if (v1_) r.resize(64);
    pending_.push_back(std::move(r));
    max_in_flight = std::max(max_in_flight, pending_.size());
    return data.size();
  }

  std::size_t read(std::span<std::uint8_t> data) {
    if (fail_read) {
      Error e = *fail_read;
      fail_read.reset();
      throw e;
    }
    if (pending_.empty()) throw Error(ErrorCategory::timeout, "fake: nothing to read");
    auto r = std::move(pending_.front());
    pending_.pop_front();
    std::size_t n = std::min(r.size(), data.size());
    std::copy_n(r.begin(), n, data.begin());
    return n;
  }

  std::uint8_t next_ack() {
    std::size_t n = swd_transfers++;
    if (fail_at && (n == *fail_at || (sticky && n > *fail_at))) return fail_ack;
    return 1;
  }

  // One SWD transfer: returns its ACK (1: OK); when OK, a read appends its data to `r`.
  std::uint8_t swd(bool ap, bool read, std::uint8_t addr, std::uint32_t value,
                   std::vector<std::uint8_t>& r) {
    const std::uint8_t ack = next_ack();
    if (ack != 1) return ack;
    if (read)
      append_le32(r, reg_read(ap, addr));
    else
      reg_write(ap, addr, value);
    return ack;
  }

  std::uint32_t reg_read(bool ap, std::uint8_t addr) {
    if (!ap) return addr == 0x0 ? dpidr : addr == 0x4 ? ctrl_stat : 0;
    std::uint32_t key = (select_ >> 24) << 8 | (select_ & 0xF0) | addr;
    if ((key & 0xFF) == 0x0C) return next_drw++;
    auto it = ap_regs.find(key);
    return it == ap_regs.end() ? 0 : it->second;
  }

  void reg_write(bool ap, std::uint8_t addr, std::uint32_t v) {
    if (!ap) {
      if (addr == 0x8) {
        select_ = v;
        select_writes.push_back(v);
      }
      if (addr == 0x4) ctrl_stat = v;
      return;
    }
    std::uint32_t key = (select_ >> 24) << 8 | (select_ & 0xF0) | addr;
    if ((key & 0xFF) == 0x0C) drw_writes.push_back(v);
    ap_regs[key] = v;
  }

  std::vector<std::uint8_t> process(std::span<const std::uint8_t> d) {
    switch (d[0]) {
      case 0x00: {  // DAP_Info
        std::vector<std::uint8_t> r = {0x00};
        auto str = [&](const std::string& s) {
          r.push_back(static_cast<std::uint8_t>(s.size() + 1));
          r.insert(r.end(), s.begin(), s.end());
          r.push_back(0);
        };
        switch (d[1]) {
          case 0x04:
            str("2.1.0");
            break;
          case 0x09:
            str("2.3.4");
            break;
          case 0xF0:
            r.insert(r.end(), {1, 0x01});
            break;
          case 0xFE:
            r.insert(r.end(), {1, packet_count_});
            break;
          case 0xFF:
            r.insert(r.end(), {2, static_cast<std::uint8_t>(packet_size_),
                               static_cast<std::uint8_t>(packet_size_ >> 8)});
            break;
          default:
            r.push_back(0);
        }
        return r;
      }
      case 0x02:
        return {0x02, static_cast<std::uint8_t>(answer_connect ? 1 : 0)};
      case 0x10:
        return {0x10, 0xFF};
      case 0x05:
        return transfer(d);
      case 0x06:
        return block(d);
      default:
        return {d[0], 0x00};  // DAP_OK for the setup commands
    }
  }

  std::vector<std::uint8_t> transfer(std::span<const std::uint8_t> d) {
    std::vector<std::uint8_t> r = {0x05, 0, 1};
    std::size_t pos = 3, done = 0;
    for (unsigned i = 0; i < d[2]; ++i) {
      std::uint8_t req = d[pos++];
      bool ap = req & 1, rd = req & 2;
      std::uint8_t addr = req & 0x0C;
      std::uint32_t v = 0;
      if (!rd) {
        v = le32(d, pos);
        pos += 4;
      }
      const std::uint8_t ack = swd(ap, rd, addr, v, r);
      if (ack != 1) {
        r[2] = ack;
        break;
      }
      ++done;
    }
    r[1] = static_cast<std::uint8_t>(done);
    return r;
  }

  std::vector<std::uint8_t> block(std::span<const std::uint8_t> d) {
    std::size_t count = d[2] | d[3] << 8;
    std::uint8_t req = d[4];
    bool ap = req & 1, rd = req & 2;
    std::uint8_t addr = req & 0x0C;
    std::vector<std::uint8_t> r = {0x06, 0, 0, 1};
    std::size_t done = 0;
    for (std::size_t k = 0; k < count; ++k) {
      const std::uint8_t ack = swd(ap, rd, addr, rd ? 0 : le32(d, 5 + 4 * k), r);
      if (ack != 1) {
        r[3] = ack;
        break;
      }
      ++done;
    }
    r[1] = static_cast<std::uint8_t>(done);
    r[2] = static_cast<std::uint8_t>(done >> 8);
    return r;
  }

  bool v1_;
  std::uint16_t packet_size_;
  std::uint8_t packet_count_;
  std::uint32_t select_ = 0;
  std::deque<std::vector<std::uint8_t>> pending_;
};

}  // namespace probefarm::probe::test
