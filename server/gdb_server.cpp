// The GDB server's session: packets in, probe calls through the ProbeSession, replies out.
// Packet formats: GDB manual, "Remote Protocol" ("Packets", "Stop Reply Packets",
// "General Query Packets", "Host I/O" is not offered).
#include "server/gdb_session.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <vector>

#include "flash/target.hpp"
#include "probe/error.hpp"
#include "protocol/gdb_rsp.hpp"
#include "server/job_runner.hpp"
#include "server/probe_session.hpp"

namespace probefarm::server::gdb_detail {

using protocol::CoreRegister;
using Clock = std::chrono::steady_clock;

bool Session::send(std::string_view payload) {
  last_sent_ = rsp::frame(payload);
  return send_raw(last_sent_);
}

GdbSummary Session::serve() {
  const auto start = Clock::now();
  auto last_packet = start;
  try {
    run([&](ProbeConnection& c) {
      chip_ = c.target->chip();
      fpu_ = c.target->core().identity().has_fpu;
      if (!c.target->core().is_halted()) c.target->core().halt();
    });
    summary_.chip = chip_.name;
  } catch (const std::exception& e) {
    summary_.failed = true;
    summary_.end_reason = std::string("could not halt the target: ") + e.what();
    done_ = true;
  }
  while (!done_) {
    if (session_.closed()) {
      summary_.failed = true;
      summary_.end_reason = "session ended: " + session_.end_reason();
      break;
    }
    if (options_.stopping && options_.stopping()) {
      summary_.end_reason = "the daemon is stopping";
      break;
    }
    const auto wait = running_ ? options_.poll : std::chrono::milliseconds(200);
    auto bytes = channel_.read(wait);
    if (!bytes) {
      summary_.end_reason = "client closed the connection";
      break;
    }
    if (!bytes->empty()) {
      last_packet = Clock::now();
      decoder_.feed(*bytes);
    }
    while (!done_) {
      auto in = decoder_.next();
      if (!in) break;
      switch (in->kind) {
        case rsp::Input::Kind::ack:
          break;
        case rsp::Input::Kind::nack:
          if (ack_ && !last_sent_.empty()) send_raw(last_sent_);
          break;
        case rsp::Input::Kind::bad_checksum:
          if (ack_) send_raw("-");
          break;
        case rsp::Input::Kind::interrupt:
          if (running_) interrupt();
          break;
        case rsp::Input::Kind::packet:
          if (ack_) send_raw("+");
          if (!handle(in->payload)) done_ = true;
          break;
      }
    }
    if (done_) break;
    if (running_) {
      try {
        poll_running();
      } catch (const std::exception& e) {
        if (session_.closed()) continue;  // reported at the top of the loop
        summary_.failed = true;
        summary_.end_reason = std::string("lost the running target: ") + e.what();
        break;
      }
    } else if (Clock::now() - last_packet > options_.idle) {
      summary_.end_reason =
          "idle for " +
          std::to_string(std::chrono::duration_cast<std::chrono::seconds>(options_.idle).count()) +
          " s";
      break;
    }
  }
  summary_.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  summary_.last_error = last_error_;
  return summary_;
}

bool Session::handle(const std::string& packet) {
  std::optional<std::string> reply;
  try {
    reply = dispatch(packet);
  } catch (const std::exception& e) {
    last_error_ = e.what();
    if (session_.closed()) return true;  // the loop reports it
    reply = error_reply();
  }
  if (reply && !send(*reply)) {
    summary_.end_reason = "client closed the connection";
    return false;
  }
  return !done_;
}

// Returns the reply payload, or nullopt for packets without one (c and s answer later or
// with a stop reply; k and R have none).
std::optional<std::string> Session::dispatch(const std::string& p) {
  if (p.empty()) return "";
  const std::string_view v = p;
  switch (p[0]) {
    case '?':
      return std::string("S05");
    case '!':
      return std::string("OK");  // extended mode
    case 'H':
      return std::string("OK");  // one thread: any thread selection is it
    case 'T':
      return std::string("OK");  // thread alive
    case 'g':
      return read_all_registers();
    case 'G': {
      run([&](ProbeConnection& c) {
        auto& core = c.target->core();
        const std::string_view hex = v.substr(1);
        for (unsigned n = 0; n <= kXpsr && hex.size() >= (n + 1) * 8; ++n)
          write_one_register(core, n, hex.substr(n * 8, 8));
        std::size_t at = (kXpsr + 1) * 8;
        for (unsigned n = kFirstD; fpu_ && n <= kFpscr; ++n) {
          const std::size_t len = n == kFpscr ? 8 : 16;
          if (hex.size() < at + len) break;
          write_one_register(core, n, hex.substr(at, len));
          at += len;
        }
      });
      return std::string("OK");
    }
    case 'p': {
      auto n = rsp::parse_number(v.substr(1));
      if (!n) return error_reply();
      std::optional<std::string> value;
      run([&](ProbeConnection& c) { value = read_one_register(c.target->core(), *n); });
      return value ? *value : error_reply();
    }
    case 'P': {
      const auto eq = v.find('=');
      auto n = rsp::parse_number(v.substr(1, eq == std::string_view::npos ? 0 : eq - 1));
      if (!n) return error_reply();
      bool ok = false;
      run([&](ProbeConnection& c) {
        ok = write_one_register(c.target->core(), *n, v.substr(eq + 1));
      });
      return std::string(ok ? "OK" : "E01");
    }
    case 'm':
      return read_memory(v.substr(1));
    case 'M':
      return write_memory(v.substr(1), false);
    case 'X':
      return write_memory(v.substr(1), true);
    case 'Z':
    case 'z':
      return breakpoint(v);
    case 'c':
    case 's':
    case 'C':
    case 'S': {
      // "c addr" / "C sig;addr": resume at addr. The signal is meaningless on bare metal.
      std::string_view rest = v.substr(1);
      if (p[0] == 'C' || p[0] == 'S') {
        const auto semi = rest.find(';');
        rest = semi == std::string_view::npos ? std::string_view{} : rest.substr(semi + 1);
      }
      std::optional<std::uint32_t> address;
      if (!rest.empty()) address = rsp::parse_number(rest);
      auto r = resume(p[0] == 's' || p[0] == 'S', address);
      if (r.empty()) return std::nullopt;
      return r;
    }
    case 'D':
      detach();
      return std::string("OK");
    case 'k':
      // No reply ("Packets": k). Extended-remote keeps the connection: the "process" is
      // the target, stopped at its reset vector until GDB runs it again.
      run([&](ProbeConnection& c) {
        c.target->core().reset(protocol::ResetKind::sysresetreq, true);
      });
      return std::nullopt;
    case 'R':
      run([&](ProbeConnection& c) {
        c.target->core().reset(protocol::ResetKind::sysresetreq, true);
      });
      return std::nullopt;
    default:
      break;
  }
  if (v.starts_with("qSupported")) {
    char size[16];
    std::snprintf(size, sizeof size, "%zx", kPacketSize);
    return "PacketSize=" + std::string(size) +
           ";QStartNoAckMode+;qXfer:features:read+;qXfer:memory-map:read+;vContSupported+;"
           "hwbreak+";
  }
  if (v == "QStartNoAckMode") {
    // "Packet Acknowledgment": this OK is still acknowledged; nothing after it is.
    send("OK");
    ack_ = false;
    return std::nullopt;
  }
  if (v == "qAttached") return std::string("1");
  if (v.starts_with("qXfer:")) return xfer(v);
  if (v.starts_with("qRcmd,")) return monitor(v.substr(6));
  if (v.starts_with("qSymbol")) return std::string("OK");
  if (v == "vCont?") return std::string("vCont;c;C;s;S;t");
  if (v.starts_with("vCont;")) {
    auto r = vcont(v.substr(6));
    if (r.empty()) return std::nullopt;
    return r;
  }
  if (v.starts_with("vFlashErase:")) return flash_erase(v.substr(12));
  if (v.starts_with("vFlashWrite:")) return flash_write(v.substr(12));
  if (v == "vFlashDone") return flash_done();
  if (v.starts_with("vRun")) {
    run([&](ProbeConnection& c) {
      c.target->core().reset(protocol::ResetKind::sysresetreq, true);
    });
    return std::string("S05");
  }
  if (v.starts_with("vKill")) {
    run([&](ProbeConnection& c) {
      c.target->core().reset(protocol::ResetKind::sysresetreq, true);
    });
    return std::string("OK");
  }
  return "";  // not supported: GDB falls back or does without
}

// ---- registers ----------------------------------------------------------------------------

std::optional<std::string> Session::read_one_register(protocol::CortexM& core, unsigned n) {
  if (n < kXpsr) return rsp::le32_hex(core.read_register(static_cast<CoreRegister>(n)));
  if (n == kXpsr) return rsp::le32_hex(core.read_register(CoreRegister::xpsr));
  if (!fpu_) return std::nullopt;
  if (n == kFpscr) return rsp::le32_hex(core.read_register(CoreRegister::fpscr));
  if (n >= kFirstD && n < kFpscr) {
    // d<k> is s<2k> (low word) and s<2k+1>, in target byte order.
    const unsigned s = 2 * (n - kFirstD);
    return rsp::le32_hex(core.read_register(protocol::fpu_s(s))) +
           rsp::le32_hex(core.read_register(protocol::fpu_s(s + 1)));
  }
  return std::nullopt;
}

bool Session::write_one_register(protocol::CortexM& core, unsigned n, std::string_view hex) {
  if (n <= kXpsr || n == kFpscr) {
    auto value = rsp::parse_le32_hex(hex);
    if (!value || (n == kFpscr && !fpu_)) return false;
    const auto reg = n < kXpsr    ? static_cast<CoreRegister>(n)
                     : n == kXpsr ? CoreRegister::xpsr
                                  : CoreRegister::fpscr;
    core.write_register(reg, *value);
    return true;
  }
  if (!fpu_ || n < kFirstD || n >= kFpscr || hex.size() != 16) return false;
  auto lo = rsp::parse_le32_hex(hex.substr(0, 8)), hi = rsp::parse_le32_hex(hex.substr(8));
  if (!lo || !hi) return false;
  const unsigned s = 2 * (n - kFirstD);
  core.write_register(protocol::fpu_s(s), *lo);
  core.write_register(protocol::fpu_s(s + 1), *hi);
  return true;
}

std::string Session::read_all_registers() {
  std::string out;
  run([&](ProbeConnection& c) {
    auto& core = c.target->core();
    for (unsigned n = 0; n <= (fpu_ ? kFpscr : kXpsr); ++n)
      out += *read_one_register(core, n);
  });
  return out;
}

// ---- memory -------------------------------------------------------------------------------

std::string Session::read_memory(std::string_view args) {
  const auto parts = rsp::split(args, ',');
  if (parts.size() != 2) return error_reply();
  auto address = rsp::parse_number(parts[0]);
  auto length = rsp::parse_number(parts[1]);
  if (!address || !length) return error_reply();
  // The reply is hex: at most half the packet size of data.
  std::vector<std::uint8_t> data(std::min<std::size_t>(*length, kPacketSize / 2 - 8));
  if (data.empty()) return "";
  run([&](ProbeConnection& c) { c.target->memory().read(*address, data); });
  return rsp::to_hex(data);
}

std::string Session::write_memory(std::string_view args, bool binary) {
  const auto colon = args.find(':');
  if (colon == std::string_view::npos) return error_reply();
  const auto parts = rsp::split(args.substr(0, colon), ',');
  if (parts.size() != 2) return error_reply();
  auto address = rsp::parse_number(parts[0]);
  auto length = rsp::parse_number(parts[1]);
  if (!address || !length) return error_reply();
  std::vector<std::uint8_t> data;
  if (binary) {
    data = rsp::unescape_binary(args.substr(colon + 1));
  } else {
    auto hex = rsp::from_hex(args.substr(colon + 1));
    if (!hex) return error_reply();
    data = std::move(*hex);
  }
  if (data.size() != *length) return error_reply();
  if (data.empty()) return "OK";  // GDB's probe for X support
  // Flash is written through vFlash*: a plain store there would not program it.
  if (chip_.sector_index(*address) >= 0) return error_reply();
  run([&](ProbeConnection& c) { c.target->memory().write(*address, data); });
  return "OK";
}

// ---- breakpoints and watchpoints ----------------------------------------------------------

std::string Session::breakpoint(std::string_view p) {
  // Z<type>,<addr>,<kind>[;cond...]: 0 software, 1 hardware (both on the FPB: flash cannot
  // take BKPT instructions), 2 write, 3 read, 4 access watchpoints (DWT).
  const bool insert = p[0] == 'Z';
  const auto parts = rsp::split(p.substr(1, p.find(';') - 1), ',');
  if (parts.size() < 3) return error_reply();
  auto type = rsp::parse_number(parts[0]);
  auto address = rsp::parse_number(parts[1]);
  auto kind = rsp::parse_number(parts[2]);
  if (!type || !address || !kind || *type > 4) return error_reply();
  run([&](ProbeConnection& c) {
    auto& core = c.target->core();
    if (*type <= 1) {
      if (insert)
        core.set_breakpoint(*address);
      else
        core.clear_breakpoint(*address);
      return;
    }
    const auto wk = *type == 2   ? protocol::WatchKind::write
                    : *type == 3 ? protocol::WatchKind::read
                                 : protocol::WatchKind::access;
    if (insert) {
      core.set_watchpoint(*address, *kind, wk);
      watches_[*address] = {*kind, wk};
    } else {
      core.clear_watchpoint(*address);
      watches_.erase(*address);
    }
  });
  return "OK";
}

// ---- execution ----------------------------------------------------------------------------

std::string Session::stop_reply(ProbeConnection& c, bool interrupted) {
  auto& core = c.target->core();
  const protocol::HaltReason why = core.halt_reason();
  if (why.watchpoint) {
    ++summary_.watchpoints_hit;
    // Which comparator fired: FUNCTION.MATCHED, read (and so cleared) for each.
    std::optional<std::uint32_t> hit;
    const unsigned n = core.identity().watchpoints;
    for (unsigned i = 0; i < n && i < 16; ++i) {
      const std::uint32_t function = c.target->memory().read32(kDwtFunction0 + 0x10 * i);
      if ((function & kDwtMatched) && !hit) {
        const std::uint32_t comp = c.target->memory().read32(kDwtComp0 + 0x10 * i);
        // The comparator holds the address we set; report GDB's own address for it.
        for (const auto& [address, w] : watches_)
          if (comp >= address && comp < address + std::max<std::uint32_t>(w.length, 1))
            hit = address;
        if (!hit) hit = comp;
      }
    }
    if (!hit && watches_.size() == 1) hit = watches_.begin()->first;
    if (hit) {
      auto it = watches_.find(*hit);
      const auto kind = it == watches_.end() ? protocol::WatchKind::write : it->second.kind;
      const char* name = kind == protocol::WatchKind::write  ? "watch"
                         : kind == protocol::WatchKind::read ? "rwatch"
                                                             : "awatch";
      char buf[48];
      std::snprintf(buf, sizeof buf, "T05%s:%x;", name, *hit);
      return buf;
    }
    return "T05";
  }
  if (why.breakpoint) {
    ++summary_.breakpoints_hit;
    return "T05hwbreak:;";
  }
  return interrupted ? "T02" : "T05";
}

std::string Session::resume(bool step, std::optional<std::uint32_t> address) {
  std::string reply;
  run([&](ProbeConnection& c) {
    auto& core = c.target->core();
    if (address) core.write_register(CoreRegister::pc, *address);
    if (step) {
      core.step();
      reply = stop_reply(c, false);
    } else {
      core.resume();
    }
  });
  running_ = !step;
  return reply;  // "" while running: the stop reply comes from poll_running or interrupt
}

std::string Session::vcont(std::string_view actions) {
  // All-stop, one thread: the first action decides ("vCont": the leftmost that applies).
  const auto first = actions.substr(0, actions.find(';'));
  const char a = first.empty() ? 'c' : first[0];
  if (a == 'c' || a == 'C') return resume(false, std::nullopt);
  if (a == 's' || a == 'S') return resume(true, std::nullopt);
  if (a == 't') {
    std::string reply;
    run([&](ProbeConnection& c) {
      c.target->core().halt();
      reply = "T00";
    });
    return reply;
  }
  return error_reply();
}

void Session::poll_running() {
  std::string reply;
  run([&](ProbeConnection& c) {
    if (c.target->core().is_halted()) reply = stop_reply(c, false);
  });
  if (!reply.empty()) {
    running_ = false;
    send(reply);
  }
}

void Session::interrupt() {
  std::string reply;
  try {
    run([&](ProbeConnection& c) {
      auto& core = c.target->core();
      // It may have stopped on its own just now: then that is the stop to report.
      const bool interrupted = !core.is_halted();
      if (interrupted) core.halt();
      reply = stop_reply(c, interrupted);
    });
  } catch (const std::exception& e) {
    last_error_ = e.what();
    reply = "S02";  // GDB must get a stop reply; the next access shows the error
  }
  running_ = false;
  send(reply);
}

void Session::detach() {
  // Leave the target as GDB found it: no comparators of ours, running.
  run([&](ProbeConnection& c) {
    auto& core = c.target->core();
    for (const auto& [address, w] : watches_)
      core.clear_watchpoint(address);
    watches_.clear();
    core.resume();
  });
  summary_.end_reason = "detached";
  done_ = true;
}

}  // namespace probefarm::server::gdb_detail

namespace probefarm::server {

GdbSummary serve_gdb(GdbChannel& channel, ProbeSession& session, const GdbOptions& options) {
  gdb_detail::Session server(channel, session, options);
  return server.serve();
}

}  // namespace probefarm::server
