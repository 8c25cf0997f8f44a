// GDB on a probe, two ways in:
//  - POST /api/v1/probes/{serial}/gdb: a TCP port for one GDB client. The handler opens the
//    probe session and a listener on the daemon's listen host (port chosen by the kernel),
//    answers with the port, and hands both to a thread of its own: it accepts one client
//    (or gives up after 60 s) and serves it.
//  - WebSocket /api/v1/probes/{serial}/gdb: binary frames carry the raw RSP bytes both ways
//    (`probefarm gdb` tunnels a local port through it). A session that cannot be opened is
//    one text frame {"type": "error", "error": {...}} and a close; RSP never starts with '{'.
// Either way a thread serves the client (gdb_server.hpp), then closes the session and
// writes the audit row. The threads belong to a registry owned by the route
// handler, so by the HttpServer: its destruction (before the probe manager and the
// database in main.cpp) tells them to stop and joins them, so that none outlives the
// services it uses.
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>
#include <utility>

#include <nlohmann/json.hpp>

#include "probe/error.hpp"
#include "server/api.hpp"
#include "server/config.hpp"
#include "server/console.hpp"
#include "server/database.hpp"
#include "server/gdb_server.hpp"
#include "server/http_server.hpp"
#include "server/log.hpp"
#include "server/probe_manager.hpp"
#include "server/probe_session.hpp"
#include "server/worker_threads.hpp"

namespace probefarm::server {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr auto kAcceptTimeout = std::chrono::seconds(60);

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

class SocketChannel : public GdbChannel {
 public:
  explicit SocketChannel(int fd) : fd_(fd) {}

  std::optional<std::string> read(std::chrono::milliseconds timeout) override {
    pollfd p{fd_, POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (n < 0) return errno == EINTR ? std::optional<std::string>("") : std::nullopt;
    if (n == 0) return std::string();
    char buf[16 * 1024];
    const ssize_t got = ::recv(fd_, buf, sizeof buf, 0);
    if (got > 0) return std::string(buf, static_cast<std::size_t>(got));
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) return std::string();
    return std::nullopt;  // orderly close or a reset
  }

  bool write(std::string_view bytes) override {
    while (!bytes.empty()) {
      const ssize_t sent = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (sent < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) {
          pollfd p{fd_, POLLOUT, 0};
          // A client that takes nothing for 10 s is gone for our purposes.
          if (::poll(&p, 1, 10000) <= 0) return false;
          continue;
        }
        return false;
      }
      bytes.remove_prefix(static_cast<std::size_t>(sent));
    }
    return true;
  }

 private:
  int fd_;
};

// The WebSocket's messages as a byte stream: the connection's strand pushes what arrives,
// the GDB thread reads it.
class WebSocketChannel : public GdbChannel {
 public:
  explicit WebSocketChannel(std::shared_ptr<WebSocket> ws) : ws_(std::move(ws)) {}

  void push(const std::string& bytes) {
    {
      std::lock_guard lock(mutex_);
      in_ += bytes;
    }
    cv_.notify_all();
  }
  void closed() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    cv_.notify_all();
  }

  std::optional<std::string> read(std::chrono::milliseconds timeout) override {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, timeout, [&] { return !in_.empty() || closed_; });
    if (!in_.empty()) return std::exchange(in_, {});
    if (closed_) return std::nullopt;
    return std::string();
  }

  bool write(std::string_view bytes) override {
    {
      std::lock_guard lock(mutex_);
      if (closed_) return false;
    }
    return ws_->send(std::make_shared<const std::string>(bytes), true);
  }

 private:
  std::shared_ptr<WebSocket> ws_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::string in_;
  bool closed_ = false;
};

// A listening TCP socket on `host`, any port. Throws Error(usage) naming the reason.
Fd listen_on(const std::string& host, std::uint16_t& port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), "0", &hints, &found);
  if (rc != 0)
    throw Error(ErrorCategory::internal,
                "cannot resolve the listen host " + host + ": " + ::gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(found, ::freeaddrinfo);
  std::string reason = "no address";
  for (addrinfo* a = found; a; a = a->ai_next) {
    Fd fd(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
    if (fd.get() < 0) continue;
    if (::bind(fd.get(), a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd.get(), 1) != 0) {
      reason = std::strerror(errno);
      continue;
    }
    sockaddr_storage bound{};
    socklen_t len = sizeof bound;
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &len);
    port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                             : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    return fd;
  }
  throw Error(ErrorCategory::internal, "cannot open a GDB port on " + host + ": " + reason,
              "check the daemon's listen address");
}

// Waits for one client until the deadline or `stopping`; -1 when none came.
int accept_one(int listen_fd, const std::atomic<bool>& stopping, std::string& peer) {
  const auto deadline = Clock::now() + kAcceptTimeout;
  while (!stopping && Clock::now() < deadline) {
    pollfd p{listen_fd, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    sockaddr_storage from{};
    socklen_t len = sizeof from;
    const int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&from), &len, SOCK_CLOEXEC);
    if (fd < 0) continue;
    char host[NI_MAXHOST] = "", serv[NI_MAXSERV] = "";
    ::getnameinfo(reinterpret_cast<sockaddr*>(&from), len, host, sizeof host, serv, sizeof serv,
                  NI_NUMERICHOST | NI_NUMERICSERV);
    peer = std::string(host) + ":" + serv;
    // Small packets both ways, each waited for: no Nagle delay.
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
  }
  return -1;
}

std::string describe(const GdbSummary& s, const std::string& peer) {
  std::ostringstream out;
  out.precision(1);
  out << std::fixed << "gdb session of " << s.seconds << " s";
  if (!peer.empty()) out << " from " << peer;
  out << ": " << s.bytes_loaded << " bytes loaded, " << s.breakpoints_hit << " breakpoint hits, "
      << s.watchpoints_hit << " watchpoint hits; ended: " << s.end_reason;
  if (!s.last_error.empty()) out << "; last error: " << s.last_error;
  return out.str();
}

