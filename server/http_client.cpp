// Blocking calls on top of Beast's asynchronous operations: each call runs a private
// io_context until its operation completes, and the tcp_stream's expiry turns a deadline
// that runs out into beast::error::timeout.
#include "server/http_client.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <limits>
#include <nlohmann/json.hpp>

#include "probe/error.hpp"

namespace probefarm::server {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;
using clock = std::chrono::steady_clock;

namespace {

// How long an upload waits for "100 Continue" before sending the body anyway (RFC 9110
// 10.1.1: a client need not wait indefinitely).
constexpr auto kContinueWait = std::chrono::seconds(1);

std::string host_port(const std::string& host, std::uint16_t port) {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

[[noreturn]] void fail(error_code ec, const std::string& url, const std::string& what) {
  if (ec == beast::error::timeout)
    throw Error(ErrorCategory::timeout, what + " " + url + " timed out",
                "check that probefarmd at " + url + " is running and not overloaded");
  throw Error(ErrorCategory::probe_io, what + " " + url + " failed: " + ec.message(),
              "check that probefarmd runs at " + url);
}

// Errors that mean "the server closed the kept-alive connection before reading this
// request": safe to retry once on a new connection.
bool stale_connection(error_code ec) {
  return ec == http::error::end_of_stream || ec == net::error::eof ||
         ec == net::error::connection_reset || ec == net::error::broken_pipe ||
         ec == net::error::connection_aborted;
}

// Runs `io` until `done` or the deadline; false when the deadline came first.
bool run_until(net::io_context& io, const bool& done, clock::time_point deadline) {
  while (!done) {
    if (clock::now() >= deadline) return false;
    if (io.stopped()) io.restart();
    // Nothing left to run and still not done: nothing will ever finish it.
    if (io.run_one_until(deadline) == 0 && io.stopped() && !done) return false;
  }
  return true;
}

// Resolves and connects `stream` before `deadline`.
void connect(net::io_context& io, beast::tcp_stream& stream, const ServerAddress& server,
             clock::time_point deadline) {
  const std::string url = server.url();
  tcp::resolver resolver(io);
  error_code ec;
  tcp::resolver::results_type results;
  bool done = false;
  resolver.async_resolve(server.host, std::to_string(server.port),
                         [&](error_code e, tcp::resolver::results_type r) {
                           ec = e;
                           results = std::move(r);
                           done = true;
                         });
  if (!run_until(io, done, deadline)) {
    resolver.cancel();
    io.restart();
    io.run();
    fail(beast::error::timeout, url, "resolving");
  }
  if (ec) fail(ec, url, "resolving the host of");
  done = false;
  stream.expires_at(deadline);
  stream.async_connect(results, [&](error_code e, const tcp::endpoint&) {
    ec = e;
    done = true;
  });
  io.restart();
  io.run();
  if (ec) fail(ec, url, "connecting to");
}

HttpResult to_result(const http::response_header<>& h) {
  HttpResult r;
  r.status = h.result_int();
  for (const auto& f : h) {
    auto [it, inserted] = r.headers.emplace(lower(f.name_string()), std::string(f.value()));
    if (!inserted) it->second += ", " + std::string(f.value());
  }
  return r;
}

}  // namespace

// ---- results and addresses -------------------------------------------------------------------

nlohmann::json HttpResult::json() const {
  try {
    return nlohmann::json::parse(body);
  } catch (const nlohmann::json::exception&) {
    throw Error(ErrorCategory::probe_io,
                "the server's answer (HTTP " + std::to_string(status) + ") is not JSON: '" +
                    body.substr(0, 120) + (body.size() > 120 ? "…'" : "'"),
                "check that the URL points at probefarmd");
  }
}

std::string HttpResult::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? std::string{} : it->second;
}

ServerAddress ServerAddress::parse(const std::string& url) {
  auto bad = [&](const std::string& why) {
    return Error(ErrorCategory::usage, "server URL '" + url + "' " + why,
                 "give it as http://HOST:PORT, e.g. http://127.0.0.1:8080");
  };
  constexpr std::string_view scheme = "http://";
  if (lower(url).rfind(scheme, 0) != 0) throw bad("does not start with http://");
  std::string rest = url.substr(scheme.size());
  rest = rest.substr(0, rest.find_first_of("/?#"));
  ServerAddress a;
  std::string port;
  if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find(']');
    if (close == std::string::npos) throw bad("has an unterminated [IPv6] address");
    a.host = rest.substr(1, close - 1);
    std::string after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') throw bad("has text after the IPv6 address");
      port = after.substr(1);
    }
  } else {
    auto colon = rest.rfind(':');
    a.host = rest.substr(0, colon);
    if (colon != std::string::npos) port = rest.substr(colon + 1);
  }
  if (a.host.empty()) throw bad("has no host");
  if (!port.empty()) {
    unsigned long value = 0;
    for (char c : port) {
      if (c < '0' || c > '9') throw bad("has an invalid port '" + port + "'");
      value = value * 10 + static_cast<unsigned>(c - '0');
      if (value > 65535) throw bad("has an invalid port '" + port + "'");
    }
    if (value == 0) throw bad("has port 0");
    a.port = static_cast<std::uint16_t>(value);
  } else if (rest.find(':') != std::string::npos && rest.front() != '[') {
    throw bad("has an empty port");
  }
  return a;
}

