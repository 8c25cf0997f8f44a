// probefarmd: the networked multi-probe flashing service (README.md, openapi.yaml).
#include <sys/resource.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "probe/error.hpp"
#include "probe/simulated_bus.hpp"
#include "server/api.hpp"
#include "server/auth.hpp"
#include "server/config.hpp"
#include "server/database.hpp"
#include "server/event_bus.hpp"
#include "server/http_server.hpp"
#include "server/image_store.hpp"
#include "server/log.hpp"
#include "server/metrics.hpp"
#include "server/probe_manager.hpp"
#include "server/scheduler.hpp"

namespace fs = std::filesystem;
using namespace probefarm;
using namespace probefarm::server;

namespace {

// --simulate: the daemon runs again as a child of this process, on a simulator's USB bus.
// The flags that asked for it are not passed on.
std::vector<std::string> args_without_simulation(int argc, char** argv) {
  std::vector<std::string> out;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--simulate" || a == "--time-scale") {
      ++i;
      continue;
    }
    if (a.rfind("--simulate=", 0) == 0 || a.rfind("--time-scale=", 0) == 0) continue;
    out.push_back(a);
  }
  return out;
}

int serve(const Config& config) {
  set_log_format(config.log_json);
  set_log_level(parse_log_level(config.log_level));
  std::error_code ec;
  fs::create_directories(config.data_dir, ec);
  if (ec)
    throw Error(
        ErrorCategory::usage,
        "cannot create the data directory " + config.data_dir.string() + ": " + ec.message(),
        "give a writable directory with --data-dir");
  const std::int64_t started_at = now_ms();

  Database db(config.data_dir / "probefarm.db");
  // A job left running by a crash or a kill cannot be resumed half-way: the board may be
  // half programmed, so it is recorded as interrupted (with its audit row) for a person or
  // CI to submit again.
  for (const Job& job : db.interrupt_running_jobs())
    log_event(
        LogLevel::warn, "job.interrupted",
        {{"id", job.id}, {"probe", job.probe}, {"reason", "probefarmd stopped during the job"}});
  ImageStore images(config.data_dir / "images", db);
  TokenStore tokens(db);
  for (const auto& t : config.tokens)
    tokens.add_configured(t.name, t.role, t.sha256);
  const fs::path token_file = config.data_dir / "admin-token";
  const bool first_start = !fs::exists(token_file) && db.tokens().empty();
  const std::string admin_token = tokens.ensure_admin_token(token_file);

  Metrics metrics;
  EventBus bus;
  Scheduler scheduler(db, bus, metrics);
  scheduler.restore();
  ProbeManager probes(config, db, images, scheduler, bus, metrics);

  boost::asio::io_context io;
  HttpOptions http_options;
  http_options.host = config.listen_host;
  http_options.port = config.listen_port;
  http_options.allowed_hosts = config.allowed_hosts;
  http_options.max_request_bytes = config.max_request_bytes;
  http_options.max_upload_bytes = config.max_upload_bytes;
  http_options.max_ws_message_bytes = config.max_ws_message_bytes;
  http_options.ws_queue_messages = config.ws_queue_messages;
  http_options.upload_dir = images.temp_path().parent_path();
  HttpServer http(io, http_options, tokens, metrics);
  Services services{config, db, images, tokens, scheduler, probes, bus, metrics, started_at};
  register_routes(http, services);
  http.start();
  probes.start();

  const std::string url =
      "http://" +
      (config.listen_host.find(':') != std::string::npos ? "[" + config.listen_host + "]"
                                                         : config.listen_host) +
      ":" + std::to_string(http.port());
  log_event(LogLevel::info, "probefarmd.started",
            {{"url", url},
             {"data_dir", fs::absolute(config.data_dir).string()},
             {"version", PROBEFARM_VERSION},
             {"simulated", std::getenv("PROBEFARM_SIM_SOCKET") != nullptr}});
  if (first_start && !admin_token.empty())
    log_event(LogLevel::info, "admin_token.created",
              {{"file", token_file.string()},
               {"note", "the admin token is in this file (mode 0600); keep it secret"}});

  // The loop lives until the probe actors have finished (or interrupted) their jobs, so
  // that their last events and answers still go out.
  auto keep_running = boost::asio::make_work_guard(io);
  std::thread stopper;
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& error, int sig) {
    if (error) return;
    log_event(LogLevel::info, "probefarmd.stopping", {{"signal", sig}});
    http.stop();
    stopper = std::thread([&] {
      probes.stop();
      keep_running.reset();
      io.stop();
    });
  });

  // Handlers never block on a probe, so two threads suffice for the event loop; SQLite
  // writes (synchronous=FULL) are the longest thing a handler does.
  std::thread second([&] { io.run(); });
  io.run();
  second.join();
  if (stopper.joinable()) stopper.join();
  probes.stop();
  log_event(LogLevel::info, "probefarmd.stopped", nullptr);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  // Every WebSocket subscriber and HTTP client is a descriptor; the usual soft limit of
  // 1,024 would cap a dashboard-heavy farm well below what the hard limit allows.
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::fputs(usage_text().c_str(), stdout);
      return 0;
    }
    if (a == "--version") {
      std::printf("probefarmd %s\n", PROBEFARM_VERSION);
      return 0;
    }
  }
  try {
    Config config = parse_config(argc, argv);
    // run_simulated starts this program again without --simulate and with the variable set;
    // both together come from a shell that pointed itself at a simulator.
    if (const char* socket = std::getenv("PROBEFARM_SIM_SOCKET");
        socket && !config.simulate.empty()) {
      std::fprintf(stderr,
                   "probefarmd: warning: PROBEFARM_SIM_SOCKET is set (%s): serving that "
                   "simulator's boards, not --simulate %s\n"
                   "  hint: unset PROBEFARM_SIM_SOCKET LD_LIBRARY_PATH to start the boards of "
                   "--simulate\n",
                   socket, config.simulate.c_str());
    }
    if (!config.simulate.empty() && !std::getenv("PROBEFARM_SIM_SOCKET")) {
      probe::SimulationOptions sim;
      sim.time_scale = config.time_scale;
      sim.program = "probefarmd";
      return probe::run_simulated(config.simulate, args_without_simulation(argc, argv), sim);
    }
    return serve(config);
  } catch (const Error& e) {
    std::fprintf(stderr, "probefarmd: %s\n", e.what());
    if (!e.hint().empty()) std::fprintf(stderr, "  hint: %s\n", e.hint().c_str());
    return exit_code(e.category());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "probefarmd: internal error: %s\n", e.what());
    return 70;
  }
}
