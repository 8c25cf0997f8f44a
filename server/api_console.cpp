// The WebSocket /api/v1/probes/{serial}/console: the OpenOCD-style console (console.hpp)
// of one probe, operator role (the token in the Authorization header or ?access_token=).
//
// Messages, all JSON text frames from the server:
//   {"type":"hello", "probe":serial, "banner":text, "prompt":"> "}    once, first
//   {"type":"output", "command":line, "output":text, "ok":bool}      one per command line;
//       when ok is false also "error":{category, message, hint}
//   {"type":"error", "error":{category, message, hint}}              then the socket closes:
//       the session was refused (unknown probe, offline, busy) or has ended (unplugged)
// The client sends each command line as one text frame. The connection holds the probe in
// a console session (jobs for it wait) until it closes.
//
// Commands block on the probe for as long as they take (a flash write: seconds), so each
// connection has a worker thread of its own that runs them in order; the WebSocket's
// strand only queues lines and sends replies.
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "probe/error.hpp"
#include "server/api.hpp"
#include "server/console.hpp"
#include "server/http_server.hpp"
#include "server/probe_manager.hpp"
#include "server/probe_session.hpp"
#include "server/worker_threads.hpp"

namespace probefarm::server {

using nlohmann::json;

namespace {

std::shared_ptr<const std::string> message(const json& j) {
  return std::make_shared<const std::string>(j.dump());
}

json error_message(std::string_view category, std::string_view text, std::string_view hint) {
  return {{"type", "error"}, {"error", error_json(category, text, hint)["error"]}};
}

// The lines of one connection, between its strand and its worker.
struct Connection {
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<std::string> lines;
  bool closed = false;
};

void serve(std::shared_ptr<Connection> conn, std::shared_ptr<ProbeSession> session,
           std::weak_ptr<WebSocket> weak, ConsoleEnv env) {
  Console console(*session, std::move(env));
  for (;;) {
    std::string line;
    {
      std::unique_lock lock(conn->mutex);
      conn->wake.wait(lock, [&] { return conn->closed || !conn->lines.empty(); });
      if (conn->closed) break;
      line = std::move(conn->lines.front());
      conn->lines.pop_front();
    }
    const ConsoleResult r = console.run(line);
    auto ws = weak.lock();
    if (!ws) break;
    json reply = {{"type", "output"}, {"command", line}, {"output", r.output}, {"ok", r.ok}};
    if (!r.ok) reply["error"] = error_json(r.category, r.message, r.hint)["error"];
    ws->send(message(reply));
    if (session->closed()) {
      // Unplugged, or the daemon is stopping: nothing more can run here.
      ws->send(
          message(error_message("probe_io", "the console session ended: " + session->end_reason(),
                                "open the console again once the probe is back")));
      ws->close("session ended");
      break;
    }
  }
  session->close();
}

}  // namespace

void console_routes(HttpServer& http, Services& s) {
  auto workers = std::make_shared<WorkerThreads>();
  http.add_websocket(
      {"WS", "/api/v1/probes/{serial}/console", Role::operator_},
      [&s, workers](std::shared_ptr<WebSocket> ws) {
        const Request& req = ws->request();
        const std::string serial = req.params.at("serial");
        JobError refused;
        auto session = s.probes.open_session(serial, "console", req.principal.name, refused);
        if (!session) {
          ws->send(message(error_message(refused.category, refused.message, refused.hint)));
          ws->close("refused");
          return;
        }
        auto conn = std::make_shared<Connection>();
        ws->on_message = [conn, weak = std::weak_ptr<WebSocket>(ws)](const std::string& text,
                                                                     bool binary) {
          if (binary) {
            if (auto w = weak.lock())
              w->send(message(error_message("usage", "send command lines as text frames", "")));
            return;
          }
          {
            std::lock_guard lock(conn->mutex);
            conn->lines.push_back(text);
          }
          conn->wake.notify_one();
        };
        // The worker closes the session once it has stopped; closing it here as well ends a
        // command that is waiting for the probe's actor.
        ws->on_close = [conn, session] {
          {
            std::lock_guard lock(conn->mutex);
            conn->closed = true;
          }
          conn->wake.notify_all();
          session->close();
        };
        Console greeter(*session, {});
        ws->send(message({{"type", "hello"},
                          {"probe", serial},
                          {"banner", greeter.banner()},
                          {"prompt", "> "}}));
        ConsoleEnv env{&s.images, &s.db, req.principal.name, req.principal.role};
        workers->spawn([conn, session, weak = std::weak_ptr<WebSocket>(ws),
                        env] { serve(conn, session, weak, env); },
                       // The daemon is stopping: the line loop ends as if the socket closed.
                       [conn] {
                         {
                           std::lock_guard lock(conn->mutex);
                           conn->closed = true;
                         }
                         conn->wake.notify_all();
                       });
      });
}

}  // namespace probefarm::server