std::string ServerAddress::url() const {
  return "http://" + host_port(host, port);
}

// ---- HttpClient ------------------------------------------------------------------------------

struct HttpClient::Impl {
  ServerAddress server;
  std::string token;
  std::chrono::milliseconds timeout;
  net::io_context io;
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;

  void disconnect() {
    if (stream) {
      error_code ignored;
      stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
      stream->close();
    }
    stream.reset();
    buffer.clear();
  }

  // Runs one asynchronous operation to completion (its deadline is the stream's expiry).
  template <typename Start>
  error_code run(Start&& start) {
    error_code result;
    start([&](error_code ec, auto&&...) { result = ec; });
    io.restart();
    io.run();
    return result;
  }

  template <typename Body>
  void prepare(http::request<Body>& req, const std::string& method, const std::string& target,
               const std::map<std::string, std::string>& headers, const std::string& content_type,
               bool has_body) {
    http::verb verb = http::string_to_verb(method);
    if (verb == http::verb::unknown)
      req.method_string(method);
    else
      req.method(verb);
    req.target(target);
    req.version(11);
    req.set(http::field::host, host_port(server.host, server.port));
    req.set(http::field::user_agent, "probefarm");
    if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
    if (has_body) req.set(http::field::content_type, content_type);
    req.keep_alive(true);
    req.prepare_payload();
    for (const auto& [name, value] : headers)
      req.set(name, value);
  }

  // Reads a final response (skipping interim 1xx ones) into a string body.
  error_code read_response(HttpResult& out) {
    for (;;) {
      http::response_parser<http::string_body> p;
      p.body_limit(std::numeric_limits<std::uint64_t>::max());
      error_code ec = run([&](auto h) { http::async_read(*stream, buffer, p, std::move(h)); });
      if (ec) return ec;
      if (p.get().result_int() / 100 == 1) continue;
      out = to_result(p.get());
      out.body = std::move(p.get().body());
      if (!p.get().keep_alive()) disconnect();
      return {};
    }
  }

  // One exchange, retried once on a fresh connection when a kept-alive one turns out to be
  // closed. `exchange` returns the error of its first failing step and whether any of the
  // response was received (then no retry: the server acted on the request).
  template <typename Exchange>
  HttpResult perform(const std::string& what, Exchange&& exchange) {
    const std::string url = server.url();
    for (int attempt = 0;; ++attempt) {
      auto deadline = clock::now() + timeout;
      bool reused = stream.has_value();
      if (!stream) {
        stream.emplace(io);
        buffer.clear();
        try {
          connect(io, *stream, server, deadline);
        } catch (...) {
          stream.reset();
          throw;
        }
      }
      stream->expires_at(deadline);
      HttpResult result;
      error_code ec = exchange(result);
      if (!ec) return result;
      disconnect();
      if (reused && attempt == 0 && stale_connection(ec)) continue;
      fail(ec, url, what);
    }
  }

