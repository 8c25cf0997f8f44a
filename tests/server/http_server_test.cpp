// HttpServer in-process on a free port, driven through HttpClient, WsClient and a raw socket.
#include "server/http_server.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <fstream>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "probe/error.hpp"
#include "server/auth.hpp"
#include "server/database.hpp"
#include "server/http_client.hpp"
#include "server/metrics.hpp"

namespace probefarm::server {
namespace {

namespace net = boost::asio;
using nlohmann::json;
using namespace std::chrono_literals;

std::string read_file(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_file(const std::filesystem::path& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
}

std::string random_bytes(std::size_t size, unsigned seed) {
  std::mt19937 rng(seed);
  std::string data(size, '\0');
  for (auto& b : data)
    b = static_cast<char>(rng());
  return data;
}

bool eventually(const std::function<bool()>& done, std::chrono::milliseconds limit = 5s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return done();
}

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("pf_http_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    db_ = std::make_unique<Database>(dir_ / "probefarm.db");
    tokens_ = std::make_unique<TokenStore>(*db_);
    admin_ = tokens_->create("root", Role::admin);
    operator_ = tokens_->create("ci", Role::operator_);
    viewer_ = tokens_->create("watcher", Role::viewer);
    options_.port = 0;
    options_.max_request_bytes = 4096;
    options_.max_upload_bytes = 256 * 1024;
    options_.max_ws_message_bytes = 1024;
    options_.ws_queue_messages = 8;
    options_.upload_dir = dir_ / "uploads";
  }

  void TearDown() override {
    if (server_) server_->stop();
    work_.reset();
    io_.stop();
    for (auto& t : threads_)
      t.join();
    for (auto& t : helpers_)
      t.join();
    server_.reset();
    flood_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Registers the test routes and starts the server on two io threads.
  void start() {
    server_ = std::make_unique<HttpServer>(io_, options_, *tokens_, metrics_);
    server_->add({"GET", "/api/v1/things/{id}"}, [](Request& req, Respond respond) {
      respond(Response::json(200, {{"route", "param"},
                                   {"id", req.params.at("id")},
                                   {"x", req.query.count("x") ? req.query.at("x") : ""},
                                   {"who", req.principal.name},
                                   {"remote", req.remote}}));
    });
    server_->add({"GET", "/api/v1/things/special"}, [](Request&, Respond respond) {
      respond(Response::json(200, {{"route", "literal"}}));
    });
    server_->add({"DELETE", "/api/v1/things/{id}", Role::admin}, [](Request& req, Respond respond) {
      respond(Response::json(200, {{"deleted", req.params.at("id")}}));
    });
    server_->add({"POST", "/api/v1/echo", Role::operator_, BodyKind::text},
                 [](Request& req, Respond respond) {
                   respond(Response::json(200, {{"body", req.body}, {"size", req.body_size}}));
                 });
    server_->add({"POST", "/api/v1/upload", Role::operator_, BodyKind::upload},
                 [this](Request& req, Respond respond) {
                   {
                     std::lock_guard lock(mutex_);
                     upload_path_ = req.body_file;
                   }
                   std::filesystem::copy_file(req.body_file, dir_ / "received.bin",
                                              std::filesystem::copy_options::overwrite_existing);
                   respond(Response::json(200, {{"size", req.body_size}}));
                 });
    server_->add({"GET", "/api/v1/download"}, [this](Request&, Respond respond) {
      Response r;
      r.content_type = "application/octet-stream";
      r.file = dir_ / "served.bin";
      respond(std::move(r));
    });
    server_->add({"GET", "/api/v1/async"}, [this](Request& req, Respond respond) {
      std::string id = req.query["n"];
      std::lock_guard lock(mutex_);
      helpers_.emplace_back([respond, id] {
        respond(Response::json(202, {{"from", "helper"}, {"n", id}}));
      });
    });
    server_->add({"GET", "/api/v1/busy"}, [](Request&, Respond) {
      throw Error(ErrorCategory::busy, "probe PF1 is busy", "wait for job 3 to finish");
    });
    server_->add({"DELETE", "/api/v1/nocontent"},
                 [](Request&, Respond respond) { respond(Response::json(204, nullptr)); });
    server_->add({"GET", "/api/v1/badstatus"}, [](Request&, Respond respond) {
      Response r;
      r.status = 1000;
      respond(std::move(r));
    });
    server_->add({"GET", "/api/v1/silent"}, [](Request&, Respond) {});
    server_->add({"GET", "/public", Role::viewer, BodyKind::none, false},
                 [](Request& req, Respond respond) {
                   respond(Response::json(200, {{"who", req.principal.name}}));
                 });
    server_->add_websocket({"WS", "/api/v1/ws"}, [](std::shared_ptr<WebSocket> ws) {
      std::weak_ptr<WebSocket> weak = ws;
      ws->on_message = [weak](const std::string& message, bool) {
        if (auto self = weak.lock())
          self->send(std::make_shared<const std::string>("echo:" + message));
      };
    });
    server_->add_websocket({"WS", "/api/v1/ws-admin", Role::admin},
                           [](std::shared_ptr<WebSocket>) {});
    server_->add_websocket({"WS", "/api/v1/flood"}, [this](std::shared_ptr<WebSocket> ws) {
      ws->on_close = [this] { flood_closed_ = true; };
      std::lock_guard lock(mutex_);
      flood_ = ws;
    });
    server_->start();
    work_.emplace(io_.get_executor());
    for (int i = 0; i < 2; ++i)
      threads_.emplace_back([this] { io_.run(); });
    address_.host = "127.0.0.1";
    address_.port = server_->port();
  }

  std::string host() const { return "127.0.0.1:" + std::to_string(address_.port); }

  std::filesystem::path dir_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<TokenStore> tokens_;
  std::string admin_, operator_, viewer_;
  Metrics metrics_;
  HttpOptions options_;
  net::io_context io_;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work_;
  std::vector<std::thread> threads_;
  std::unique_ptr<HttpServer> server_;
  ServerAddress address_;
  std::mutex mutex_;
  std::vector<std::thread> helpers_;
  std::filesystem::path upload_path_;
  std::shared_ptr<WebSocket> flood_;
  std::atomic<bool> flood_closed_{false};
};

TEST_F(HttpServerTest, RoutesWithParametersAndQuery) {
  start();
  HttpClient client(address_, admin_);
  auto r = client.get("/api/v1/things/17?x=a%20b&y=2");
  ASSERT_EQ(r.status, 200u) << r.body;
  auto j = r.json();
  EXPECT_EQ(j["route"], "param");
  EXPECT_EQ(j["id"], "17");
  EXPECT_EQ(j["x"], "a b");
  EXPECT_EQ(j["who"], "root");
  EXPECT_EQ(r.header("content-type"), "application/json");
  // A literal segment wins over a parameter at the same position.
  EXPECT_EQ(client.get("/api/v1/things/special").json()["route"], "literal");
  // An encoded '/' stays inside the parameter.
  EXPECT_EQ(client.get("/api/v1/things/a%2Fb").json()["id"], "a/b");
  // The latency metric is labelled with the template, not the raw path. It is recorded once
  // the response is written, which may be just after the client has it.
  const std::string sample =
      "probefarm_http_request_duration_seconds_count{method=\"GET\","
      "route=\"/api/v1/things/{id}\",status=\"200\"} 2\n";
  EXPECT_TRUE(eventually([&] { return metrics_.render().find(sample) != std::string::npos; }))
      << metrics_.render();
}

TEST_F(HttpServerTest, UnknownPathIs404AndWrongMethodIs405WithAllow) {
  start();
  HttpClient client(address_, admin_);
  auto r = client.get("/api/v1/nothing");
  EXPECT_EQ(r.status, 404u);
  EXPECT_EQ(r.json()["error"]["category"], "not_found");
  EXPECT_NE(r.json()["error"]["message"].get<std::string>().find("/api/v1/nothing"),
            std::string::npos);
  r = client.request("POST", "/api/v1/things/3", "{}");
  EXPECT_EQ(r.status, 405u);
  EXPECT_EQ(r.header("allow"), "DELETE, GET");
  // The connection survives refusals: same client, next request fine.
  EXPECT_EQ(client.request("DELETE", "/api/v1/things/3").json()["deleted"], "3");
}

TEST_F(HttpServerTest, MissingOrUnknownTokenIs401) {
  start();
  HttpClient anonymous(address_);
  auto r = anonymous.get("/api/v1/things/1");
  EXPECT_EQ(r.status, 401u);
  EXPECT_EQ(r.header("www-authenticate").rfind("Bearer", 0), 0u);
  EXPECT_EQ(r.json()["error"]["message"], "no API token given");
  HttpClient forged(address_, "pf_" + std::string(64, '0'));
  r = forged.get("/api/v1/things/1");
  EXPECT_EQ(r.status, 401u);
  EXPECT_EQ(r.json()["error"]["message"], "the API token is not valid");
  // An unauthenticated route needs none, and still says who called when a token is given.
  EXPECT_EQ(anonymous.get("/public").status, 200u);
  EXPECT_EQ(HttpClient(address_, viewer_).get("/public").json()["who"], "watcher");
}

TEST_F(HttpServerTest, RoleBelowTheRouteIs403NamingTheRole) {
  start();
  HttpClient viewer(address_, viewer_);
  auto r = viewer.request("DELETE", "/api/v1/things/5");
  EXPECT_EQ(r.status, 403u);
  auto message = r.json()["error"]["message"].get<std::string>();
  EXPECT_NE(message.find("admin"), std::string::npos) << message;
  EXPECT_NE(message.find("viewer"), std::string::npos) << message;
  r = HttpClient(address_, operator_).request("DELETE", "/api/v1/things/5");
  EXPECT_EQ(r.status, 403u);
  EXPECT_EQ(HttpClient(address_, admin_).request("DELETE", "/api/v1/things/5").status, 200u);
}

TEST_F(HttpServerTest, ForeignOriginOrHostIs403) {
  start();
  HttpClient client(address_, admin_);
  auto r = client.request("GET", "/api/v1/things/1", {}, {{"Origin", "http://evil.example"}});
  EXPECT_EQ(r.status, 403u);
  EXPECT_NE(r.body.find("evil.example"), std::string::npos);
  r = client.request("GET", "/api/v1/things/1", {}, {{"Host", "evil.example:80"}});
  EXPECT_EQ(r.status, 403u);
  // A rebound name pointing at 127.0.0.1 with our port is still foreign.
  r = client.request("GET", "/api/v1/things/1", {},
                     {{"Host", "rebind.example:" + std::to_string(address_.port)}});
  EXPECT_EQ(r.status, 403u);
  // The listen address and its loopback aliases are fine, as Host and as Origin.
  for (const std::string& h : {host(), "localhost:" + std::to_string(address_.port),
                               "[::1]:" + std::to_string(address_.port)}) {
    r = client.request("GET", "/api/v1/things/1", {}, {{"Host", h}, {"Origin", "http://" + h}});
    EXPECT_EQ(r.status, 200u) << h << ": " << r.body;
  }
  r = client.request("GET", "/api/v1/things/1", {}, {{"Origin", "https://evil.example"}});
  EXPECT_EQ(r.status, 403u);
  r = client.request("GET", "/api/v1/things/1", {}, {{"Origin", "ftp://" + host()}});
  EXPECT_EQ(r.status, 403u);
  r = client.request("GET", "/api/v1/things/1", {}, {{"Origin", "https://"}});
  EXPECT_EQ(r.status, 403u);
}

TEST_F(HttpServerTest, AllowedHostsExtendTheList) {
  options_.allowed_hosts = {"farm.example.com:8080"};
  start();
  HttpClient client(address_, admin_);
  auto r = client.request(
      "GET", "/api/v1/things/1", {},
      {{"Host", "farm.example.com:8080"}, {"Origin", "http://farm.example.com:8080"}});
  EXPECT_EQ(r.status, 200u) << r.body;
}

// The dashboard behind a TLS-terminating proxy: the browser's Origin is https://.
TEST_F(HttpServerTest, HttpsOriginOfAnAllowedHostBehindAProxy) {
  options_.allowed_hosts = {"farm.example.com"};
  start();
  HttpClient client(address_, admin_);
  auto r = client.request("GET", "/api/v1/things/1", {},
                          {{"Host", "farm.example.com"}, {"Origin", "https://farm.example.com"}});
  EXPECT_EQ(r.status, 200u) << r.body;
  r = client.request("GET", "/api/v1/things/1", {},
                     {{"Host", "farm.example.com"}, {"Origin", "https://other.example.com"}});
  EXPECT_EQ(r.status, 403u);
}

TEST_F(HttpServerTest, OversizeJsonBodyIs413) {
  start();
  HttpClient client(address_, operator_);
  auto r = client.post_json("/api/v1/echo", {{"pad", std::string(8000, 'x')}});
  EXPECT_EQ(r.status, 413u);
  EXPECT_NE(r.json()["error"]["message"].get<std::string>().find("4096"), std::string::npos);
  // The connection was closed; the client reconnects for the next request.
  r = client.post_json("/api/v1/echo", {{"pad", "small"}});
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(r.json()["body"], R"({"pad":"small"})");
}

TEST_F(HttpServerTest, OversizeUploadIs413BeforeTheBodyIsRead) {
  start();
  write_file(dir_ / "big.bin", random_bytes(options_.max_upload_bytes + 1, 1));
  HttpClient client(address_, operator_);
  auto r = client.upload("/api/v1/upload", dir_ / "big.bin");
  EXPECT_EQ(r.status, 413u) << r.body;
  EXPECT_TRUE(upload_path_.empty()) << "the handler must not run";
  EXPECT_TRUE(!std::filesystem::exists(options_.upload_dir) ||
              std::filesystem::is_empty(options_.upload_dir));
  EXPECT_EQ(client.get("/api/v1/things/1").status, 200u);
}

TEST_F(HttpServerTest, ChunkedBodyGrowingPastTheLimitIs413) {
  start();
  net::io_context io;
  net::ip::tcp::socket socket(io);
  socket.connect({net::ip::make_address("127.0.0.1"), address_.port});
  std::string head = "POST /api/v1/echo HTTP/1.1\r\nHost: " + host() +
                     "\r\nAuthorization: Bearer " + operator_ +
                     "\r\nTransfer-Encoding: chunked\r\n\r\n";
  std::string chunk = "400\r\n" + std::string(0x400, 'a') + "\r\n";
  std::string data = head;
  for (int i = 0; i < 5; ++i)
    data += chunk;  // 5 KiB > 4 KiB
  net::write(socket, net::buffer(data));
  std::string reply;
  boost::system::error_code ec;
  net::read(socket, net::dynamic_buffer(reply), ec);  // until the server closes
  EXPECT_EQ(reply.rfind("HTTP/1.1 413", 0), 0u) << reply;
}

TEST_F(HttpServerTest, UploadIsStreamedIntoAFileAndRemovedAfterwards) {
  start();
  const std::string data = random_bytes(200 * 1024 + 7, 2);
  write_file(dir_ / "image.bin", data);
  HttpClient client(address_, operator_);
  auto r = client.upload("/api/v1/upload", dir_ / "image.bin");
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(r.json()["size"], data.size());
  EXPECT_EQ(read_file(dir_ / "received.bin"), data);
  EXPECT_EQ(upload_path_.parent_path(), options_.upload_dir);
  EXPECT_TRUE(eventually([&] { return !std::filesystem::exists(upload_path_); }));
  // An upload route refuses a viewer before anything is streamed.
  EXPECT_EQ(HttpClient(address_, viewer_).upload("/api/v1/upload", dir_ / "image.bin").status,
            403u);
}

TEST_F(HttpServerTest, FileResponseDownloadsIntoTheTarget) {
  start();
  const std::string data = random_bytes(300 * 1024, 3);
  write_file(dir_ / "served.bin", data);
  HttpClient client(address_, viewer_);
  auto out = dir_ / "downloaded.bin";
  auto r = client.download("/api/v1/download", out);
  ASSERT_EQ(r.status, 200u);
  EXPECT_EQ(r.header("content-length"), std::to_string(data.size()));
  EXPECT_EQ(read_file(out), data);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "downloaded.bin.part"));
  // An error is returned as a body and the target is not touched.
  r = client.download("/api/v1/things/1/none", dir_ / "other.bin");
  EXPECT_EQ(r.status, 404u);
  EXPECT_EQ(r.json()["error"]["category"], "not_found");
  EXPECT_FALSE(std::filesystem::exists(dir_ / "other.bin"));
  // A response file that does not exist is a 500, not a hang.
  std::filesystem::remove(dir_ / "served.bin");
  EXPECT_EQ(client.download("/api/v1/download", dir_ / "third.bin").status, 500u);
}

TEST_F(HttpServerTest, RespondFromAnotherThreadAndHandlerExceptions) {
  start();
  HttpClient client(address_, viewer_);
  for (int i = 0; i < 5; ++i) {
    auto r = client.get("/api/v1/async?n=" + std::to_string(i));
    ASSERT_EQ(r.status, 202u);
    EXPECT_EQ(r.json()["n"], std::to_string(i));
  }
  auto r = client.get("/api/v1/busy");
  EXPECT_EQ(r.status, 409u);
  EXPECT_EQ(r.json()["error"]["category"], "busy");
  EXPECT_EQ(r.json()["error"]["hint"], "wait for job 3 to finish");
}

TEST_F(HttpServerTest, NoContentInvalidResponsesAndSilentHandlers) {
  start();
  HttpClient client(address_, viewer_);
  auto r = client.request("DELETE", "/api/v1/nocontent");
  EXPECT_EQ(r.status, 204u);
  EXPECT_EQ(r.body, "");
  r = client.get("/api/v1/badstatus");
  EXPECT_EQ(r.status, 500u);
  EXPECT_EQ(r.json()["error"]["message"], "the handler's response is invalid");
  // A handler that drops `respond` without answering: 500, not a hung connection.
  r = client.get("/api/v1/silent");
  EXPECT_EQ(r.status, 500u);
  EXPECT_EQ(r.json()["error"]["message"], "the request handler did not answer");
  EXPECT_EQ(client.get("/api/v1/things/4").status, 200u);
}

TEST_F(HttpServerTest, KeepAliveReusesOneConnection) {
  start();
  HttpClient client(address_, viewer_);
  auto first = client.get("/api/v1/things/1").json()["remote"];
  auto second = client.get("/api/v1/things/2").json()["remote"];
  EXPECT_EQ(first, second);
}

TEST_F(HttpServerTest, ClientReconnectsWhenTheServerClosedAnIdleConnection) {
  options_.idle_timeout = 1s;
  start();
  HttpClient client(address_, operator_);
  auto first = client.get("/api/v1/things/1").json()["remote"];
  // The server's idle timeout has to run out; nothing observable to poll from here.
  std::this_thread::sleep_for(1500ms);
  auto r = client.post_json("/api/v1/echo", {{"n", 1}});
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_NE(client.get("/api/v1/things/1").json()["remote"], first);
}

TEST_F(HttpServerTest, GarbageGets400AndTheServerKeepsServing) {
  start();
  // Binary bytes, NULs included, as a TLS client would send.
  static constexpr char kBinary[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n";
  for (const std::string& garbage :
       {std::string(kBinary, sizeof kBinary - 1), std::string("GET / HTTX/1.1\r\n\r\n"),
        std::string("NOT HTTP AT ALL\r\n\r\n")}) {
    net::io_context io;
    net::ip::tcp::socket socket(io);
    socket.connect({net::ip::make_address("127.0.0.1"), address_.port});
    net::write(socket, net::buffer(garbage));
    std::string reply;
    boost::system::error_code ec;
    net::read(socket, net::dynamic_buffer(reply), ec);
    EXPECT_EQ(reply.rfind("HTTP/1.1 400", 0), 0u) << reply;
  }
  EXPECT_EQ(HttpClient(address_, viewer_).get("/api/v1/things/9").status, 200u);
}

TEST_F(HttpServerTest, WebSocketEcho) {
  start();
  WsClient ws(address_, "/api/v1/ws", viewer_);
  ws.send("hello");
  EXPECT_EQ(ws.receive(5s), "echo:hello");
  ws.send("again");
  EXPECT_EQ(ws.receive(5s), "echo:again");
  // Nothing more: receive gives up at its timeout.
  EXPECT_EQ(ws.receive(50ms), std::nullopt);
  ws.close();
  // Browsers pass the token in the query.
  WsClient query(address_, "/api/v1/ws?access_token=" + viewer_);
  query.send("q");
  EXPECT_EQ(query.receive(5s), "echo:q");
}

TEST_F(HttpServerTest, WebSocketRefusalsCarryTheStatus) {
  start();
  auto status_of = [&](const std::string& target, const std::string& token,
                       const std::map<std::string, std::string>& headers = {}) {
    try {
      WsClient ws(address_, target, token, headers);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(status_of("/api/v1/ws", "").find("HTTP 401"), std::string::npos);
  EXPECT_NE(status_of("/api/v1/ws", "pf_nope").find("HTTP 401"), std::string::npos);
  EXPECT_NE(status_of("/api/v1/ws-admin", viewer_).find("HTTP 403"), std::string::npos);
  EXPECT_NE(status_of("/api/v1/ws", viewer_, {{"Origin", "http://evil.example"}}).find("HTTP 403"),
            std::string::npos);
  EXPECT_EQ(status_of("/api/v1/ws-admin", admin_), "accepted");
  // The query token is for WebSockets only.
  EXPECT_EQ(HttpClient(address_).get("/api/v1/things/1?access_token=" + viewer_).status, 401u);
}

TEST_F(HttpServerTest, WebSocketOversizeMessageClosesWith1009) {
  start();
  WsClient ws(address_, "/api/v1/ws", viewer_);
  ws.send(std::string(4000, 'x'));
  try {
    while (ws.receive(5s)) {
    }
    FAIL() << "the connection stayed open";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("1009"), std::string::npos) << e.what();
  }
}

TEST_F(HttpServerTest, SlowWebSocketConsumerIsDroppedWithBoundedQueue) {
  start();
  WsClient ws(address_, "/api/v1/flood", viewer_);
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(mutex_);
    return flood_ != nullptr;
  }));
  std::shared_ptr<WebSocket> flood;
  {
    std::lock_guard lock(mutex_);
    flood = flood_;
  }
  // The client reads nothing. Every message is shared, as the event bus shares them.
  auto message = std::make_shared<const std::string>(64 * 1024, 'e');
  int accepted = 0;
  bool refused = false;
  for (int i = 0; i < 100000 && !refused; ++i) {
    if (flood->send(message))
      ++accepted;
    else
      refused = true;
  }
  ASSERT_TRUE(refused) << "the queue never filled";
  EXPECT_TRUE(eventually([&] { return flood_closed_.load(); }));
  EXPECT_FALSE(flood->send(message)) << "a dropped connection takes no more messages";
  // The client gets what was already on the wire, then the close with the reason.
  try {
    int received = 0;
    while (ws.receive(5s))
      ++received;
    FAIL() << "no close after " << received << " messages";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("1008 consumer too slow"), std::string::npos) << e.what();
  }
  // Other connections are unaffected.
  WsClient other(address_, "/api/v1/ws", viewer_);
  other.send("still here");
  EXPECT_EQ(other.receive(5s), "echo:still here");
}

