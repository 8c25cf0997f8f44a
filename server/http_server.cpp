// HTTP/1.1 and WebSocket sessions on Boost.Beast, in the shape of Beast's advanced_server
// example: one session object per connection, every completion handler on the
// connection's strand, a timeout and a body limit on every read.
#include "server/http_server.hpp"

#include <unistd.h>
#include <array>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <cmath>
#include <deque>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "probe/error.hpp"
#include "server/auth.hpp"
#include "server/log.hpp"
#include "server/metrics.hpp"

namespace probefarm::server {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;
using nlohmann::json;
using error_code = boost::system::error_code;

namespace {

constexpr const char* kLatencyMetric = "probefarm_http_request_duration_seconds";
constexpr std::size_t kHeaderLimit = 16 * 1024;
// After refusing a request whose body was not read, the rest of it is discarded for at most
// this long before the socket is closed: closing with unread data makes the kernel send a
// RST, which can destroy the response before the client reads it.
constexpr auto kLingerTime = std::chrono::seconds(2);

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else if (s[i] == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

// Raw (still encoded) segments of a path: "/a/b%2Fc" → {"a", "b%2Fc"}. Decoding after
// splitting keeps an encoded '/' inside one template parameter.
std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    std::size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    out.push_back(path.substr(i, j - i));
    i = j;
  }
  return out;
}

std::map<std::string, std::string> parse_query(std::string_view q) {
  std::map<std::string, std::string> out;
  while (!q.empty()) {
    std::size_t amp = q.find('&');
    std::string_view part = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view{} : q.substr(amp + 1);
    if (part.empty()) continue;
    std::size_t eq = part.find('=');
    std::string key = percent_decode(part.substr(0, eq), true);
    std::string value =
        eq == std::string_view::npos ? std::string{} : percent_decode(part.substr(eq + 1), true);
    out.emplace(std::move(key), std::move(value));
  }
  return out;
}

bool is_loopback_or_any(const std::string& host) {
  return host == "localhost" || host == "0.0.0.0" || host == "::" || host == "::1" ||
         host.rfind("127.", 0) == 0;
}

std::string host_port(const std::string& host, std::uint16_t port) {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

}  // namespace

// ---- Request / Response ----------------------------------------------------------------------

std::string Request::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? std::string{} : it->second;
}

