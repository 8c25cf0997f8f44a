#pragma once
// HTTP/1.1 and WebSocket on Boost.Beast, kept out of this header so that the API code
// compiles without Beast. One acceptor, one session per connection on the io_context's
// threads; every connection has a header timeout, an idle timeout and body limits.
//
// Before a route's handler runs, the server has
//  - checked Host (and Origin, when present) against the listen address and the allowed
//    hosts: a page in a browser cannot drive the daemon (DNS rebinding, cross-site
//    requests; OpenOCD's CVE-2018-5704 class). A foreign value is 403.
//  - authenticated the bearer token (Authorization header; WebSocket routes also take
//    ?access_token=, as browsers cannot set headers there): none or unknown is 401, a role
//    below the route's is 403.
//  - read the body: JSON/text routes into memory up to max_request_bytes, upload routes
//    streamed into a temporary file up to max_upload_bytes; over the limit is 413 and the
//    connection is closed without reading the rest.
// Errors are JSON: {"error": {"category", "message", "hint"}} (model.hpp error_json).
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "server/model.hpp"

namespace boost::asio {
class io_context;
}

namespace probefarm::server {

class Metrics;
class TokenStore;

struct Request {
  std::string method;                          // "GET", "POST", …
  std::string target;                          // as sent: path and query
  std::string path;                            // decoded path without the query
  std::map<std::string, std::string> query;    // decoded
  std::map<std::string, std::string> params;   // path template parameters: {id} → "17"
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;                            // BodyKind::text
  std::filesystem::path body_file;             // BodyKind::upload: the streamed body
  std::uint64_t body_size = 0;
  Principal principal;
  std::string remote;  // "127.0.0.1:51234"

  std::string header(const std::string& lower_name) const;  // "" when absent
};

struct Response {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::filesystem::path file;  // when set, the body is this file (downloads)
  std::map<std::string, std::string> headers;

  static Response json(unsigned status, const nlohmann::json& body);
  // From an Error: its category's status and error_json body.
  static Response error(const std::exception& e);
  static Response error(unsigned status, std::string_view category, std::string_view message,
                        std::string_view hint = {});
};

// HTTP status for an ErrorCategory name: usage 400, image 422, probe_not_found 404,
// protection 409, busy 409, timeout 504, target_not_responding 502, probe_io 502,
// verify 500, internal 500.
unsigned http_status(std::string_view category);

// A handler answers exactly once by calling `respond`, from any thread (a probe actor may
// answer). Exceptions thrown before answering become error responses.
using Respond = std::function<void(Response)>;
using Handler = std::function<void(Request&, Respond)>;

enum class BodyKind { none, text, upload };

// One open WebSocket connection, as a route handler sees it. Thread-safe.
class WebSocket {
 public:
  virtual ~WebSocket() = default;
  // Queues a message (text or binary frame). When more than the queue limit is waiting, the
  // connection is closed with 1008 "consumer too slow" and false is returned.
  virtual bool send(std::shared_ptr<const std::string> message, bool binary = false) = 0;
  virtual void close(std::string reason = {}) = 0;
  virtual const Request& request() const = 0;
  // Called on the connection's strand: one per received message (over
  // max_ws_message_bytes closes with 1009), then once when closed for any reason.
  std::function<void(const std::string& message, bool binary)> on_message;
  std::function<void()> on_close;
};
// Called once the handshake is done; sets on_message/on_close and keeps the pointer as
// long as it wants to send.
using WebSocketHandler = std::function<void(std::shared_ptr<WebSocket>)>;

struct Route {
  std::string method;  // "GET", "POST", "PATCH", "DELETE"; "WS" for a WebSocket
  std::string path;    // template: "/api/v1/jobs/{id}"
  Role min_role = Role::viewer;
  BodyKind body = BodyKind::none;
  bool authenticated = true;  // false: no token needed (the dashboard's static files)
};

struct HttpOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;               // 0: any free port (see HttpServer::port())
  std::vector<std::string> allowed_hosts;  // extra "host:port" values for Host/Origin
  std::uint64_t max_request_bytes = 1ull << 20;
  std::uint64_t max_upload_bytes = 64ull << 20;
  std::uint64_t max_ws_message_bytes = 64ull << 10;
  std::size_t ws_queue_messages = 1024;
  std::filesystem::path upload_dir;  // where BodyKind::upload bodies are streamed
  std::chrono::seconds header_timeout{30};
  std::chrono::seconds idle_timeout{120};
};

class HttpServer {
 public:
  HttpServer(boost::asio::io_context& io, HttpOptions options, const TokenStore& tokens,
             Metrics& metrics);
  ~HttpServer();

  void add(Route route, Handler handler);
  void add_websocket(Route route, WebSocketHandler handler);  // route.method "WS"
  // Requests no route matches: GET falls back to this (the dashboard), else 404.
  void set_fallback(Route route, Handler handler);
  const std::vector<Route>& routes() const;

  // Binds and starts accepting. Throws Error(usage) when the address cannot be bound,
  // naming it and the OS's reason.
  void start();
  std::uint16_t port() const;  // the bound port
  // Stops accepting and closes every connection (graceful shutdown).
  void stop();

 private:
  void add_entry(Route route, Handler handler, WebSocketHandler ws_handler);

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The access log line and the latency metric use the route template, not the raw path.
// Request latency is recorded in "probefarm_http_request_duration_seconds" {method, route,
// status} (declared by the server).

}  // namespace probefarm::server
