// probefarm-sim: serves simulated STM32 boards behind simulated debug probes on a Unix
// socket, for the stand-in libusb-1.0.so.0 (see --help).
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "board.hpp"
#include "chip.hpp"
#include "probe_factory.hpp"
#include "server.hpp"
#include "sim_protocol.hpp"

namespace fs = std::filesystem;
namespace sim = probefarm::sim;

namespace {

constexpr int kExitUsage = 2;

const char* const kHelp =
    R"HELP(probefarm-sim: simulated STM32 boards behind simulated USB debug probes.

Usage:
  probefarm-sim --socket PATH [--state-dir DIR] [--time-scale X] [--swd-off SERIAL]...
                --board CHIP:PROBE[:SERIAL]...
  probefarm-sim env --socket PATH
  probefarm-sim ctl --socket PATH COMMAND...
  probefarm-sim --help

Serve (default command):
  --socket PATH         Unix socket to listen on (a stale socket file is replaced).
  --board CHIP:PROBE[:SERIAL]
                        Add a board; repeat for more boards.
                        CHIP:  stm32f103c8 | stm32f303vc | stm32f407vg | stm32f746ng
                        PROBE: cmsis-dap-v1 | cmsis-dap-v2 | stlink-v2 | stlink-v2-1 |
                               stlink-v3
                        SERIAL defaults to PFSIM<NN><part>, NN the 1-based board index,
                        e.g. PFSIM01F103C8. An ST-Link V2 reports its serial as 12
                        binary bytes, so its SERIAL is 24 hex digits.
  --swd-off SERIAL      Fit that board's SWD-OFF jumper: its demo firmware turns the SWD
                        pins into GPIOs right after reset, and only a debugger that
                        connects under reset (nRST held) can reach it.
  --state-dir DIR       Keep each board's flash and option bytes in DIR/<serial>, saved
                        when a client disconnects and on shutdown. Default: memory only.
  --time-scale X        0 (default): virtual time advances only with USB traffic.
                        X > 0: virtual time keeps pace with wall time * X (1 = real time).
  Once listening, prints one line per board, "<serial> <probe> <chip>".
  SIGINT/SIGTERM save state, remove the socket and exit.

env --socket PATH       Print shell lines that point programs using libusb at the
                        simulator (stand-in libusb-1.0.so.0 and PROBEFARM_SIM_SOCKET).
ctl --socket PATH COMMAND
  stats                 Counters, virtual time and state of every board, as JSON.
  unplug SERIAL         Unplug the probe: open handles fail with "no device", it leaves
                        the device list. replug SERIAL brings it back (new address).
  fault SERIAL drop|stall|garble N
                        The next N USB transfers that carry data are lost (the host's
                        read times out), answer STALL, or arrive with every byte
                        inverted. N = 0 clears.
  wait SERIAL N         The target answers WAIT to the next N SWD accesses.
  power SERIAL off|on|cycle
                        Target power. Flash and option bytes are kept, RAM is lost.
  swd-off SERIAL on|off Fit or remove the SWD-OFF jumper (takes effect at next reset).

Examples:
  probefarm-sim --socket /tmp/pfsim.sock --board stm32f407vg:cmsis-dap-v2 &
  eval "$(probefarm-sim env --socket /tmp/pfsim.sock)"
  openocd -f interface/cmsis-dap.cfg -c "cmsis_dap_backend usb_bulk" \
          -c "transport select swd" -f target/stm32f4x.cfg -c init -c "reset halt" -c shutdown
  probefarm-sim ctl --socket /tmp/pfsim.sock stats
)HELP";

[[noreturn]] void usage_error(const std::string& message) {
  std::cerr << "probefarm-sim: " << message << "\nTry 'probefarm-sim --help'.\n";
  std::exit(kExitUsage);
}

// Accepts "--flag value" and "--flag=value".
struct Args {
  std::vector<std::string> v;
  std::size_t i = 0;
  bool done() const { return i >= v.size(); }
  std::optional<std::string> value_of(const std::string& flag) {
    const std::string& a = v[i];
    if (a == flag) {
      if (i + 1 >= v.size()) usage_error(flag + " needs a value");
      i += 2;
      return v[i - 1];
    }
    if (a.rfind(flag + "=", 0) == 0) {
      ++i;
      return a.substr(flag.size() + 1);
    }
    return std::nullopt;
  }
};