Response Response::json(unsigned status, const nlohmann::json& body) {
  Response r;
  r.status = status;
  r.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

Response Response::error(const std::exception& e) {
  if (auto* err = dynamic_cast<const Error*>(&e)) {
    std::string_view category = category_name(err->category());
    return json(http_status(category), error_json(category, err->message(), err->hint()));
  }
  // A malformed JSON body reaches handlers as nlohmann's exceptions: the caller's fault.
  if (dynamic_cast<const nlohmann::json::exception*>(&e))
    return error(400, "usage", std::string("invalid JSON: ") + e.what(),
                 "send a JSON document as described in openapi.yaml");
  return error(500, "internal", std::string("internal error: ") + e.what(),
               "this is a bug in probefarmd; please report it with the daemon's log");
}

Response Response::error(unsigned status, std::string_view category, std::string_view message,
                         std::string_view hint) {
  return json(status, error_json(category, message, hint));
}

unsigned http_status(std::string_view category) {
  if (category == "usage") return 400;
  if (category == "image") return 422;
  if (category == "probe_not_found") return 404;
  if (category == "protection" || category == "busy") return 409;
  if (category == "timeout") return 504;
  if (category == "target_not_responding" || category == "probe_io") return 502;
  return 500;  // verify, internal, unknown
}

// ---- shared state ----------------------------------------------------------------------------

namespace {

struct RouteEntry {
  Route route;
  Handler handler;
  WebSocketHandler ws_handler;
  std::vector<std::string> segments;  // template segments; "{x}" are parameters
};

// What routes a request: the chosen entry (or null) and, for 405, the methods the path has.
struct Match {
  const RouteEntry* entry = nullptr;
  std::map<std::string, std::string> params;
  std::set<std::string> allowed;
};

// Matches raw segments against a template; literal segments compare decoded.
bool match_template(const RouteEntry& e, const std::vector<std::string_view>& raw,
                    std::map<std::string, std::string>* params) {
  if (e.segments.size() != raw.size()) return false;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const std::string& t = e.segments[i];
    std::string value = percent_decode(raw[i], false);
    if (t.size() >= 2 && t.front() == '{' && t.back() == '}') {
      if (value.empty()) return false;
      if (params) (*params)[t.substr(1, t.size() - 2)] = value;
    } else if (t != value) {
      return false;
    }
  }
  return true;
}

// A literal segment beats a parameter at the first position where two templates differ:
// "/images/upload" wins over "/images/{sha}".
bool more_specific(const RouteEntry& a, const RouteEntry& b) {
  for (std::size_t i = 0; i < a.segments.size() && i < b.segments.size(); ++i) {
    bool pa = !a.segments[i].empty() && a.segments[i].front() == '{';
    bool pb = !b.segments[i].empty() && b.segments[i].front() == '{';
    if (pa != pb) return !pa;
  }
  return false;
}

class Session;
class WsSession;

struct HttpCore {
  net::io_context& io;
  HttpOptions options;
  const TokenStore& tokens;
  Metrics& metrics;
  std::vector<RouteEntry> entries;
  std::vector<Route> routes;
  std::optional<RouteEntry> fallback;
  std::set<std::string> allowed_hosts;  // lower-case "host:port"
  std::string listen_name;              // "127.0.0.1:8080", for messages
  std::atomic<std::uint64_t> upload_counter{0};
  std::uint64_t upload_nonce = std::random_device{}();

  std::mutex sessions_mutex;
  std::vector<std::weak_ptr<Session>> sessions;
  std::vector<std::weak_ptr<WsSession>> ws_sessions;
  bool stopping = false;

  HttpCore(net::io_context& io_, HttpOptions o, const TokenStore& t, Metrics& m)
      : io(io_), options(std::move(o)), tokens(t), metrics(m) {}

  Match match(const std::string& method, bool ws_upgrade,
              const std::vector<std::string_view>& raw) const {
    Match m;
    const RouteEntry* best = nullptr;
    // Second choice: a GET route for an upgrade no WS route takes (the upgrade is ignored),
    // a WS route for a plain GET (answered 426 Upgrade Required).
    const RouteEntry* second = nullptr;
    const std::string other = ws_upgrade ? "GET" : method == "GET" ? "WS" : "";
    for (const auto& e : entries) {
      if (!match_template(e, raw, nullptr)) continue;
      m.allowed.insert(e.route.method == "WS" ? "GET" : e.route.method);
      bool wanted = ws_upgrade ? e.route.method == "WS" : e.route.method == method;
      if (wanted && (!best || more_specific(e, *best))) best = &e;
      if (e.route.method == other && (!second || more_specific(e, *second))) second = &e;
    }
    if (!best) best = second;
    if (best) {
      m.entry = best;
      match_template(*best, raw, &m.params);
    }
    return m;
  }
};

void record(HttpCore& core, const std::string& method, const std::string& route, unsigned status,
            std::chrono::steady_clock::time_point start, const Request& req,
            std::uint64_t bytes_out) {
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  core.metrics.observe(kLatencyMetric,
                       {{"method", method}, {"route", route}, {"status", std::to_string(status)}},
                       seconds);
  log_event(LogLevel::debug, "http.request",
            {{"method", method},
             {"route", route},
             {"path", req.path},
             {"status", status},
             {"ms", std::round(seconds * 1e6) / 1e3},
             {"remote", req.remote},
             {"who", req.principal.name},
             {"bytes_in", req.body_size},
             {"bytes_out", bytes_out}});
}

// ---- WebSocket session -----------------------------------------------------------------------

class WsSession : public WebSocket, public std::enable_shared_from_this<WsSession> {
 public:
  WsSession(std::shared_ptr<HttpCore> core, beast::tcp_stream&& stream, Request req)
      : core_(std::move(core)), ws_(std::move(stream)), req_(std::move(req)) {}

  const Request& request() const override { return req_; }

  void accept(http::request<http::empty_body> upgrade, WebSocketHandler handler, std::string route,
              std::chrono::steady_clock::time_point start) {
    // The WebSocket layer keeps its own timeouts; the TCP stream's would cut it off.
    beast::get_lowest_layer(ws_).expires_never();
    websocket::stream_base::timeout t{};
    t.handshake_timeout = core_->options.header_timeout;
    t.idle_timeout = core_->options.idle_timeout;
    t.keep_alive_pings = true;
    ws_.set_option(t);
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(http::field::server, "probefarmd"); }));
    ws_.read_message_max(core_->options.max_ws_message_bytes);
    ws_.async_accept(upgrade, [self = shared_from_this(), handler = std::move(handler),
                               route = std::move(route), start](error_code ec) {
      record(*self->core_, "GET", route, ec ? 400 : 101, start, self->req_, 0);
      if (ec) return;
      {
        std::lock_guard lock(self->mutex_);
        self->open_ = true;
      }
      try {
        handler(self);
      } catch (const std::exception& e) {
        log_event(LogLevel::error, "http.websocket_handler_failed",
                  {{"path", self->req_.path}, {"error", e.what()}});
        self->close_now(websocket::close_code::internal_error, "internal error");
        return;
      }
      self->do_read();
    });
  }

  bool send(std::shared_ptr<const std::string> message, bool binary) override {
    bool overflow = false;
    {
      std::lock_guard lock(mutex_);
      if (!open_ || closing_) return false;
      if (queued_ >= core_->options.ws_queue_messages) {
        closing_ = true;
        overflow = true;
      } else {
        ++queued_;
      }
    }
    if (overflow) {
      net::post(ws_.get_executor(), [self = shared_from_this()] {
        self->queue_.clear();
        self->close_now(websocket::close_code::policy_error, "consumer too slow");
      });
      return false;
    }
    net::post(ws_.get_executor(),
              [self = shared_from_this(), message = std::move(message), binary] {
                if (self->closing_strand_) return;
                self->queue_.push_back({message, binary});
                if (self->queue_.size() == 1) self->do_write();
              });
    return true;
  }

  void close(std::string reason) override {
    {
      std::lock_guard lock(mutex_);
      if (closing_) return;
      closing_ = true;
    }
    net::post(ws_.get_executor(), [self = shared_from_this(), reason = std::move(reason)] {
      self->close_now(websocket::close_code::normal, reason);
    });
  }

  // Server shutdown: from any thread.
  void shutdown() {
    {
      std::lock_guard lock(mutex_);
      closing_ = true;
    }
    net::post(ws_.get_executor(), [self = shared_from_this()] {
      self->close_now(websocket::close_code::going_away, "server shutting down");
    });
  }

 private:
  struct Outgoing {
    std::shared_ptr<const std::string> text;
    bool binary;
  };

  void do_read() {
    ws_.async_read(read_buffer_, [self = shared_from_this()](error_code ec, std::size_t) {
      if (ec) return self->finish();
      std::string message = beast::buffers_to_string(self->read_buffer_.data());
      self->read_buffer_.consume(self->read_buffer_.size());
      if (self->on_message && !self->closing_strand_) {
        try {
          self->on_message(message, !self->ws_.got_text());
        } catch (const std::exception& e) {
          log_event(LogLevel::error, "http.websocket_handler_failed",
                    {{"path", self->req_.path}, {"error", e.what()}});
        }
      }
      self->do_read();
    });
  }

  void do_write() {
    if (queue_.empty() || closing_strand_) return;
    ws_.binary(queue_.front().binary);
    // The completion keeps the message alive: close_now() may clear the queue meanwhile.
    auto text = queue_.front().text;
    ws_.async_write(net::buffer(*text),
                    [self = shared_from_this(), text](error_code ec, std::size_t) {
                      if (ec) return self->finish();
                      if (!self->queue_.empty()) self->queue_.pop_front();
                      {
                        std::lock_guard lock(self->mutex_);
                        if (self->queued_ > 0) --self->queued_;
                      }
                      self->do_write();
                    });
  }

  // On the strand. A peer that reads nothing never completes the close handshake (our
  // pending write and the close frame sit behind a full TCP window), so the socket is cut
  // after a grace period.
  void close_now(websocket::close_code code, const std::string& reason) {
    if (closing_strand_) return;
    closing_strand_ = true;
    queue_.clear();
    // The owner learns now, not after the handshake: it stops sending and lets go.
    notify_closed();
    // A close frame's reason holds at most 123 bytes (RFC 6455 5.5).
    ws_.async_close(websocket::close_reason(code, reason.substr(0, 123)),
                    [self = shared_from_this()](error_code) { self->finish(); });
    timer_ = std::make_unique<net::steady_timer>(ws_.get_executor(), std::chrono::seconds(2));
    timer_->async_wait([self = shared_from_this()](error_code ec) {
      if (ec) return;
      error_code ignored;
      beast::get_lowest_layer(self->ws_).socket().close(ignored);
      self->finish();
    });
  }

  // On the strand: the connection is over (read error, close, timeout). Runs on_close once.
  void finish() {
    {
      std::lock_guard lock(mutex_);
      closing_ = true;
      queued_ = 0;
    }
    closing_strand_ = true;
    queue_.clear();
    if (closed_) return;
    closed_ = true;
    if (timer_) timer_->cancel();
    error_code ignored;
    beast::get_lowest_layer(ws_).socket().close(ignored);
    notify_closed();
  }

  // On the strand: on_close, once.
  void notify_closed() {
    {
      std::lock_guard lock(mutex_);
      closing_ = true;
    }
    if (on_close) {
      auto cb = std::move(on_close);
      on_close = nullptr;
      try {
        cb();
      } catch (const std::exception& e) {
        log_event(LogLevel::error, "http.websocket_handler_failed",
                  {{"path", req_.path}, {"error", e.what()}});
      }
    }
    // Break cycles through handler lambdas that captured this session.
    on_message = nullptr;
  }

  std::shared_ptr<HttpCore> core_;
  websocket::stream<beast::tcp_stream> ws_;
  Request req_;
  beast::flat_buffer read_buffer_;
  std::unique_ptr<net::steady_timer> timer_;
  // Strand-only state.
  std::deque<Outgoing> queue_;
  bool closing_strand_ = false;
  bool closed_ = false;
  // Shared with send()/close() callers on other threads.
  std::mutex mutex_;
  bool open_ = false;
  bool closing_ = false;
  std::size_t queued_ = 0;  // posted and not yet written
};