  HttpResult send_string(const std::string& method, const std::string& target,
                         const std::string& body, const std::map<std::string, std::string>& headers,
                         const std::string& content_type) {
    return perform(method + " " + target + " on", [&](HttpResult& out) -> error_code {
      http::request<http::string_body> req;
      req.body() = body;
      prepare(req, method, target, headers, content_type, !body.empty());
      error_code wec = run([&](auto h) { http::async_write(*stream, req, std::move(h)); });
      if (wec && stale_connection(wec)) {
        // The server may have answered (413, 400) and closed before taking the whole body.
        HttpResult early;
        if (!read_response(early)) {
          out = std::move(early);
          disconnect();
          return {};
        }
        return wec;
      }
      if (wec) return wec;
      return read_response(out);
    });
  }
};

HttpClient::HttpClient(ServerAddress server, std::string token, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>()) {
  impl_->server = std::move(server);
  impl_->token = std::move(token);
  impl_->timeout = timeout;
}

HttpClient::~HttpClient() {
  impl_->disconnect();
}

HttpResult HttpClient::request(const std::string& method, const std::string& target,
                               const std::string& body,
                               const std::map<std::string, std::string>& headers,
                               const std::string& content_type) {
  return impl_->send_string(method, target, body, headers, content_type);
}

HttpResult HttpClient::get(const std::string& target) {
  return request("GET", target);
}

HttpResult HttpClient::post_json(const std::string& target, const nlohmann::json& body,
                                 const std::map<std::string, std::string>& headers) {
  return request("POST", target, body.dump(), headers);
}

HttpResult HttpClient::upload(const std::string& target, const std::filesystem::path& file) {
  auto& d = *impl_;
  return d.perform("uploading " + file.string() + " to", [&](HttpResult& out) -> error_code {
    http::request<http::file_body> req;
    error_code ec;
    req.body().open(file.c_str(), beast::file_mode::scan, ec);
    if (ec)
      throw Error(ErrorCategory::usage, "cannot read " + file.string() + ": " + ec.message(),
                  "check the file's path and permissions");
    // Expect: 100-continue lets the server refuse (413, 401 …) before the body is sent.
    d.prepare(req, "POST", target, {{"Expect", "100-continue"}}, "application/octet-stream", true);
    http::request_serializer<http::file_body> sr{req};
    ec = d.run([&](auto h) { http::async_write_header(*d.stream, sr, std::move(h)); });
    if (ec) return ec;

    http::response_parser<http::string_body> interim;
    interim.body_limit(std::numeric_limits<std::uint64_t>::max());
    bool done = false;
    error_code rec;
    http::async_read(*d.stream, d.buffer, interim, [&](error_code e, std::size_t) {
      rec = e;
      done = true;
    });
    if (!run_until(d.io, done, clock::now() + kContinueWait)) {
      d.stream->cancel();
      d.io.restart();
      d.io.run();
    }
    if (!rec && interim.get().result() != http::status::continue_) {
      // A final answer instead of 100: the body was refused; this connection is spent.
      out = to_result(interim.get());
      out.body = std::move(interim.get().body());
      d.disconnect();
      return {};
    }
    if (rec && rec != net::error::operation_aborted) return rec;
    // The expiry was replaced by cancel(); restore the call's deadline for the body.
    d.stream->expires_after(d.timeout);
    ec = d.run([&](auto h) { http::async_write(*d.stream, sr, std::move(h)); });
    if (ec && !stale_connection(ec)) return ec;
    error_code read_ec = d.read_response(out);
    return read_ec && ec ? ec : read_ec;
  });
}