struct BoardSpec {
  const sim::ChipInfo* chip;
  std::string probe;
  std::string serial;
};

BoardSpec parse_board(const std::string& spec, std::size_t index) {
  auto c1 = spec.find(':');
  if (c1 == std::string::npos) usage_error("--board '" + spec + "': expected CHIP:PROBE[:SERIAL]");
  auto c2 = spec.find(':', c1 + 1);
  std::string chip_name = spec.substr(0, c1);
  std::string probe =
      spec.substr(c1 + 1, c2 == std::string::npos ? std::string::npos : c2 - c1 - 1);
  std::string serial = c2 == std::string::npos ? "" : spec.substr(c2 + 1);

  const sim::ChipInfo* chip = sim::find_chip(chip_name);
  if (!chip) {
    std::string known;
    for (const auto& c : sim::all_chips())
      known += std::string(known.empty() ? "" : ", ") + std::string(c.name);
    usage_error("unknown chip '" + chip_name + "' (valid: " + known + ")");
  }
  bool known_probe = false;
  std::string kinds;
  for (auto k : sim::probe_kinds()) {
    known_probe |= probe == k;
    kinds += std::string(kinds.empty() ? "" : ", ") + std::string(k);
  }
  if (!known_probe) usage_error("unknown probe '" + probe + "' (valid: " + kinds + ")");
  if (serial.empty()) serial = sim::default_probe_serial(probe, *chip, index);
  for (char ch : serial)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_')
      usage_error("serial '" + serial + "': use letters, digits, '-' and '_' only");
  return {chip, probe, serial};
}

std::string shell_quote(const std::string& s) {
  bool plain = !s.empty();
  for (char ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && !std::strchr("/._-+:,=@%", ch))
      plain = false;
  if (plain) return s;
  std::string q = "'";
  for (char ch : s)
    q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return q + "'";
}

std::string socket_flag(Args& a, const char* command) {
  std::optional<std::string> socket;
  while (!a.done() && a.v[a.i].rfind("--", 0) == 0) {
    if (auto s = a.value_of("--socket"))
      socket = s;
    else
      usage_error(std::string(command) + ": unknown flag '" + a.v[a.i] + "'");
  }
  if (!socket) usage_error(std::string(command) + ": --socket PATH is required");
  return *socket;
}

int run_env(Args& a) {
  std::string socket = socket_flag(a, "env");
  if (!a.done()) usage_error("env: unexpected argument '" + a.v[a.i] + "'");
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) {
    std::cerr << "probefarm-sim: cannot locate own executable: " << ec.message() << "\n";
    return 1;
  }
  fs::path lib = (exe.parent_path() / ".." / "lib" / "probefarm-sim").lexically_normal();
  if (!fs::exists(lib / "libusb-1.0.so.0"))
    std::cerr << "probefarm-sim: warning: stand-in " << (lib / "libusb-1.0.so.0").string()
              << " not found (was it built?)\n";
  std::cout << "export LD_LIBRARY_PATH=" << shell_quote(lib.string())
            << "${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}\n"
            << "export PROBEFARM_SIM_SOCKET=" << shell_quote(fs::absolute(socket).string()) << "\n";
  return 0;
}