// ---- HTTP session ----------------------------------------------------------------------------

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(std::shared_ptr<HttpCore> core, tcp::socket&& socket)
      : core_(std::move(core)), stream_(std::move(socket)), executor_(stream_.get_executor()) {}

  void run() {
    net::dispatch(executor_, [self = shared_from_this()] { self->read_header(); });
  }

  // Server shutdown: from any thread.
  void shutdown() {
    net::post(executor_, [self = shared_from_this()] {
      self->stopped_ = true;
      if (self->handed_off_) return;
      error_code ignored;
      self->stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
      self->stream_.close();
    });
  }

 private:
  using clock = std::chrono::steady_clock;

  void read_header() {
    if (stopped_) return;
    header_parser_.emplace();
    header_parser_->header_limit(kHeaderLimit);
    // Beast checks Content-Length against the body limit while it parses the header (1 MiB
    // by default); the route's own limit is applied once the route is known (413).
    header_parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    string_parser_.reset();
    file_parser_.reset();
    req_ = Request{};
    route_label_ = "unmatched";
    body_unread_ = false;
    answered_ = false;
    stream_.expires_after(served_ == 0 ? core_->options.header_timeout
                                       : core_->options.idle_timeout);
    http::async_read_header(
        stream_, buffer_, *header_parser_,
        [self = shared_from_this()](error_code ec, std::size_t) { self->on_header(ec); });
  }

  void on_header(error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == net::error::operation_aborted || ec == net::error::connection_reset ||
        ec == net::error::eof || stopped_)
      return close();
    start_ = clock::now();
    if (ec) {
      // Not HTTP (or a header over the limit): answer once and hang up.
      method_ = "-";
      unsigned status = ec == http::error::header_limit ? 431 : 400;
      body_unread_ = true;
      return send_error(status, "usage", "malformed HTTP request: " + ec.message(),
                        "send an HTTP/1.1 request", true);
    }
    auto& h = header_parser_->get();
    method_ = std::string(h.method_string());
    version_ = h.version();
    keep_alive_ = h.keep_alive();
    req_.method = method_;
    req_.target = std::string(h.target());
    for (const auto& field : h) {
      std::string name = lower(field.name_string());
      auto [it, inserted] = req_.headers.emplace(name, std::string(field.value()));
      if (!inserted) it->second += ", " + std::string(field.value());
    }
    error_code rec;
    auto ep = stream_.socket().remote_endpoint(rec);
    if (!rec) req_.remote = host_port(ep.address().to_string(), ep.port());
    std::string_view target = h.target();
    std::size_t qpos = target.find('?');
    std::string_view raw_path = target.substr(0, qpos);
    if (qpos != std::string_view::npos) req_.query = parse_query(target.substr(qpos + 1));
    req_.path = percent_decode(raw_path, false);
    body_unread_ = !header_parser_->is_done();

    if (raw_path.empty() || raw_path.front() != '/')
      return send_error(400, "usage", "request target '" + req_.target + "' is not a path",
                        "send an origin-form target such as /api/v1/probes", true);

    bool upgrade = websocket::is_upgrade(h);
    Match m = core_->match(method_, upgrade, split_path(raw_path));
    const RouteEntry* entry = m.entry;
    if (!entry) {
      if (!m.allowed.empty()) {
        std::string allow;
        for (const auto& a : m.allowed)
          allow += (allow.empty() ? "" : ", ") + a;
        Response r = Response::error(405, "usage", method_ + " is not allowed on " + req_.path,
                                     "this path accepts " + allow);
        r.headers["Allow"] = allow;
        return finish_early(std::move(r));
      }
      if (method_ == "GET" && core_->fallback) {
        entry = &*core_->fallback;
      } else {
        return finish_early(Response::error(404, "not_found",
                                            "no route for " + method_ + " " + req_.path,
                                            "see openapi.yaml for the API's routes"));
      }
    }
    entry_ = entry;
    route_label_ = entry->route.path;
    req_.params = std::move(m.params);

    if (auto refusal = check_host()) return finish_early(std::move(*refusal));
    if (auto refusal = check_auth(entry->route, entry->route.method == "WS"))
      return finish_early(std::move(*refusal));

    if (entry->route.method == "WS") {
      if (!upgrade) {
        Response r = Response::error(426, "usage", req_.path + " is a WebSocket endpoint",
                                     "connect with a WebSocket client");
        r.headers["Upgrade"] = "websocket";
        return finish_early(std::move(r));
      }
      return start_websocket();
    }
    read_body();
  }

  // Host (always) and Origin (when present) must name this server: a web page on another
  // origin, or a DNS name rebound to 127.0.0.1, is refused.
  std::optional<Response> check_host() {
    std::string host = lower(req_.header("host"));
    if (host.empty())
      return Response::error(400, "usage", "the request has no Host header",
                             "send an HTTP/1.1 request with a Host header");
    if (!core_->allowed_hosts.count(host))
      return Response::error(403, "forbidden", "Host '" + host + "' is not this server",
                             "connect to " + core_->listen_name +
                                 " or add the name to allowed_hosts in the configuration");
    auto origin_it = req_.headers.find("origin");
    if (origin_it != req_.headers.end()) {
      // https: the dashboard behind a TLS-terminating proxy, whose name is in allowed_hosts.
      std::string origin = lower(origin_it->second);
      std::string_view rest;
      for (std::string_view scheme : {"http://", "https://"}) {
        if (origin.rfind(scheme, 0) == 0) rest = std::string_view(origin).substr(scheme.size());
      }
      const bool ok = !rest.empty() && core_->allowed_hosts.count(std::string(rest));
      if (!ok)
        return Response::error(403, "forbidden",
                               "Origin '" + origin_it->second + "' is not allowed",
                               "cross-site requests are refused; use the dashboard served by "
                               "probefarmd or add the host to allowed_hosts");
    }
    return std::nullopt;
  }

  std::optional<Response> check_auth(const Route& route, bool websocket_route) {
    std::string token;
    std::string authz = req_.header("authorization");
    if (authz.size() > 7 && lower(authz.substr(0, 7)) == "bearer ") {
      token = authz.substr(7);
      while (!token.empty() && token.front() == ' ')
        token.erase(0, 1);
    } else if (websocket_route) {
      // Browsers cannot set headers on a WebSocket: the token may come in the query.
      auto it = req_.query.find("access_token");
      if (it != req_.query.end()) token = it->second;
    }
    std::optional<Principal> who;
    if (!token.empty()) who = core_->tokens.authenticate(token);
    if (!route.authenticated) {
      if (who) req_.principal = *who;
      return std::nullopt;
    }
    if (!who) {
      Response r = Response::error(
          401, "unauthorized", token.empty() ? "no API token given" : "the API token is not valid",
          "send 'Authorization: Bearer <token>'; the admin token is in the data directory");
      r.headers["WWW-Authenticate"] = token.empty() ? "Bearer" : "Bearer error=\"invalid_token\"";
      return r;
    }
    req_.principal = *who;
    if (who->role < route.min_role)
      return Response::error(
          403, "forbidden",
          std::string(method_ + " " + route.path + " needs the ") +
              std::string(role_name(route.min_role)) + " role; token '" + who->name + "' has " +
              std::string(role_name(who->role)),
          "use a token with the " + std::string(role_name(route.min_role)) + " role");
    return std::nullopt;
  }

  void start_websocket() {
    auto upgrade = header_parser_->release();
    handed_off_ = true;
    auto ws = std::make_shared<WsSession>(core_, std::move(stream_), std::move(req_));
    {
      std::lock_guard lock(core_->sessions_mutex);
      if (core_->stopping) return;
      core_->ws_sessions.push_back(ws);
    }
    ws->accept(std::move(upgrade), entry_->ws_handler, route_label_, start_);
  }

  void read_body() {
    const Route& route = entry_->route;
    std::uint64_t limit = route.body == BodyKind::upload ? core_->options.max_upload_bytes
                                                         : core_->options.max_request_bytes;
    if (header_parser_->is_done()) return call_handler();
    auto length = header_parser_->content_length();
    if (length && *length > limit)
      return send_error(413, "too_large",
                        "the request body has " + std::to_string(*length) +
                            " bytes, more than the limit of " + std::to_string(limit),
                        "send a smaller body or raise the limit in the configuration", true);
    if (route.body == BodyKind::upload) {
      std::filesystem::path dir = core_->options.upload_dir.empty()
                                      ? std::filesystem::temp_directory_path()
                                      : core_->options.upload_dir;
      std::error_code fec;
      std::filesystem::create_directories(dir, fec);
      req_.body_file = dir / ("upload-" + std::to_string(::getpid()) + "-" +
                              std::to_string(core_->upload_nonce % 1000000) + "-" +
                              std::to_string(++core_->upload_counter) + ".part");
      file_parser_.emplace(std::move(*header_parser_));
      file_parser_->body_limit(limit);
      error_code ec;
      file_parser_->get().body().open(req_.body_file.c_str(), beast::file_mode::write_new, ec);
      if (ec) {
        req_.body_file.clear();
        return send_error(500, "internal",
                          "cannot create an upload file in " + dir.string() + ": " + ec.message(),
                          "check that the data directory is writable", true);
      }
    } else {
      string_parser_.emplace(std::move(*header_parser_));
      string_parser_->body_limit(limit);
    }
    header_parser_.reset();
    limit_ = limit;
    if (lower(req_.header("expect")) == "100-continue") {
      auto cont =
          std::make_shared<http::response<http::empty_body>>(http::status::continue_, version_);
      stream_.expires_after(core_->options.idle_timeout);
      return http::async_write(stream_, *cont,
                               [self = shared_from_this(), cont](error_code ec, std::size_t) {
                                 if (ec) return self->close();
                                 self->read_body_some();
                               });
    }
    read_body_some();
  }

  // The body is read piece by piece so that the idle timeout bounds a stall, not the
  // whole transfer (an upload of 64 MiB may take longer than any fixed deadline).
  void read_body_some() {
    stream_.expires_after(core_->options.idle_timeout);
    auto handler = [self = shared_from_this()](error_code ec, std::size_t) {
      self->on_body_some(ec);
    };
    if (file_parser_)
      http::async_read_some(stream_, buffer_, *file_parser_, std::move(handler));
    else
      http::async_read_some(stream_, buffer_, *string_parser_, std::move(handler));
  }

  void on_body_some(error_code ec) {
    if (ec == http::error::body_limit)
      return send_error(
          413, "too_large",
          "the request body is larger than the limit of " + std::to_string(limit_) + " bytes",
          "send a smaller body or raise the limit in the configuration", true);
    if (ec) {
      remove_upload();
      if (ec == beast::error::timeout || ec == http::error::end_of_stream || stopped_ ||
          ec == net::error::operation_aborted || ec == net::error::connection_reset ||
          ec == net::error::eof)
        return close();
      return send_error(400, "usage", "malformed request body: " + ec.message(),
                        "send a well-formed HTTP/1.1 body", true);
    }
    bool done = file_parser_ ? file_parser_->is_done() : string_parser_->is_done();
    if (!done) return read_body_some();
    body_unread_ = false;
    if (file_parser_) {
      error_code close_ec;
      file_parser_->get().body().file().close(close_ec);
      std::error_code fec;
      req_.body_size = std::filesystem::file_size(req_.body_file, fec);
    } else {
      req_.body_size = string_parser_->get().body().size();
      if (entry_->route.body == BodyKind::text) req_.body = std::move(string_parser_->get().body());
      string_parser_->get().body().clear();
    }
    call_handler();
  }

  void call_handler() {
    body_unread_ = false;
    header_parser_.reset();
    // Exactly one answer: the first respond() wins; a handler that drops every copy of
    // `respond` without answering gets a 500 instead of a hung connection.
    // The guard keeps the session alive while the handler works: no read is pending then.
    struct Guard {
      std::shared_ptr<Session> session;
      std::atomic<bool> answered{false};
      void answer(Response r) {
        if (answered.exchange(true)) return;
        auto s = session;
        net::post(s->executor_,
                  [s, r = std::move(r)]() mutable { s->write_response(std::move(r), false); });
      }
      ~Guard() {
        answer(Response::error(500, "internal", "the request handler did not answer",
                               "this is a bug in probefarmd; please report it"));
      }
    };
    auto guard = std::make_shared<Guard>();
    guard->session = shared_from_this();
    Respond respond = [guard](Response r) { guard->answer(std::move(r)); };
    try {
      entry_->handler(req_, respond);
    } catch (const std::exception& e) {
      guard->answer(Response::error(e));
    } catch (...) {
      guard->answer(Response::error(500, "internal", "the request handler failed",
                                    "this is a bug in probefarmd; please report it"));
    }
  }

  void send_error(unsigned status, const std::string& category, const std::string& message,
                  const std::string& hint, bool close_after) {
    write_response(Response::error(status, category, message, hint), close_after);
  }

  // A refusal before the body was read: the connection is only reusable when there is no
  // body left on it.
  void finish_early(Response r) { write_response(std::move(r), body_unread_); }

  void write_response(Response r, bool close_after) {
    if (answered_ || stopped_) return;
    answered_ = true;
    if (close_after) keep_alive_ = false;
    try {
      build_and_write(std::move(r));
    } catch (const std::exception& e) {
      // A response Beast refuses to serialize (a bad status or header) must not escape
      // into the io_context's run().
      log_event(LogLevel::error, "http.bad_response", {{"path", req_.path}, {"error", e.what()}});
      build_and_write(Response::error(500, "internal", "the handler's response is invalid",
                                      "this is a bug in probefarmd; please report it"));
    }
  }

  void build_and_write(Response r) {
    status_ = r.status;
    auto fill = [&](auto& res) {
      res.version(version_ == 10 ? 10 : 11);
      res.result(r.status);
      res.set(http::field::server, "probefarmd");
      if (!r.content_type.empty()) res.set(http::field::content_type, r.content_type);
      for (const auto& [name, value] : r.headers)
        res.set(name, value);
      res.keep_alive(keep_alive_);
    };
    if (!r.file.empty()) {
      auto res = std::make_shared<http::response<http::file_body>>();
      error_code ec;
      res->body().open(r.file.c_str(), beast::file_mode::scan, ec);
      if (!ec) {
        fill(*res);
        res->prepare_payload();
        bytes_out_ = res->body().size();
        return write(res);
      }
      r = Response::error(500, "internal",
                          "cannot open " + r.file.string() + " for the response: " + ec.message(),
                          "check the data directory");
      status_ = r.status;
    }
    auto res = std::make_shared<http::response<http::string_body>>();
    fill(*res);
    // 1xx, 204 and 304 carry no body (RFC 9110 6.4.1); Beast throws on one.
    if (r.status < 200 || r.status == 204 || r.status == 304) {
      r.body.clear();
      res->erase(http::field::content_type);
    }
    res->body() = std::move(r.body);
    res->prepare_payload();
    bytes_out_ = res->body().size();
    write(res);
  }

  template <typename Message>
  void write(std::shared_ptr<Message> res) {
    stream_.expires_after(core_->options.idle_timeout);
    http::async_write(stream_, *res, [self = shared_from_this(), res](error_code ec, std::size_t) {
      self->after_write(ec);
    });
  }

  void after_write(error_code ec) {
    record(*core_, method_, route_label_, status_, start_, req_, bytes_out_);
    remove_upload();
    ++served_;
    if (ec || stopped_) return close();
    if (!keep_alive_) return body_unread_ ? linger() : close();
    read_header();
  }

  // Half-close, then discard what the client still sends until it closes or kLingerTime
  // passes (see kLingerTime).
  void linger() {
    error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(kLingerTime);
    drain();
  }

  void drain() {
    stream_.async_read_some(net::buffer(drain_buffer_),
                            [self = shared_from_this()](error_code ec, std::size_t) {
                              if (ec) return self->close();
                              self->drain();
                            });
  }

  void remove_upload() {
    if (file_parser_) {
      error_code ignored;
      file_parser_->get().body().file().close(ignored);
    }
    if (!req_.body_file.empty()) {
      // The handler moves the file where it wants it; anything left is ours to delete.
      std::error_code fec;
      std::filesystem::remove(req_.body_file, fec);
    }
  }

  void close() {
    remove_upload();
    error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

  std::shared_ptr<HttpCore> core_;
  beast::tcp_stream stream_;
  net::any_io_executor executor_;  // the connection's strand; outlives a WebSocket hand-off
  bool handed_off_ = false;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> header_parser_;
  std::optional<http::request_parser<http::string_body>> string_parser_;
  std::optional<http::request_parser<http::file_body>> file_parser_;
  std::array<char, 4096> drain_buffer_{};
  Request req_;
  const RouteEntry* entry_ = nullptr;
  std::string method_, route_label_;
  unsigned version_ = 11;
  unsigned status_ = 0;
  bool keep_alive_ = true;
  bool body_unread_ = false;
  bool answered_ = false;
  bool stopped_ = false;
  std::uint64_t limit_ = 0;
  std::uint64_t bytes_out_ = 0;
  std::uint64_t served_ = 0;
  clock::time_point start_;
};

}  // namespace