HttpResult HttpClient::download(const std::string& target, const std::filesystem::path& out) {
  auto& d = *impl_;
  std::filesystem::path part = out;
  part += ".part";
  return d.perform("downloading " + target + " from", [&](HttpResult& result) -> error_code {
    http::request<http::empty_body> req;
    d.prepare(req, "GET", target, {}, {}, false);
    error_code ec = d.run([&](auto h) { http::async_write(*d.stream, req, std::move(h)); });
    if (ec) return ec;
    std::optional<http::response_parser<http::empty_body>> parser;
    for (;;) {
      parser.emplace();
      parser->body_limit(std::numeric_limits<std::uint64_t>::max());
      ec = d.run(
          [&](auto h) { http::async_read_header(*d.stream, d.buffer, *parser, std::move(h)); });
      if (ec) return ec;
      if (parser->get().result_int() / 100 != 1) break;
    }
    auto& head = *parser;
    result = to_result(head.get());
    bool keep_alive = head.get().keep_alive();
    if (head.get().result_int() / 100 != 2) {
      http::response_parser<http::string_body> p(std::move(head));
      if (!p.is_done()) {
        ec = d.run([&](auto h) { http::async_read(*d.stream, d.buffer, p, std::move(h)); });
        if (ec) return ec;
      }
      result.body = std::move(p.get().body());
    } else {
      http::response_parser<http::file_body> p(std::move(head));
      p.get().body().open(part.c_str(), beast::file_mode::write, ec);
      if (ec)
        throw Error(ErrorCategory::usage, "cannot write " + part.string() + ": " + ec.message(),
                    "check the directory's permissions and free space");
      if (!p.is_done())
        ec = d.run([&](auto h) { http::async_read(*d.stream, d.buffer, p, std::move(h)); });
      error_code close_ec;
      p.get().body().file().close(close_ec);
      std::error_code fec;
      if (ec || close_ec) {
        std::filesystem::remove(part, fec);
        return ec ? ec : close_ec;
      }
      std::filesystem::rename(part, out, fec);
      if (fec) {
        std::filesystem::remove(part, fec);
        throw Error(ErrorCategory::usage,
                    "cannot rename " + part.string() + " to " + out.string() + ": " + fec.message(),
                    "check the directory's permissions");
      }
    }
    if (!keep_alive) d.disconnect();
    return {};
  });
}

// ---- WsClient --------------------------------------------------------------------------------

struct WsClient::Impl {
  std::string url;
  std::chrono::milliseconds timeout;
  net::io_context io;
  websocket::stream<beast::tcp_stream> ws{io};
  beast::flat_buffer buffer;
  bool reading = false;
  bool read_done = false;
  error_code read_ec;
  std::string message;
  bool open = false;

  void start_read() {
    reading = true;
    read_done = false;
    ws.async_read(buffer, [this](error_code ec, std::size_t) {
      read_ec = ec;
      if (!ec) {
        message = beast::buffers_to_string(buffer.data());
        buffer.consume(buffer.size());
      }
      reading = false;
      read_done = true;
    });
  }

  void hard_close() {
    error_code ignored;
    beast::get_lowest_layer(ws).socket().close(ignored);
    open = false;
    // Let cancelled operations finish so that their handlers never outlive this object.
    io.restart();
    io.run_for(std::chrono::milliseconds(200));
  }
};