// The audit row of a GDB session on `view`'s probe, before the session ran.
AuditRow gdb_audit_row(const ProbeView& view, const std::string& who) {
  AuditRow row;
  row.who = who;
  row.probe = view.serial;
  row.operation = "gdb";
  if (view.target) {
    row.chip = view.target->chip;
    row.target_uid = view.target->unique_id;
  }
  return row;
}

void finish_audit(Services& s, AuditRow row, const GdbSummary& summary, const std::string& peer) {
  if (!summary.chip.empty()) row.chip = summary.chip;
  row.at = now_ms();
  row.result = summary.failed ? "failed" : "succeeded";
  row.bytes_programmed = summary.bytes_loaded;
  row.detail = describe(summary, peer);
  if (summary.failed) row.error = summary.end_reason;
  try {
    s.db.add_audit(row);
  } catch (const std::exception& e) {
    log_event(LogLevel::error, "gdb.audit_failed", {{"serial", row.probe}, {"error", e.what()}});
  }
  log_event(LogLevel::info, "gdb.closed", {{"serial", row.probe}, {"detail", row.detail}});
}

// Serves one client on the session, closes the session and writes the audit row. On a
// thread of `owner`.
void serve_and_audit(Services& s, ProbeSession& session, AuditRow row, Role role,
                     GdbChannel& channel, const std::string& peer, const WorkerThreads& owner) {
  log_event(LogLevel::info, "gdb.connected", {{"serial", row.probe}, {"peer", peer}});
  GdbSummary summary;
  {
    // `monitor` is the probe's console, with the client's role and audit rows.
    Console console(session, ConsoleEnv{&s.images, &s.db, row.who, role});
    GdbOptions options;
    options.stopping = [&owner] { return owner.stopping().load(); };
    options.monitor = [&console](const std::string& line) { return console.execute(line); };
    summary = serve_gdb(channel, session, options);
  }
  session.close();
  finish_audit(s, std::move(row), summary, peer);
}

// The session for a GDB client, or the refusal as an API error.
std::shared_ptr<ProbeSession> open_gdb_session(Services& s, const std::string& serial,
                                               const Principal& who, std::optional<ProbeView>& view,
                                               JobError& refused) {
  view = s.probes.get(serial);
  if (!view) {
    refused = JobError{"probe_not_found", "probe " + serial + " is unknown",
                       "GET /api/v1/probes lists the probes this daemon has seen"};
    return nullptr;
  }
  return s.probes.open_session(serial, "gdb", who.name, refused);
}

}  // namespace

void gdb_routes(HttpServer& http, Services& s) {
  auto threads = std::make_shared<WorkerThreads>();
  http.add({"POST", "/api/v1/probes/{serial}/gdb", Role::operator_, BodyKind::text},
           [&s, threads](Request& r, Respond respond) {
             const std::string serial = r.params.at("serial");
             std::optional<ProbeView> view;
             JobError refused;
             std::shared_ptr<ProbeSession> session =
                 open_gdb_session(s, serial, r.principal, view, refused);
             if (!session)
               return respond(Response::error(http_status(refused.category), refused.category,
                                              refused.message, refused.hint));
             std::uint16_t port = 0;
             Fd listener;
             try {
               listener = listen_on(s.config.listen_host, port);
             } catch (...) {
               session->close();
               throw;
             }
             log_event(LogLevel::info, "gdb.listening",
                       {{"serial", serial}, {"port", port}, {"who", r.principal.name}});
             threads->spawn([&s, session, row = gdb_audit_row(*view, r.principal.name),
                             role = r.principal.role, owner = threads.get(),
                             listener = std::make_shared<Fd>(std::move(listener))]() mutable {
               std::string peer;
               Fd client(accept_one(listener->get(), owner->stopping(), peer));
               listener->reset();  // one client: nobody else may connect
               if (client.get() < 0) {
                 session->close();
                 GdbSummary none;
                 none.failed = true;
                 none.end_reason = owner->stopping() ? "the daemon is stopping"
                                                     : "no client connected within 60 s";
                 finish_audit(s, std::move(row), none, peer);
                 return;
               }
               SocketChannel channel(client.get());
               serve_and_audit(s, *session, std::move(row), role, channel, peer, *owner);
             });
             respond(Response::json(201, {{"port", port}, {"host", s.config.listen_host}}));
           });

  http.add_websocket(
      {"WS", "/api/v1/probes/{serial}/gdb", Role::operator_},
      [&s, threads](std::shared_ptr<WebSocket> ws) {
        const Request& r = ws->request();
        std::optional<ProbeView> view;
        JobError refused;
        std::shared_ptr<ProbeSession> session =
            open_gdb_session(s, r.params.at("serial"), r.principal, view, refused);
        if (!session) {
          ws->send(std::make_shared<const std::string>(json{
              {"type", "error"},
              {"error",
               {{"category", refused.category},
                {"message", refused.message},
                {"hint", refused.hint}}}}.dump()));
          ws->close(refused.message.substr(0, 120));
          return;
        }
        auto channel = std::make_shared<WebSocketChannel>(ws);
        ws->on_message = [channel](const std::string& bytes, bool) { channel->push(bytes); };
        ws->on_close = [channel] { channel->closed(); };
        threads->spawn([&s, session, channel, ws, row = gdb_audit_row(*view, r.principal.name),
                        role = r.principal.role, peer = r.remote, owner = threads.get()] {
          serve_and_audit(s, *session, row, role, *channel, peer, *owner);
          ws->close();
        });
      });
}

}  // namespace probefarm::server
