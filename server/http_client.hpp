#pragma once
// A small blocking HTTP/1.1 and WebSocket client for probefarmd: the CLI's remote mode
// (`probefarm --server URL --token T …`), the integration tests and the benchmarks. Every
// call has a deadline. Connection failures throw Error(probe_io) naming the URL and the
// OS's reason, with a hint to check that probefarmd runs there; a deadline that runs out
// throws Error(timeout).
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>

namespace probefarm::server {

struct HttpResult {
  unsigned status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names

  // The body parsed as JSON; Error(probe_io) quoting the start of the body if it is not.
  nlohmann::json json() const;
  std::string header(const std::string& lower_name) const;  // "" when absent
};

// "http://host:port" (a trailing path is ignored). Error(usage) for anything else.
struct ServerAddress {
  std::string host;
  std::uint16_t port = 80;
  static ServerAddress parse(const std::string& url);
  std::string url() const;  // "http://host:port"
};

class HttpClient {
 public:
  // `token`: sent as "Authorization: Bearer …" when not empty. One keep-alive connection,
  // reopened when the server closed it.
  HttpClient(ServerAddress server, std::string token = {},
             std::chrono::milliseconds timeout = std::chrono::seconds(30));
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Any method; `headers` are added as given (e.g. "Idempotency-Key", "Origin", "Host").
  HttpResult request(const std::string& method, const std::string& target,
                     const std::string& body = {},
                     const std::map<std::string, std::string>& headers = {},
                     const std::string& content_type = "application/json");
  HttpResult get(const std::string& target);
  HttpResult post_json(const std::string& target, const nlohmann::json& body,
                       const std::map<std::string, std::string>& headers = {});
  // Streams the file as the body (application/octet-stream) without loading it whole.
  HttpResult upload(const std::string& target, const std::filesystem::path& file);
  // GET streamed into `out` (written beside it and renamed when complete). Non-2xx: the
  // error body is returned and `out` is not touched.
  HttpResult download(const std::string& target, const std::filesystem::path& out);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class WsClient {
 public:
  // Connects and completes the WebSocket handshake on `target` (e.g. "/api/v1/events").
  // The token goes in the Authorization header. A refused handshake throws Error with the
  // HTTP status and the server's error message (401/403 → usage-like text).
  WsClient(ServerAddress server, const std::string& target, std::string token = {},
           const std::map<std::string, std::string>& headers = {},
           std::chrono::milliseconds timeout = std::chrono::seconds(10));
  ~WsClient();
  WsClient(const WsClient&) = delete;
  WsClient& operator=(const WsClient&) = delete;

  // A text frame, or a binary one (bytes that need not be UTF-8: the GDB tunnel).
  void send(const std::string& data, bool binary = false);
  // The next message, or nullopt when `timeout` passes first. Error(probe_io) when the
  // connection closed (the close reason in the message).
  std::optional<std::string> receive(std::chrono::milliseconds timeout);
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The status of a refused WebSocket handshake is in the thrown Error's message as
// "HTTP 403"; tests use this to check 401/403.

}  // namespace probefarm::server