// ---- HttpServer ------------------------------------------------------------------------------

namespace {

// The acceptor lives on its own strand: stop() closes it from another thread.
void accept_next(std::shared_ptr<HttpCore> core, std::shared_ptr<tcp::acceptor> acceptor) {
  acceptor->async_accept(
      net::make_strand(core->io), [core, acceptor](error_code ec, tcp::socket socket) {
        if (ec == net::error::operation_aborted || !acceptor->is_open()) return;
        std::shared_ptr<Session> session;
        if (!ec) {
          std::lock_guard lock(core->sessions_mutex);
          if (core->stopping) return;
          std::erase_if(core->sessions, [](const auto& w) { return w.expired(); });
          std::erase_if(core->ws_sessions, [](const auto& w) { return w.expired(); });
          session = std::make_shared<Session>(core, std::move(socket));
          core->sessions.push_back(session);
        }
        if (session) session->run();
        accept_next(core, acceptor);
      });
}

}  // namespace

struct HttpServer::Impl {
  std::shared_ptr<HttpCore> core;
  std::shared_ptr<tcp::acceptor> acceptor;
  std::uint16_t port = 0;
};

HttpServer::HttpServer(net::io_context& io, HttpOptions options, const TokenStore& tokens,
                       Metrics& metrics)
    : impl_(std::make_unique<Impl>()) {
  impl_->core = std::make_shared<HttpCore>(io, std::move(options), tokens, metrics);
  metrics.declare_histogram(
      kLatencyMetric, "HTTP request latency by method, route and status",
      {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60});
}