TEST_F(HttpServerTest, StopClosesConnectionsAndRefusesNewOnes) {
  start();
  WsClient ws(address_, "/api/v1/ws", viewer_);
  HttpClient client(address_, viewer_, 2s);
  EXPECT_EQ(client.get("/api/v1/things/1").status, 200u);
  server_->stop();
  EXPECT_THROW(
      {
        while (ws.receive(5s)) {
        }
      },
      Error);
  EXPECT_THROW(client.get("/api/v1/things/1"), Error);
}

TEST_F(HttpServerTest, StartOnATakenPortNamesTheAddress) {
  start();
  HttpOptions o = options_;
  o.port = address_.port;
  HttpServer second(io_, o, *tokens_, metrics_);
  try {
    second.start();
    FAIL() << "bound a taken port";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::usage);
    EXPECT_NE(std::string(e.what()).find(host()), std::string::npos) << e.what();
  }
}

TEST(HttpStatus, CategoriesMapToStatuses) {
  EXPECT_EQ(http_status("usage"), 400u);
  EXPECT_EQ(http_status("image"), 422u);
  EXPECT_EQ(http_status("probe_not_found"), 404u);
  EXPECT_EQ(http_status("protection"), 409u);
  EXPECT_EQ(http_status("busy"), 409u);
  EXPECT_EQ(http_status("timeout"), 504u);
  EXPECT_EQ(http_status("target_not_responding"), 502u);
  EXPECT_EQ(http_status("probe_io"), 502u);
  EXPECT_EQ(http_status("verify"), 500u);
  EXPECT_EQ(http_status("internal"), 500u);
  auto r = Response::error(Error(ErrorCategory::image, "bad ELF", "rebuild it"));
  EXPECT_EQ(r.status, 422u);
  EXPECT_EQ(json::parse(r.body), json::parse(R"({"error":{"category":"image",
            "message":"bad ELF","hint":"rebuild it"}})"));
  EXPECT_EQ(Response::error(std::runtime_error("boom")).status, 500u);
}

