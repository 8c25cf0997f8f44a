#include "server.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "sw_dp.hpp"

namespace probefarm::sim {
namespace {

using protocol::Op;
using protocol::Status;

// While paced, idle boards are advanced in steps of this much wall time: fine enough that
// a client connecting mid-step sees current time, coarse enough to cost nothing.
constexpr int kPaceTickMs = 10;
// A running core costs host time to emulate. pace_idle advances the boards in steps of this
// much virtual time (at time scale 1) and returns to the USB requests after this much host
// time, so that a request never waits for a whole tick of emulation of every board.
constexpr double kPaceStepMs = 0.5;
constexpr auto kPaceBudget = std::chrono::milliseconds(2);

Status to_status(UsbStatus s) {
  switch (s) {
    case UsbStatus::ok:
      return Status::ok;
    case UsbStatus::nak:
      return Status::nak;
    case UsbStatus::stall:
      return Status::stall;
    case UsbStatus::no_device:
      return Status::no_device;
  }
  return Status::error;
}

sockaddr_un make_address(const std::filesystem::path& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string s = path.string();
  if (s.empty() || s.size() >= sizeof(addr.sun_path))
    throw std::runtime_error("socket path '" + s + "' is empty or longer than " +
                             std::to_string(sizeof(addr.sun_path) - 1) + " bytes");
  std::memcpy(addr.sun_path, s.c_str(), s.size() + 1);
  return addr;
}

}  // namespace

SimServer::SimServer(SimServerOptions options) : options_(std::move(options)) {
  if (pipe2(wake_pipe_, O_NONBLOCK | O_CLOEXEC) != 0)
    throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
}

SimServer::~SimServer() {
  for (auto& [id, c] : clients_)
    close(c.fd);
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    std::filesystem::remove(options_.socket_path);
  }
  close(wake_pipe_[0]);
  close(wake_pipe_[1]);
}

std::uint32_t SimServer::add_device(std::unique_ptr<UsbDevice> device,
                                    std::unique_ptr<Board> board) {
  Device d;
  d.id = next_device_id_++;
  d.port = static_cast<std::uint8_t>(devices_.size() + 1);
  d.board = std::move(board);
  d.usb = std::move(device);
  devices_.push_back(std::move(d));
  return devices_.back().id;
}

void SimServer::listen() {
  sockaddr_un addr = make_address(options_.socket_path);
  // A leftover socket file from a crashed server is replaced; a live server is not.
  int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    close(probe);
    throw std::runtime_error("another server is already listening on " +
                             options_.socket_path.string());
  }
  close(probe);
  ::unlink(addr.sun_path);

  listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (listen_fd_ < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(listen_fd_, 64) != 0) {
    std::string err = std::strerror(errno);
    close(listen_fd_);
    listen_fd_ = -1;
    throw std::runtime_error("cannot listen on " + options_.socket_path.string() + ": " + err);
  }
}

void SimServer::request_stop() {
  stop_.store(true);
  char b = 1;
  [[maybe_unused]] auto n = write(wake_pipe_[1], &b, 1);
}

SimServer::Device* SimServer::find_device(std::uint32_t id) {
  for (auto& d : devices_)
    if (d.present && d.id == id) return &d;
  return nullptr;
}

SimServer::Device& SimServer::device_by_serial(const std::string& serial) {
  std::string known;
  for (auto& d : devices_) {
    if (d.usb->serial() == serial) return d;
    known += (known.empty() ? "" : ", ") + d.usb->serial();
  }
  throw std::runtime_error("no probe with serial '" + serial + "' (known: " + known + ")");
}