bool send_all(int fd, const std::vector<std::uint8_t>& b) {
  std::size_t off = 0;
  while (off < b.size()) {
    ssize_t n = send(fd, b.data() + off, b.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

bool recv_all(int fd, std::uint8_t* p, std::size_t n) {
  while (n > 0) {
    ssize_t r = recv(fd, p, n, 0);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

int run_ctl(Args& a) {
  std::string socket = socket_flag(a, "ctl");
  std::string command;
  for (; !a.done(); ++a.i)
    command += (command.empty() ? "" : " ") + a.v[a.i];
  if (command.empty())
    usage_error("ctl: missing command (stats, unplug, replug, fault, wait, power, swd-off)");

  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket.size() >= sizeof(addr.sun_path)) usage_error("socket path too long");
  std::memcpy(addr.sun_path, socket.c_str(), socket.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    std::cerr << "probefarm-sim: cannot connect to " << socket << ": " << std::strerror(errno)
              << " (is probefarm-sim serving there?)\n";
    return 1;
  }
  namespace p = sim::protocol;
  auto w = p::begin_frame(p::Kind::request, p::Op::ctl, 1);
  w.string(command);
  std::uint8_t len[4];
  std::vector<std::uint8_t> body;
  if (send_all(fd, p::finish_frame(w)) && recv_all(fd, len, 4)) {
    body.resize(p::frame_length(len));
    if (body.size() > p::kMaxFrame || !recv_all(fd, body.data(), body.size())) body.clear();
  }
  close(fd);
  std::span<const std::uint8_t> payload;
  auto h = p::parse_header(body, payload);
  if (!h) {
    std::cerr << "probefarm-sim: no answer from " << socket << "\n";
    return 1;
  }
  p::Reader r(payload);
  auto status = static_cast<p::Status>(r.u8());
  std::string text = r.string();
  if (status != p::Status::ok) {
    std::cerr << "probefarm-sim: ctl " << command << ": "
              << (text.empty() ? p::status_name(status) : text) << "\n";
    return 1;
  }
  std::cout << text;
  return 0;
}

sim::SimServer* g_server = nullptr;

extern "C" void on_signal(int) {
  if (g_server) g_server->request_stop();
}

int run_serve(Args& a) {
  std::optional<std::string> socket;
  std::string state_dir;
  double time_scale = 0;
  std::vector<std::string> board_args;
  std::set<std::string> swd_off;
  while (!a.done()) {
    if (auto s = a.value_of("--socket")) {
      socket = s;
    } else if (auto d = a.value_of("--state-dir")) {
      state_dir = *d;
    } else if (auto t = a.value_of("--time-scale")) {
      try {
        std::size_t used = 0;
        time_scale = std::stod(*t, &used);
        if (used != t->size() || time_scale < 0) throw std::invalid_argument("");
      } catch (const std::exception&) {
        usage_error("--time-scale '" + *t + "': expected a number >= 0");
      }
    } else if (auto o = a.value_of("--swd-off")) {
      swd_off.insert(*o);
    } else if (auto b = a.value_of("--board")) {
      board_args.push_back(*b);
    } else {
      usage_error("unknown argument '" + a.v[a.i] + "'");
    }
  }
  if (!socket) usage_error("--socket PATH is required");
  if (board_args.empty()) usage_error("at least one --board CHIP:PROBE[:SERIAL] is required");

  std::vector<BoardSpec> specs;
  std::set<std::string> serials;
  for (std::size_t i = 0; i < board_args.size(); ++i) {
    specs.push_back(parse_board(board_args[i], i));
    if (!serials.insert(specs.back().serial).second)
      usage_error("serial '" + specs.back().serial + "' is used by two boards");
  }
  for (const auto& s : swd_off)
    if (!serials.count(s)) usage_error("--swd-off " + s + ": no --board has that serial");

  sim::SimServer server({.socket_path = *socket, .time_scale = time_scale});
  try {
    for (std::size_t i = 0; i < specs.size(); ++i) {
      fs::path dir;
      if (!state_dir.empty()) {
        dir = fs::path(state_dir) / specs[i].serial;
        fs::create_directories(dir);
      }
      auto board = std::make_unique<sim::Board>(
          *specs[i].chip, sim::BoardOptions{.serial = specs[i].serial,
                                            .uid_seed = static_cast<std::uint32_t>(i + 1),
                                            .state_dir = dir,
                                            .swd_off_jumper = swd_off.count(specs[i].serial) > 0});
      auto usb = sim::make_probe(specs[i].probe, *board);
      server.add_device(std::move(usb), std::move(board));
    }
    server.listen();
  } catch (const std::exception& e) {
    std::cerr << "probefarm-sim: " << e.what() << "\n";
    return 1;
  }

  g_server = &server;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  for (const auto& s : specs)
    std::cout << s.serial << ' ' << s.probe << ' ' << s.chip->name << '\n';
  std::cout.flush();
  server.run();
  g_server = nullptr;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a{{argv + 1, argv + argc}};
  if (a.done()) usage_error("missing arguments");
  const std::string& first = a.v[0];
  if (first == "--help" || first == "-h" || first == "help") {
    std::cout << kHelp;
    return 0;
  }
  if (first == "env") {
    ++a.i;
    return run_env(a);
  }
  if (first == "ctl") {
    ++a.i;
    return run_ctl(a);
  }
  for (const auto& s : a.v)
    if (s == "--help" || s == "-h") {
      std::cout << kHelp;
      return 0;
    }
  return run_serve(a);
}