TEST(HttpClientAddress, ParsesUrls) {
  auto a = ServerAddress::parse("http://127.0.0.1:8080/api");
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 8080);
  EXPECT_EQ(a.url(), "http://127.0.0.1:8080");
  EXPECT_EQ(ServerAddress::parse("http://farm").port, 80);
  auto v6 = ServerAddress::parse("http://[::1]:9000");
  EXPECT_EQ(v6.host, "::1");
  EXPECT_EQ(v6.url(), "http://[::1]:9000");
  EXPECT_THROW(ServerAddress::parse("https://farm:443"), Error);
  EXPECT_THROW(ServerAddress::parse("farm:8080"), Error);
  EXPECT_THROW(ServerAddress::parse("http://farm:99999"), Error);
}

TEST(HttpClientErrors, RefusedConnectionIsProbeIoNamingTheUrl) {
  // A port nobody listens on: bind one, then close it.
  net::io_context io;
  net::ip::tcp::acceptor acceptor(io, {net::ip::make_address("127.0.0.1"), 0});
  auto port = acceptor.local_endpoint().port();
  acceptor.close();
  HttpClient client(ServerAddress{"127.0.0.1", port}, {}, 2s);
  try {
    client.get("/");
    FAIL() << "connected to a closed port";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::probe_io);
    EXPECT_NE(std::string(e.what()).find("127.0.0.1:" + std::to_string(port)), std::string::npos)
        << e.what();
  }
}

TEST(HttpClientErrors, SilentServerIsATimeout) {
  // Accepts and never answers.
  net::io_context io;
  net::ip::tcp::acceptor acceptor(io, {net::ip::make_address("127.0.0.1"), 0});
  HttpClient client(ServerAddress{"127.0.0.1", acceptor.local_endpoint().port()}, {}, 300ms);
  try {
    client.get("/");
    FAIL() << "got an answer from nobody";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::timeout) << e.what();
  }
}

}  // namespace
}  // namespace probefarm::server