void SimServer::unplug(Device& d) {
  // Like a real unplug: every handle on the device goes stale (the stand-in reports
  // LIBUSB_ERROR_NO_DEVICE), claims vanish, the probe loses power and lets go of nRST.
  for (auto& [id, c] : clients_) {
    release_claims(c, d);
    c.opened.erase(d.id);
    c.touched.erase(d.id);
  }
  d.present = false;
  d.faults = {};
  d.configuration = 1;
  d.usb->power_lost();
  if (d.board) {
    d.board->set_nrst(false);
    d.board->save_state();
  }
}

bool SimServer::take_stall(Device& d) {
  if (d.faults.stall == 0) return false;
  --d.faults.stall;
  return true;
}

bool SimServer::damage(Device& d, std::vector<std::uint8_t>& data) {
  if (d.faults.drop > 0) {
    --d.faults.drop;
    return false;
  }
  if (d.faults.garble > 0) {
    --d.faults.garble;
    for (auto& b : data)
      b = static_cast<std::uint8_t>(~b);
  }
  return true;
}

void SimServer::run() {
  if (listen_fd_ < 0) listen();
  wall_start_ = WallClock::now();
  for (auto& d : devices_)
    if (d.board) d.virtual_start = d.board->now();

  std::vector<pollfd> fds;
  std::vector<int> ids;
  while (!stop_.load()) {
    fds.clear();
    ids.clear();
    fds.push_back({wake_pipe_[0], POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    const auto now = WallClock::now();
    for (auto& [id, c] : clients_) {
      short events = 0;
      if (c.hold_until <= now) events |= POLLIN;
      if (!c.out.empty()) events |= POLLOUT;
      fds.push_back({c.fd, events, 0});
      ids.push_back(id);
    }
    int n = poll(fds.data(), fds.size(), poll_timeout_ms());
    if (n < 0 && errno != EINTR) break;
    if (stop_.load()) break;
    if (n > 0) {
      if (fds[0].revents) {
        char buf[64];
        while (read(wake_pipe_[0], buf, sizeof(buf)) > 0) {
        }
      }
      if (fds[1].revents & POLLIN) accept_clients();
      for (std::size_t i = 0; i < ids.size(); ++i) {
        auto it = clients_.find(ids[i]);
        if (it == clients_.end()) continue;
        Client& c = it->second;
        short re = fds[i + 2].revents;
        bool alive = true;
        if (re & (POLLIN | POLLHUP | POLLERR)) alive = read_client(c);
        if (alive && (re & POLLOUT)) alive = flush_client(c);
        if (!alive) drop_client(c);
      }
    }
    // Release responses whose pacing delay is over, then serve requests they held back.
    const auto later = WallClock::now();
    for (auto it = clients_.begin(); it != clients_.end();) {
      Client& c = it->second;
      ++it;
      if (!c.held.empty() && c.hold_until <= later) {
        c.out.insert(c.out.end(), c.held.begin(), c.held.end());
        c.held.clear();
        process_frames(c);
        if (!flush_client(c)) drop_client(c);
      }
    }
    if (options_.time_scale > 0) behind_wall_ = pace_idle();
  }

  for (auto& d : devices_)
    if (d.board) d.board->save_state();
  while (!clients_.empty()) {
    Client& c = clients_.begin()->second;
    close(c.fd);
    clients_.erase(clients_.begin());
  }
  close(listen_fd_);
  listen_fd_ = -1;
  std::filesystem::remove(options_.socket_path);
}

int SimServer::poll_timeout_ms() const {
  if (behind_wall_) return 0;
  int timeout = options_.time_scale > 0 ? kPaceTickMs : -1;
  const auto now = WallClock::now();
  for (const auto& [id, c] : clients_) {
    if (c.held.empty()) continue;
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(c.hold_until - now).count();
    int t = static_cast<int>(std::max<std::int64_t>(0, ms));
    timeout = timeout < 0 ? t : std::min(timeout, t);
  }
  return timeout;
}

void SimServer::accept_clients() {
  for (;;) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    Client c;
    c.id = next_client_id_++;
    c.fd = fd;
    clients_.emplace(c.id, std::move(c));
  }
}

bool SimServer::read_client(Client& c) {
  std::uint8_t buf[65536];
  for (;;) {
    ssize_t n = recv(c.fd, buf, sizeof(buf), 0);
    if (n > 0) {
      c.in.insert(c.in.end(), buf, buf + n);
      continue;
    }
    if (n == 0) return false;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    if (errno == EINTR) continue;
    return false;
  }
  if (c.in.size() >= 4 && protocol::frame_length(c.in.data()) > protocol::kMaxFrame) return false;
  process_frames(c);
  return flush_client(c);
}

void SimServer::process_frames(Client& c) {
  std::size_t pos = 0;
  while (c.held.empty() && c.in.size() - pos >= 4) {
    std::uint32_t len = protocol::frame_length(c.in.data() + pos);
    if (len > protocol::kMaxFrame || c.in.size() - pos - 4 < len) break;
    std::span<const std::uint8_t> body(c.in.data() + pos + 4, len);
    pos += 4 + len;
    std::span<const std::uint8_t> payload;
    auto h = protocol::parse_header(body, payload);
    if (!h || h->kind != protocol::Kind::request) continue;
    auto response = handle(c, *h, payload);
    if (c.hold_until > WallClock::now())
      c.held = std::move(response);
    else
      c.out.insert(c.out.end(), response.begin(), response.end());
  }
  c.in.erase(c.in.begin(), c.in.begin() + static_cast<std::ptrdiff_t>(pos));
}

bool SimServer::flush_client(Client& c) {
  while (!c.out.empty()) {
    ssize_t n = send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
    if (n > 0) {
      c.out.erase(c.out.begin(), c.out.begin() + n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
  return true;
}

void SimServer::release_claims(Client& c, Device& d) {
  if (d.owner == c.id) {
    d.owner = 0;
    d.claimed_interfaces.clear();
  }
}

void SimServer::save_touched(Client& c) {
  for (auto id : c.touched)
    if (Device* d = find_device(id); d && d->board) d->board->save_state();
  c.touched.clear();
}

void SimServer::drop_client(Client& c) {
  for (auto& d : devices_)
    release_claims(c, d);
  save_touched(c);
  close(c.fd);
  clients_.erase(c.id);
}

SimServer::WallClock::duration SimServer::ahead_of_wall(Board& board) const {
  // Virtual time the board should have reached by now, relative to where it started.
  auto wall_ps = std::chrono::duration<double, std::pico>(WallClock::now() - wall_start_).count();
  double target = wall_ps * options_.time_scale;
  double elapsed = 0;
  for (const auto& d : devices_)
    if (d.board.get() == &board)
      elapsed =
          static_cast<double>(board.now() - d.virtual_start) + static_cast<double>(d.pace_forgiven);
  double ahead_ps = (elapsed - target) / options_.time_scale;
  if (ahead_ps <= 0) return WallClock::duration::zero();
  return std::chrono::duration_cast<WallClock::duration>(
      std::chrono::duration<double, std::pico>(ahead_ps));
}

bool SimServer::pace_idle() {
  const auto started = WallClock::now();
  auto wall_ps = std::chrono::duration<double, std::pico>(started - wall_start_).count();
  auto target = static_cast<Picoseconds>(wall_ps * options_.time_scale);
  // At most one pace tick of virtual time per board and call. A running core (a flash loader
  // polling its ring buffer) can cost more host time to emulate than it takes on silicon;
  // catching up in one long burst would leave the USB requests unserved for that long, and
  // the board would see its host go silent. A board that falls behind the wall clock runs
  // slower instead: the debt is dropped.
  const auto tick = static_cast<Picoseconds>(kPaceTickMs * 1e9 * options_.time_scale);
  const auto step =
      std::max<Picoseconds>(1, static_cast<Picoseconds>(kPaceStepMs * 1e9 * options_.time_scale));
  std::vector<Picoseconds> want(devices_.size(), 0);
  for (std::size_t i = 0; i < devices_.size(); ++i) {
    Device& d = devices_[i];
    if (!d.board) continue;
    want[i] = d.virtual_start + target - d.pace_forgiven;
    if (want[i] > d.board->now() && want[i] - d.board->now() > tick) {
      d.pace_forgiven += want[i] - d.board->now() - tick;
      want[i] = d.board->now() + tick;
    }
  }
  // Round robin in small steps, so that every board moves even when the slice runs out.
  for (;;) {
    bool behind = false;
    for (std::size_t i = 0; i < devices_.size(); ++i) {
      Device& d = devices_[i];
      if (!d.board || d.board->now() >= want[i]) continue;
      d.board->advance(std::min(step, want[i] - d.board->now()));
      behind = behind || d.board->now() < want[i];
    }
    if (!behind) return false;
    if (WallClock::now() - started >= kPaceBudget) return true;
  }
}

Status SimServer::transfer_access(Client& c, Device& d) {
  if (!c.opened.count(d.id)) return Status::not_open;
  if (d.owner != 0 && d.owner != c.id) return Status::busy;
  d.owner = c.id;  // usbfs claims an unclaimed interface on first use
  c.touched.insert(d.id);
  return Status::ok;
}

Status SimServer::standard_control(Device& d, const UsbSetup& s, std::vector<std::uint8_t>& data) {
  // USB 2.0 9.4, Table 9-4 request codes.
  const bool in = s.request_type & 0x80;
  // Requests to an interface that are not answered here (class descriptors such as HID
  // 1.11 7.1.1's HID and report descriptors) belong to the device model.
  const bool to_interface = (s.request_type & 0x1F) == 1;  // USB 2.0 9.3.1 Recipient
  switch (s.request) {
    case 0x00:  // GET_STATUS: self/remote-wakeup or halt bits, all clear
      data.assign(2, 0);
      break;
    case 0x01:  // CLEAR_FEATURE (ENDPOINT_HALT): our endpoints never halt
    case 0x03:  // SET_FEATURE
      data.clear();
      return Status::ok;
    case 0x06: {  // GET_DESCRIPTOR
      if (!in) return Status::stall;
      switch (s.value >> 8) {
        case 1:
          data = d.usb->device_descriptor();
          break;
        case 2:
          if ((s.value & 0xFF) != 0) return Status::stall;
          data = d.usb->config_descriptor();
          break;
        case 3:
          data = d.usb->string_descriptor(static_cast<std::uint8_t>(s.value));
          break;
        default:
          if (!to_interface) return Status::stall;
          if (Status st = to_status(d.usb->control(s, data)); st != Status::ok) return st;
      }
      if (data.empty()) return Status::stall;
      break;
    }
    case 0x08:  // GET_CONFIGURATION
      data.assign(1, d.configuration);
      break;
    case 0x09:  // SET_CONFIGURATION: 0 (unconfigured) or our only configuration, 1
      if (s.value > 1) return Status::stall;
      d.configuration = static_cast<std::uint8_t>(s.value);
      data.clear();
      return Status::ok;
    case 0x0A:  // GET_INTERFACE: alternate setting 0
      data.assign(1, 0);
      break;
    case 0x0B:  // SET_INTERFACE: only alternate setting 0 exists
      data.clear();
      return s.value == 0 ? Status::ok : Status::stall;
    default:
      return to_interface ? to_status(d.usb->control(s, data)) : Status::stall;
  }
  if (data.size() > s.length) data.resize(s.length);
  return Status::ok;
}

std::vector<std::uint8_t> SimServer::handle(Client& c, const protocol::Header& h,
                                            std::span<const std::uint8_t> payload) {
  auto w = protocol::begin_frame(protocol::Kind::response, h.op, h.seq);
  protocol::Reader r(payload);
  auto reply = [&](Status s) {
    w.u8(static_cast<std::uint8_t>(s));
    return protocol::finish_frame(w);
  };
  // Most ops address a device the client has opened.
  auto device_arg = [&](Status& status) -> Device* {
    Device* d = find_device(r.u32());
    status = !r.ok() ? Status::bad_request : d ? Status::ok : Status::no_device;
    return d;
  };

  Status st = Status::ok;
  switch (h.op) {
    case Op::hello:
      w.u8(0);
      w.u32(protocol::kVersion);
      return protocol::finish_frame(w);
    case Op::list_devices: {
      w.u8(0);
      w.u32(static_cast<std::uint32_t>(
          std::count_if(devices_.begin(), devices_.end(), [](auto& d) { return d.present; })));
      for (auto& d : devices_) {
        if (!d.present) continue;
        protocol::DeviceInfo info;
        info.id = d.id;
        info.bus = 1;
        // USB 2.0 9.1.2: addresses 1-127; 1 is the root hub here. A replug gets a new one.
        info.address = static_cast<std::uint8_t>(2 + (d.id - 1) % 126);
        info.port_path = {d.port};
        info.speed =
            d.usb->speed() == UsbSpeed::high ? protocol::Speed::high : protocol::Speed::full;
        info.device_descriptor = d.usb->device_descriptor();
        info.config_descriptor = d.usb->config_descriptor();
        info.serial = d.usb->serial();
        info.probe_kind = d.usb->probe_kind();
        protocol::write_device_info(w, info);
      }
      return protocol::finish_frame(w);
    }
    case Op::get_string: {
      Device* d = device_arg(st);
      auto index = r.u8();
      r.u16();  // langid: every string exists in the one language we offer
      if (!r.ok()) return reply(Status::bad_request);
      if (st != Status::ok) return reply(st);
      auto s = d->usb->string_descriptor(index);
      if (s.empty()) return reply(Status::stall);
      w.u8(0);
      w.bytes(s);
      return protocol::finish_frame(w);
    }
    case Op::open: {
      Device* d = device_arg(st);
      if (st == Status::ok) c.opened.insert(d->id);
      return reply(st);
    }
    case Op::close: {
      Device* d = device_arg(st);
      if (st != Status::ok) return reply(st);
      release_claims(c, *d);
      c.opened.erase(d->id);
      if (c.touched.erase(d->id) && d->board) d->board->save_state();
      return reply(Status::ok);
    }
    case Op::claim:
    case Op::release: {
      Device* d = device_arg(st);
      auto iface = r.u8();
      if (!r.ok()) return reply(Status::bad_request);
      if (st != Status::ok) return reply(st);
      if (!c.opened.count(d->id)) return reply(Status::not_open);
      if (h.op == Op::claim) {
        if (d->owner != 0 && d->owner != c.id) return reply(Status::busy);
        d->owner = c.id;
        d->claimed_interfaces.insert(iface);
      } else if (d->owner == c.id) {
        d->claimed_interfaces.erase(iface);
        if (d->claimed_interfaces.empty()) d->owner = 0;
      }
      return reply(Status::ok);
    }
    case Op::control: {
      Device* d = device_arg(st);
      auto raw = r.raw(8);
      auto data = r.bytes();
      if (!r.ok()) return reply(Status::bad_request);
      if (st != Status::ok) return reply(st);
      if (!c.opened.count(d->id)) return reply(Status::not_open);
      UsbSetup setup{raw[0], raw[1], static_cast<std::uint16_t>(raw[2] | raw[3] << 8),
                     static_cast<std::uint16_t>(raw[4] | raw[5] << 8),
                     static_cast<std::uint16_t>(raw[6] | raw[7] << 8)};
      Status s = (setup.request_type & 0x60) == 0 ? standard_control(*d, setup, data)
                                                  : to_status(d->usb->control(setup, data));
      if (s != Status::ok) return reply(s);
      if (!(setup.request_type & 0x80)) data.clear();
      w.u8(0);
      w.bytes(data);
      return protocol::finish_frame(w);
    }
    case Op::out:
    case Op::in: {
      Device* d = device_arg(st);
      auto ep = r.u8();
      std::vector<std::uint8_t> data;
      std::uint32_t max_length = 0;
      if (h.op == Op::out)
        data = r.bytes();
      else
        max_length = r.u32();
      if (!r.ok()) return reply(Status::bad_request);
      if (st != Status::ok) return reply(st);
      if (Status a = transfer_access(c, *d); a != Status::ok) return reply(a);
      if (take_stall(*d)) return reply(Status::stall);
      UsbStatus us = UsbStatus::ok;
      if (h.op == Op::out) {
        std::vector<std::uint8_t> arrived = data;
        if (damage(*d, arrived)) us = d->usb->out(ep, arrived);
      } else {
        us = d->usb->in(ep, max_length, data);
        if (us == UsbStatus::ok && !damage(*d, data)) us = UsbStatus::nak;
      }
      if (us != UsbStatus::ok) return reply(to_status(us));
      if (options_.time_scale > 0 && d->board) {
        auto ahead = ahead_of_wall(*d->board);
        if (ahead > WallClock::duration::zero()) c.hold_until = WallClock::now() + ahead;
      }
      w.u8(0);
      if (h.op == Op::out)
        w.u32(static_cast<std::uint32_t>(data.size()));
      else
        w.bytes(data);
      return protocol::finish_frame(w);
    }
    case Op::clear_halt:
    case Op::reset: {
      Device* d = device_arg(st);
      if (h.op == Op::clear_halt) r.u8();
      if (!r.ok()) return reply(Status::bad_request);
      if (st != Status::ok) return reply(st);
      if (!c.opened.count(d->id)) return reply(Status::not_open);
      return reply(Status::ok);
    }
    case Op::ctl: {
      auto command = r.string();
      if (!r.ok()) return reply(Status::bad_request);
      std::string text;
      Status s = Status::ok;
      try {
        text = ctl(command);
      } catch (const std::exception& e) {
        s = Status::error;
        text = e.what();
      }
      w.u8(static_cast<std::uint8_t>(s));
      w.string(text);
      return protocol::finish_frame(w);
    }
    default:
      return reply(Status::unknown_op);
  }
}

std::string SimServer::ctl(const std::string& command) {
  std::istringstream in(command);
  std::string verb;
  in >> verb;
  if (verb == "stats") return stats_json();
  static const char* const kUsage =
      "ctl commands: stats | unplug SERIAL | replug SERIAL | "
      "fault SERIAL drop|stall|garble N | wait SERIAL N | power SERIAL off|on|cycle | "
      "swd-off SERIAL on|off";
  if (verb != "unplug" && verb != "replug" && verb != "fault" && verb != "wait" &&
      verb != "power" && verb != "swd-off")
    throw std::runtime_error("unknown ctl command '" + verb + "' (" + kUsage + ")");
  std::string serial;
  if (!(in >> serial)) throw std::runtime_error(verb + ": missing SERIAL (" + kUsage + ")");
  Device& d = device_by_serial(serial);
  // The remaining arguments: exactly `n` words.
  std::vector<std::string> args;
  for (std::string a; in >> a;)
    args.push_back(a);
  auto expect = [&](std::size_t n, const char* form) {
    if (args.size() != n) throw std::runtime_error("usage: " + verb + " SERIAL " + form);
  };
  auto count = [&](const std::string& text, const char* form) {
    std::size_t used = 0;
    unsigned long n = 0;
    try {
      n = std::stoul(text, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != text.size() || n > 1'000'000'000)
      throw std::runtime_error("usage: " + verb + " SERIAL " + form + " ('" + text +
                               "' is not a count)");
    return static_cast<unsigned>(n);
  };
  auto need_board = [&]() -> Board& {
    if (!d.board) throw std::runtime_error(verb + ": probe " + serial + " has no board");
    return *d.board;
  };

  if (verb == "unplug") {
    expect(0, "");
    if (!d.present) return serial + " is already unplugged\n";
    unplug(d);
    return serial + " unplugged\n";
  }
  if (verb == "replug") {
    expect(0, "");
    if (d.present) return serial + " is already plugged in\n";
    d.id = next_device_id_++;
    d.present = true;
    return serial + " plugged in again\n";
  }
  if (verb == "fault") {
    const char* form = "drop|stall|garble N";
    expect(2, form);
    const unsigned n = count(args[1], form);
    if (args[0] == "drop") {
      d.faults.drop = n;
    } else if (args[0] == "stall") {
      d.faults.stall = n;
    } else if (args[0] == "garble") {
      d.faults.garble = n;
    } else {
      throw std::runtime_error("usage: fault SERIAL " + std::string(form));
    }
    return serial + ": the next " + std::to_string(n) + " USB transfers will " +
           (args[0] == "drop"    ? "be lost"
            : args[0] == "stall" ? "stall"
                                 : "arrive garbled") +
           "\n";
  }
  if (verb == "wait") {
    expect(1, "N");
    const unsigned n = count(args[0], "N");
    need_board().swd().inject_wait(n);
    return serial + ": the next " + std::to_string(n) + " SWD accesses are answered WAIT\n";
  }
  if (verb == "power") {
    expect(1, "off|on|cycle");
    Board& b = need_board();
    if (args[0] == "cycle") {
      b.power_cycle();
    } else if (args[0] == "on" || args[0] == "off") {
      b.set_powered(args[0] == "on");
    } else {
      throw std::runtime_error("usage: power SERIAL off|on|cycle");
    }
    return serial + ": target power " + (b.powered() ? "on" : "off") + "\n";
  }
  // swd-off
  expect(1, "on|off");
  if (args[0] != "on" && args[0] != "off") throw std::runtime_error("usage: swd-off SERIAL on|off");
  need_board().set_swd_off_jumper(args[0] == "on");
  return serial + ": SWD-OFF jumper " + (args[0] == "on" ? "fitted" : "removed") +
         "; the firmware reads it after the next reset\n";
}

std::string SimServer::stats_json() const {
  nlohmann::ordered_json boards = nlohmann::ordered_json::array();
  for (const auto& d : devices_) {
    nlohmann::ordered_json b;
    b["id"] = d.id;
    b["serial"] = d.usb->serial();
    b["probe"] = d.usb->probe_kind();
    if (d.board) {
      const Board& board = *d.board;
      Counters& k = d.board->counters();
      b["chip"] = std::string(board.chip().name);
      b["virtual_time_ps"] = board.now();
      b["virtual_time_us"] = board.now() / kMicrosecond;
      b["usb_transfers"] = k.usb_transfers;
      b["swd_transfers"] = k.swd_transfers;
      b["bytes_programmed"] = k.bytes_programmed;
      b["pages_erased"] = k.pages_erased;
      b["sectors_erased"] = k.sectors_erased;
      b["mass_erases"] = k.mass_erases;
    } else {
      b["chip"] = nullptr;
    }
    b["present"] = d.present;
    if (d.board) {
      b["powered"] = d.board->powered();
      b["swd_off_jumper"] = d.board->swd_off_jumper();
      b["swd_pins_connected"] = d.board->swd_pins_connected();
    }
    b["claimed"] = d.owner != 0;
    boards.push_back(std::move(b));
  }
  nlohmann::ordered_json doc;
  doc["time_scale"] = options_.time_scale;
  doc["clients"] = clients_.size();
  doc["boards"] = std::move(boards);
  return doc.dump(2) + "\n";
}

}  // namespace probefarm::sim
