// The GDB tunnel: a loopback listener; per client, one WebSocket to the daemon, with bytes
// pumped both ways by one thread (WsClient is not thread-safe, so its receive and the
// socket's poll take turns with short timeouts). The daemon sends one text frame
// {"type": "error", ...} when it refuses the session; RSP bytes never start with '{'.
#include "cli/gdb_tunnel.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/remote.hpp"
#include "probe/error.hpp"
#include "server/http_client.hpp"

namespace probefarm::cli {

using nlohmann::json;

namespace {

std::atomic<bool> g_stop{false};

void on_signal(int) {
  g_stop = true;
}

constexpr int kTurnMs = 5;  // each side waits at most this long before the other's turn

class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

bool send_all(int fd, const std::string& bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

// Pumps one client until it or the daemon hangs up. Throws the daemon's refusal.
void tunnel(int client, const Options& o) {
  server::WsClient ws(server::ServerAddress::parse(o.server),
                      "/api/v1/probes/" + url_encode(o.probe) + "/gdb", o.token);
  bool first = true;
  for (;;) {
    std::optional<std::string> from_daemon;
    try {
      from_daemon = ws.receive(std::chrono::milliseconds(kTurnMs));
    } catch (const Error& e) {
      std::fprintf(stderr, "probefarm gdb: the daemon ended the session: %s\n", e.what());
      return;
    }
    if (from_daemon) {
      if (first && !from_daemon->empty() && from_daemon->front() == '{') {
        const json msg = json::parse(*from_daemon, nullptr, false);
        if (!msg.is_discarded() && msg.value("type", "") == "error")
          throw error_from_json(msg.value("error", json::object()));
      }
      first = false;
      if (!send_all(client, *from_daemon)) break;
    }
    pollfd p{client, POLLIN, 0};
    const int n = ::poll(&p, 1, kTurnMs);
    if (n < 0 && errno != EINTR) break;
    if (n > 0) {
      char buf[16 * 1024];
      const ssize_t got = ::recv(client, buf, sizeof buf, 0);
      if (got <= 0) break;  // GDB detached or quit
      ws.send(std::string(buf, static_cast<std::size_t>(got)), true);
    }
    if (g_stop) break;
  }
  ws.close();
}

}  // namespace

int run_gdb_tunnel(const Options& o) {
  if (o.probe.empty())
    throw Error(ErrorCategory::usage, "gdb needs --probe SERIAL",
                "'probefarm --server … list' shows the probes");
  Socket listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int one = 1;
  ::setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(o.gdb_port);
  // Loopback only: the daemon checks tokens, this port does not.
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (listener.get() < 0 ||
      ::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener.get(), 1) != 0)
    throw Error(
        ErrorCategory::usage,
        "cannot listen on 127.0.0.1:" + std::to_string(o.gdb_port) + ": " + std::strerror(errno),
        "pick another port with --port");
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::fprintf(stderr,
               "probefarm gdb: probe %s on 127.0.0.1:%u; in gdb: target extended-remote :%u\n",
               o.probe.c_str(), o.gdb_port, o.gdb_port);
  while (!g_stop) {
    pollfd p{listener.get(), POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    Socket client(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (client.get() < 0) continue;
    ::setsockopt(client.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::fprintf(stderr, "probefarm gdb: client connected\n");
    tunnel(client.get(), o);
    std::fprintf(stderr, "probefarm gdb: client gone\n");
  }
  return 0;
}

}  // namespace probefarm::cli
