#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "connection.hpp"

namespace probefarm::sim::standin {

Connection::~Connection() {
  std::lock_guard lock(mu_);
  drop();
}

void Connection::drop() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

void Connection::disconnect() {
  std::lock_guard lock(mu_);
  drop();
}

bool Connection::connected() const {
  std::lock_guard lock(mu_);
  return fd_ >= 0;
}

std::string Connection::connect(const std::string& path) {
  std::lock_guard lock(mu_);
  drop();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return "socket path is too long";
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::strerror(errno);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    std::string err = std::strerror(errno);
    close(fd);
    return err;
  }
  fd_ = fd;
  return {};
}

namespace {

bool send_all(int fd, const std::vector<std::uint8_t>& b) {
  std::size_t off = 0;
  while (off < b.size()) {
    ssize_t n = send(fd, b.data() + off, b.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

bool recv_all(int fd, std::uint8_t* p, std::size_t n) {
  while (n > 0) {
    ssize_t r = recv(fd, p, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

}  // namespace

std::optional<std::vector<std::uint8_t>> Connection::call(
    protocol::Op op, const std::vector<std::uint8_t>& payload) {
  std::lock_guard lock(mu_);
  if (fd_ < 0) return std::nullopt;
  const std::uint32_t seq = ++seq_;
  auto w = protocol::begin_frame(protocol::Kind::request, op, seq);
  w.raw(payload);
  if (!send_all(fd_, protocol::finish_frame(w))) {
    drop();
    return std::nullopt;
  }
  for (;;) {
    std::uint8_t len[4];
    if (!recv_all(fd_, len, 4)) break;
    std::uint32_t n = protocol::frame_length(len);
    if (n > protocol::kMaxFrame) break;
    std::vector<std::uint8_t> body(n);
    if (!recv_all(fd_, body.data(), n)) break;
    std::span<const std::uint8_t> rest;
    auto h = protocol::parse_header(body, rest);
    if (!h) break;
    // Events (hot-plug, later) are not subscribed to yet; anything but our answer is skipped.
    if (h->kind != protocol::Kind::response || h->seq != seq) continue;
    return std::vector<std::uint8_t>(rest.begin(), rest.end());
  }
  drop();
  return std::nullopt;
}

Reply Connection::request(protocol::Op op, const std::vector<std::uint8_t>& payload) {
  Reply r;
  auto body = call(op, payload);
  if (!body || body->empty()) return r;
  r.status = static_cast<protocol::Status>((*body)[0]);
  r.payload.assign(body->begin() + 1, body->end());
  return r;
}

}  // namespace probefarm::sim::standin
