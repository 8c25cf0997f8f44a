// The console client: a line loop over the daemon's console WebSocket. Interactive (a
// terminal) it shows the banner and a prompt, as OpenOCD's telnet port does; fed a script
// it echoes nothing but the output, so `probefarm console < cmds.txt` reads like a log.
#include "cli/console.hpp"
#include "cli/remote.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "probe/error.hpp"
#include "server/http_client.hpp"

namespace probefarm::cli {

using nlohmann::json;

namespace {

// A flash write of a whole large chip can take minutes on a slow clock; anything longer
// than this is a daemon that stopped answering.
constexpr auto kCommandDeadline = std::chrono::minutes(10);

json next_message(server::WsClient& ws, std::chrono::milliseconds deadline) {
  auto text = ws.receive(deadline);
  if (!text)
    throw Error(ErrorCategory::timeout, "the console did not answer in time",
                "check the daemon's log; the probe may be stuck");
  json msg = json::parse(*text, nullptr, false);
  if (msg.is_discarded() || !msg.is_object())
    throw Error(ErrorCategory::probe_io,
                "the console sent something that is not JSON: " + text->substr(0, 80));
  if (msg.value("type", "") == "error") throw error_from_json(msg.value("error", json::object()));
  return msg;
}

}  // namespace

int run_console(const Options& o) {
  if (o.probe.empty())
    throw Error(ErrorCategory::usage, "console needs --probe SERIAL",
                "'probefarm --server … list' shows the probes");
  const bool interactive = ::isatty(STDIN_FILENO);
  server::WsClient ws(server::ServerAddress::parse(o.server),
                      "/api/v1/probes/" + url_encode(o.probe) + "/console", o.token);
  const json hello = next_message(ws, std::chrono::seconds(10));
  const std::string prompt = hello.value("prompt", "> ");
  if (interactive) std::fputs(hello.value("banner", "").c_str(), stdout);

  int status = 0;
  for (;;) {
    if (interactive) {
      std::fputs(prompt.c_str(), stdout);
      std::fflush(stdout);
    }
    std::string line;
    if (!std::getline(std::cin, line)) break;
    if (line == "exit" || line == "quit" || line == "shutdown") break;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    ws.send(line);
    json reply;
    do {
      reply = next_message(ws, kCommandDeadline);
    } while (reply.value("type", "") != "output");
    std::fputs(reply.value("output", "").c_str(), stdout);
    std::fflush(stdout);
    if (!reply.value("ok", false) && !interactive && status == 0) {
      const json e = reply.value("error", json::object());
      status =
          exit_code(category_from_name(e.value("category", "")).value_or(ErrorCategory::internal));
    }
  }
  ws.close();
  return status;
}

}  // namespace probefarm::cli