WsClient::WsClient(ServerAddress server, const std::string& target, std::string token,
                   const std::map<std::string, std::string>& headers,
                   std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>()) {
  auto& d = *impl_;
  d.url = server.url() + target;
  d.timeout = timeout;
  auto deadline = clock::now() + timeout;
  connect(d.io, beast::get_lowest_layer(d.ws), server, deadline);
  d.ws.set_option(websocket::stream_base::decorator([token, headers](websocket::request_type& req) {
    req.set(http::field::user_agent, "probefarm");
    if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
    for (const auto& [name, value] : headers)
      req.set(name, value);
  }));
  websocket::response_type res;
  error_code ec;
  bool done = false;
  beast::get_lowest_layer(d.ws).expires_at(deadline);
  d.ws.async_handshake(res, host_port(server.host, server.port), target, [&](error_code e) {
    ec = e;
    done = true;
  });
  d.io.restart();
  d.io.run();
  if (ec) {
    if (res.result_int() != 0 && res.result_int() != 101) {
      std::string message = res.body();
      try {
        auto j = nlohmann::json::parse(res.body());
        message = j.at("error").at("message").get<std::string>();
      } catch (const std::exception&) {
      }
      unsigned status = res.result_int();
      throw Error(
          status == 401 || status == 403 ? ErrorCategory::usage : ErrorCategory::probe_io,
          "WebSocket handshake with " + d.url + " refused: HTTP " + std::to_string(status) + ": " +
              message,
          status == 401 || status == 403 ? "check the API token and its role" : "check the URL");
    }
    fail(ec, d.url, "the WebSocket handshake with");
  }
  // From here the WebSocket's own timeouts apply (the close handshake); reads wait as long
  // as receive() asks.
  beast::get_lowest_layer(d.ws).expires_never();
  websocket::stream_base::timeout t{};
  t.handshake_timeout = timeout;
  t.idle_timeout = websocket::stream_base::none();
  t.keep_alive_pings = false;
  d.ws.set_option(t);
  d.open = true;
}

WsClient::~WsClient() {
  try {
    close();
  } catch (...) {
  }
}

void WsClient::send(const std::string& data, bool binary) {
  auto& d = *impl_;
  if (!d.open)
    throw Error(ErrorCategory::probe_io, "the WebSocket connection to " + d.url + " is closed",
                "open a new connection");
  bool done = false;
  error_code ec;
  d.ws.text(!binary);
  d.ws.async_write(net::buffer(data), [&](error_code e, std::size_t) {
    ec = e;
    done = true;
  });
  if (!run_until(d.io, done, clock::now() + d.timeout)) {
    d.hard_close();
    fail(beast::error::timeout, d.url, "sending on the WebSocket");
  }
  if (ec) {
    d.hard_close();
    fail(ec, d.url, "sending on the WebSocket");
  }
}

std::optional<std::string> WsClient::receive(std::chrono::milliseconds timeout) {
  auto& d = *impl_;
  if (!d.read_done && !d.reading) {
    if (!d.open)
      throw Error(ErrorCategory::probe_io, "the WebSocket connection to " + d.url + " is closed",
                  "open a new connection");
    d.start_read();
  }
  if (!d.read_done && !run_until(d.io, d.read_done, clock::now() + timeout)) return std::nullopt;
  d.read_done = false;
  if (d.read_ec) {
    // A close frame may arrive and still end in an error (the server hangs up before our
    // echo of the close frame is written): the reason is what matters.
    auto reason = d.ws.reason();
    std::string why = reason.code != websocket::close_code::none
                          ? "closed by the server (" + std::to_string(reason.code) +
                                (reason.reason.empty() ? ""
                                                       : " " + std::string(reason.reason.data(),
                                                                           reason.reason.size())) +
                                ")"
                          : "failed: " + d.read_ec.message();
    d.open = false;
    error_code ignored;
    beast::get_lowest_layer(d.ws).socket().close(ignored);
    throw Error(ErrorCategory::probe_io, "the WebSocket connection to " + d.url + " " + why,
                "reconnect; a consumer that reads too slowly is dropped by the server");
  }
  return std::move(d.message);
}

void WsClient::close() {
  auto& d = *impl_;
  if (!d.open) return;
  d.open = false;
  bool done = false;
  d.ws.async_close(websocket::close_code::normal, [&](error_code) { done = true; });
  run_until(d.io, done, clock::now() + std::min(d.timeout, std::chrono::milliseconds(2000)));
  d.hard_close();
}

}  // namespace probefarm::server