HttpServer::~HttpServer() {
  stop();
}

void HttpServer::add(Route route, Handler handler) {
  add_entry(std::move(route), std::move(handler), nullptr);
}

void HttpServer::add_websocket(Route route, WebSocketHandler handler) {
  route.method = "WS";
  add_entry(std::move(route), nullptr, std::move(handler));
}

void HttpServer::add_entry(Route route, Handler handler, WebSocketHandler ws_handler) {
  RouteEntry e;
  for (auto seg : split_path(route.path))
    e.segments.emplace_back(seg);
  e.route = std::move(route);
  e.handler = std::move(handler);
  e.ws_handler = std::move(ws_handler);
  impl_->core->routes.push_back(e.route);
  impl_->core->entries.push_back(std::move(e));
}

void HttpServer::set_fallback(Route route, Handler handler) {
  RouteEntry e;
  e.route = std::move(route);
  e.handler = std::move(handler);
  impl_->core->fallback = std::move(e);
}

const std::vector<Route>& HttpServer::routes() const {
  return impl_->core->routes;
}

void HttpServer::start() {
  auto& core = *impl_->core;
  const std::string where = host_port(core.options.host, core.options.port);
  error_code ec;
  auto address =
      net::ip::make_address(core.options.host == "localhost" ? "127.0.0.1" : core.options.host, ec);
  if (ec)
    throw Error(ErrorCategory::usage,
                "cannot listen on " + where + ": '" + core.options.host + "' is not an IP address",
                "give --listen an address such as 127.0.0.1:8080 or 0.0.0.0:8080");
  tcp::endpoint endpoint(address, core.options.port);
  auto acceptor = std::make_shared<tcp::acceptor>(net::make_strand(core.io));
  auto fail = [&](const char* step) {
    throw Error(ErrorCategory::usage,
                "cannot listen on " + where + " (" + step + "): " + ec.message(),
                "choose another address or port with --listen, or stop what is using it");
  };
  acceptor->open(endpoint.protocol(), ec);
  if (ec) fail("open");
  acceptor->set_option(net::socket_base::reuse_address(true), ec);
  acceptor->bind(endpoint, ec);
  if (ec) fail("bind");
  acceptor->listen(net::socket_base::max_listen_connections, ec);
  if (ec) fail("listen");
  impl_->port = acceptor->local_endpoint().port();

  core.allowed_hosts.clear();
  core.allowed_hosts.insert(lower(host_port(core.options.host, impl_->port)));
  if (is_loopback_or_any(core.options.host))
    for (const char* h : {"localhost", "127.0.0.1", "::1"})
      core.allowed_hosts.insert(host_port(h, impl_->port));
  for (const auto& h : core.options.allowed_hosts)
    core.allowed_hosts.insert(lower(h));

  core.listen_name = host_port(core.options.host, impl_->port);
  impl_->acceptor = acceptor;
  accept_next(impl_->core, acceptor);
}

std::uint16_t HttpServer::port() const {
  return impl_->port;
}

void HttpServer::stop() {
  if (!impl_) return;
  auto& core = *impl_->core;
  std::vector<std::shared_ptr<Session>> sessions;
  std::vector<std::shared_ptr<WsSession>> ws_sessions;
  {
    std::lock_guard lock(core.sessions_mutex);
    core.stopping = true;
    for (auto& w : core.sessions)
      if (auto s = w.lock()) sessions.push_back(s);
    for (auto& w : core.ws_sessions)
      if (auto s = w.lock()) ws_sessions.push_back(s);
    core.sessions.clear();
    core.ws_sessions.clear();
  }
  if (impl_->acceptor) {
    // Closed on its strand, so that a pending accept completes with operation_aborted.
    auto acceptor = std::move(impl_->acceptor);
    net::post(acceptor->get_executor(), [acceptor] {
      error_code ignored;
      acceptor->close(ignored);
    });
  }
  for (auto& s : sessions)
    s->shutdown();
  for (auto& s : ws_sessions)
    s->shutdown();
}

}  // namespace probefarm::server
