// probefarmd-bench: the daemon's own figures (bench/README.md "probefarmd-bench").
//  - fleet: every simulated board flashed at once, against the slowest board alone;
//  - wrk: requests/s on GET /api/v1/probes;
//  - events: latency from publish to receipt for 1,000 WebSocket subscribers during a job.
// The boards are paced to the wall clock (--time-scale, default 0.25: a quarter of real speed,
// so that one simulator thread can emulate four running cores at once), so the fleet figures
// are wall-clock times; the event latencies are wall-clock by nature.
#include <sys/resource.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/results_file.hpp"
#include "common/sim_process.hpp"
#include "server/http_client.hpp"

namespace {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = boost::asio::ip::tcp;
using nlohmann::json;
using probefarm::server::HttpClient;
using probefarm::server::ServerAddress;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string out = PROBEFARM_BENCH_DEFAULT_OUT;
  unsigned subscribers = 1000;
  unsigned wrk_seconds = 10;
  unsigned image_kib = 64;
  // probefarm-sim emulates every board's core on one thread. At 1 a flash loader spinning on
  // each of four boards needs more than the machine's CPU, and the fleet figure would time
  // the simulator; a quarter of real speed leaves it headroom (the report shows how much).
  std::string time_scale = "0.25";
};

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::int64_t wall_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// User + system CPU seconds of a process so far (/proc/PID/stat fields 14 and 15).
double cpu_seconds(pid_t pid) {
  std::istringstream in(slurp("/proc/" + std::to_string(pid) + "/stat"));
  std::string text = in.str();
  const auto close = text.rfind(')');  // the command name may hold spaces
  if (close == std::string::npos) return 0;
  std::istringstream fields(text.substr(close + 2));
  std::string f;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> f; ++i) {
    if (i == 14) utime = std::stoull(f);
    if (i == 15) stime = std::stoull(f);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// The probefarm-sim serving `socket` (its command line names the socket).
pid_t sim_pid(const std::string& socket) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmd = slurp(entry.path() / "cmdline");
    std::replace(cmd.begin(), cmd.end(), '\0', ' ');
    if (cmd.find("probefarm-sim") != std::string::npos && cmd.find(socket) != std::string::npos &&
        cmd.find(" ctl ") == std::string::npos)
      return static_cast<pid_t>(std::stol(name));
  }
  return -1;
}

// A probefarmd on the simulator's bus (the environment SimProcess and main() set up).
struct Daemon {
  pid_t pid = -1;
  std::string url, token;

  Daemon(const std::string& data_dir) {
    const std::string log = data_dir + ".log";
    int fd = ::open(log.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
    pid = probefarm::test::spawn_child(
        {PROBEFARMD_EXE, "--listen", "127.0.0.1:0", "--data-dir", data_dir, "--log-json"}, fd, fd);
    ::close(fd);
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    while (url.empty() && Clock::now() < deadline) {
      std::istringstream lines(slurp(log));
      for (std::string line; std::getline(lines, line);) {
        json j = json::parse(line, nullptr, false);
        if (!j.is_discarded() && j.value("event", "") == "probefarmd.started") url = j["url"];
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (url.empty()) throw std::runtime_error("probefarmd did not start:\n" + slurp(log));
    token = slurp(data_dir + "/admin-token");
    while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back())))
      token.pop_back();
  }
  ~Daemon() {
    if (pid > 0) {
      kill(pid, SIGTERM);
      probefarm::test::wait_child(pid);
    }
  }
};

json wait_job(HttpClient& http, std::int64_t id) {
  for (;;) {
    json job = http.get("/api/v1/jobs/" + std::to_string(id)).json();
    const std::string s = job["state"];
    if (s != "queued" && s != "running") return job;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::int64_t submit(HttpClient& http, const std::string& serial, const std::string& sha) {
  auto r = http.post_json(
      "/api/v1/jobs", {{"probe", {{"serial", serial}}}, {"image", sha}, {"skip_unchanged", false}});
  if (r.status != 201) throw std::runtime_error("job refused: " + r.body);
  return r.json()["id"];
}

std::string upload_random(HttpClient& http, const std::string& dir, std::size_t size,
                          unsigned seed) {
  std::mt19937 rng(seed);
  std::string data(size, '\0');
  for (auto& b : data)
    b = static_cast<char>(rng());
  const std::string path = dir + "/image-" + std::to_string(seed) + ".bin";
  std::ofstream(path, std::ios::binary).write(data.data(), static_cast<std::streamsize>(size));
  auto r = http.upload("/api/v1/images?name=bench.bin&address=0x08000000", path);
  if (r.status != 201 && r.status != 200) throw std::runtime_error("upload refused: " + r.body);
  return r.json()["sha256"];
}

// ---- fleet --------------------------------------------------------------------------------

std::string fleet(HttpClient& http, const std::vector<std::string>& serials,
                  const std::vector<std::string>& names, const std::string& sha, unsigned image_kib,
                  const std::string& time_scale, pid_t sim, pid_t daemon) {
  std::ostringstream md;
  // Untimed first pass: afterwards every board holds the image, so each timed run below
  // erases and programs the same sectors (a blank chip would skip the erases).
  {
    std::vector<std::int64_t> warm;
    for (const auto& s : serials)
      warm.push_back(submit(http, s, sha));
    for (auto id : warm)
      if (json job = wait_job(http, id); job["state"] != "succeeded")
        throw std::runtime_error("job failed: " + job.dump());
  }
  std::vector<double> alone, alone_sim_cpu;
  double alone_daemon_cpu = 0;
  for (const auto& s : serials) {
    const double sim0 = cpu_seconds(sim), daemon0 = cpu_seconds(daemon);
    const auto t = Clock::now();
    json job = wait_job(http, submit(http, s, sha));
    alone.push_back(seconds_since(t));
    alone_sim_cpu.push_back(cpu_seconds(sim) - sim0);
    alone_daemon_cpu += cpu_seconds(daemon) - daemon0;
    if (job["state"] != "succeeded") throw std::runtime_error("job failed: " + job.dump());
  }
  std::vector<std::int64_t> ids;
  const double sim0 = cpu_seconds(sim), daemon0 = cpu_seconds(daemon);
  const auto t = Clock::now();
  for (const auto& s : serials)
    ids.push_back(submit(http, s, sha));
  std::vector<double> together(ids.size()), started(ids.size(), -1);
  // Each job's own end, read as it comes, so the per-board figures are wall times too.
  std::vector<bool> done(ids.size());
  for (std::size_t left = ids.size(); left;) {
    for (std::size_t i = 0; i < ids.size(); ++i) {
      if (done[i]) continue;
      json job = http.get("/api/v1/jobs/" + std::to_string(ids[i])).json();
      if (started[i] < 0 && job["state"] != "queued") started[i] = seconds_since(t);
      if (job["state"] == "queued" || job["state"] == "running") continue;
      if (job["state"] != "succeeded") throw std::runtime_error("job failed: " + job.dump());
      together[i] = seconds_since(t);
      done[i] = true;
      --left;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const double fleet_sim_cpu = cpu_seconds(sim) - sim0;
  const double fleet_daemon_cpu = cpu_seconds(daemon) - daemon0;
  const double makespan = *std::max_element(together.begin(), together.end());
  const double slowest = *std::max_element(alone.begin(), alone.end());
  const double last_start = *std::max_element(started.begin(), started.end());
  const double first_end = *std::min_element(together.begin(), together.end());
  double sum_sim_cpu = 0;
  for (double c : alone_sim_cpu)
    sum_sim_cpu += c;
  md << "### Fleet: every board at once against the slowest alone\n\n"
     << "Each board is flashed with the same " << image_kib
     << " KiB image (`skip_unchanged: false`, so each run erases and programs; an untimed "
        "first pass puts the image on every board, so every timed run erases the same "
        "sectors), first one board at a time, then all at once. Wall-clock seconds from submission "
        "to the job's "
        "end, boards paced to the wall clock at time scale "
     << time_scale
     << "; CPU seconds of the simulator process and of probefarmd over the same spans "
        "(/proc/PID/stat).\n\n"
     << "| board | alone s | simulator CPU s (alone) | all at once s | running after s |\n"
        "|---|---|---|---|---|\n";
  char buf[4096];
  for (std::size_t i = 0; i < serials.size(); ++i) {
    std::snprintf(buf, sizeof buf, "| %s | %.2f | %.2f | %.2f | %.2f |\n", names[i].c_str(),
                  alone[i], alone_sim_cpu[i], together[i], started[i]);
    md << buf;
  }
  std::snprintf(buf, sizeof buf,
                "\nAll at once: %.2f s; the slowest alone: %.2f s; ratio %.3f (target <= 1.10: "
                "%s).\n\n",
                makespan, slowest, makespan / slowest,
                makespan / slowest <= 1.10 ? "pass" : "MISS");
  md << buf;
  std::snprintf(buf, sizeof buf,
                "Where the time goes: every job was running %.2f s after submission and the "
                "first ended at %.2f s, so the four ran at the same time. The simulator used "
                "%.1f CPU s for the fleet (%.0f %% of one core over its %.1f s) against %.1f "
                "CPU s for the four boards alone; probefarmd used %.1f CPU s (fleet) and %.1f "
                "CPU s (alone, total).\n\n",
                last_start, first_end, fleet_sim_cpu, 100 * fleet_sim_cpu / makespan, makespan,
                sum_sim_cpu, fleet_daemon_cpu, alone_daemon_cpu);
  md << buf;
  // probefarm-sim is one thread: when the four boards alone need more of it than the
  // slowest board's time, the fleet cannot come within 10 % of that board on this machine.
  if (sum_sim_cpu > slowest) {
    std::snprintf(buf, sizeof buf,
                  "The simulator limits this figure: probefarm-sim is one thread that emulates "
                  "every board's core (unicorn) and answers every USB request, and the four "
                  "boards alone needed %.1f CPU s of it, %.2fx the slowest board alone. Run "
                  "with a lower --time-scale to measure probefarmd rather than the "
                  "simulator.\n\n",
                  sum_sim_cpu, sum_sim_cpu / slowest);
  } else {
    std::snprintf(buf, sizeof buf,
                  "The simulator had headroom: the four boards alone needed %.1f CPU s of its "
                  "one thread, %.0f %% of the slowest board's time, so the ratio measures "
                  "probefarmd.\n\n",
                  sum_sim_cpu, 100 * sum_sim_cpu / slowest);
  }
  md << buf;
  return md.str();
}

// ---- wrk ----------------------------------------------------------------------------------

std::string wrk(const Daemon& d, unsigned seconds) {
  const std::string cmd = "wrk -t2 -c32 -d" + std::to_string(seconds) +
                          "s --latency -H 'Authorization: Bearer " + d.token + "' " + d.url +
                          "/api/v1/probes 2>&1";
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[512];
    while (std::fgets(buf, sizeof buf, p))
      out += buf;
    pclose(p);
  }
  auto line_with = [&](const std::string& key) {
    std::istringstream in(out);
    for (std::string l; std::getline(in, l);)
      if (l.find(key) != std::string::npos) return l;
    return std::string("(missing)");
  };
  std::ostringstream md;
  md << "### wrk: GET /api/v1/probes\n\n"
     << "```sh\nwrk -t2 -c32 -d" << seconds
     << "s --latency -H 'Authorization: Bearer …' URL/api/v1/probes\n```\n\n"
     << "```\n"
     << line_with("Requests/sec") << "\n"
     << line_with("  50%") << "\n"
     << line_with("  99%") << "\n"
     << line_with("requests in") << "\n```\n\n"
     << "The body lists four probes with their targets (about 2.4 KB). wrk, the daemon and "
        "the simulator share the machine's two cores.\n\n";
  return md.str();
}

// ---- events -------------------------------------------------------------------------------

// One subscriber: handshake, then read forever, recording the latency of every job event.
struct Subscriber : std::enable_shared_from_this<Subscriber> {
  websocket::stream<beast::tcp_stream> ws;
  beast::flat_buffer buffer;
  std::vector<std::int64_t>* latencies;
  bool closed = false;

  Subscriber(boost::asio::io_context& io, std::vector<std::int64_t>* out)
      : ws(io), latencies(out) {}

  void read() {
    ws.async_read(buffer, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) {
        self->closed = true;
        return;
      }
      const std::int64_t now = wall_us();
      json e = json::parse(beast::buffers_to_string(self->buffer.data()), nullptr, false);
      self->buffer.consume(self->buffer.size());
      if (!e.is_discarded() && e.value("type", "").rfind("job.", 0) == 0)
        self->latencies->push_back(now - e["ts"].get<std::int64_t>());
      self->read();
    });
  }
};

double percentile(std::vector<std::int64_t> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return static_cast<double>(v[std::min(v.size() - 1, static_cast<std::size_t>(p * v.size()))]);
}

std::string events(const Daemon& d, HttpClient& http, const std::string& serial,
                   const std::string& sha, unsigned count) {
  boost::asio::io_context io;
  std::vector<std::int64_t> latencies;
  std::vector<std::shared_ptr<Subscriber>> subs;
  const ServerAddress a = ServerAddress::parse(d.url);
  tcp::resolver resolver(io);
  const auto endpoints = resolver.resolve(a.host, std::to_string(a.port));
  for (unsigned i = 0; i < count; ++i) {
    auto s = std::make_shared<Subscriber>(io, &latencies);
    beast::get_lowest_layer(s->ws).connect(endpoints);
    s->ws.set_option(websocket::stream_base::decorator([&](websocket::request_type& req) {
      req.set(beast::http::field::authorization, "Bearer " + d.token);
    }));
    s->ws.handshake(a.host + ":" + std::to_string(a.port), "/api/v1/events?types=job.");
    subs.push_back(s);
  }
  for (auto& s : subs)
    s->read();
  std::thread reader([&] { io.run(); });
  const std::int64_t id = submit(http, serial, sha);
  json job = wait_job(http, id);
  std::this_thread::sleep_for(std::chrono::seconds(2));  // the last deliveries
  io.stop();
  reader.join();
  unsigned closed = 0;
  for (auto& s : subs)
    closed += s->closed;
  const std::size_t expected_per = latencies.size() / std::max<std::size_t>(1, count);
  std::ostringstream md;
  char buf[1024];
  std::snprintf(buf, sizeof buf,
                "### Events: %u WebSocket subscribers during a job\n\n"
                "%u clients subscribe to `job.` events on /api/v1/events, then one flash job "
                "runs (%s). Latency: the event's `ts` (taken when the daemon publishes it) to "
                "its arrival at the client, wall clock, same host.\n\n"
                "| deliveries | per subscriber | p50 | p99 | max | subscribers dropped |\n"
                "|---|---|---|---|---|---|\n"
                "| %zu | %zu | %.2f ms | %.2f ms | %.2f ms | %u |\n\n",
                count, count, job["state"].get<std::string>().c_str(), latencies.size(),
                expected_per, percentile(latencies, 0.50) / 1000.0,
                percentile(latencies, 0.99) / 1000.0, percentile(latencies, 1.0) / 1000.0, closed);
  md << buf;
  return md.str();
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&] {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return std::string(argv[++i]);
    };
    if (a == "--out")
      o.out = value();
    else if (a == "--subscribers")
      o.subscribers = std::stoul(value());
    else if (a == "--wrk-seconds")
      o.wrk_seconds = std::stoul(value());
    else if (a == "--time-scale")
      o.time_scale = value();
    else if (a == "--help" || a == "-h") {
      std::puts(
          "probefarmd-bench [--out FILE] [--subscribers N] [--wrk-seconds S] [--time-scale X]");
      return 0;
    } else {
      std::fprintf(stderr, "probefarmd-bench: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  // 1,000 WebSockets need more descriptors than the usual soft limit of 1,024.
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  try {
    const auto start = Clock::now();
    setenv("LD_LIBRARY_PATH", PROBEFARM_STANDIN_DIR, 1);
    const std::vector<std::string> boards = {"stm32f103c8:stlink-v2", "stm32f303vc:cmsis-dap-v1",
                                             "stm32f407vg:cmsis-dap-v2", "stm32f746ng:stlink-v3"};
    probefarm::test::SimProcess sim(boards, {"--time-scale", o.time_scale});
    Daemon daemon(sim.dir() + "/data");
    HttpClient http(ServerAddress::parse(daemon.url), daemon.token);
    for (int i = 0; i < 300; ++i) {
      json probes = http.get("/api/v1/probes").json()["probes"];
      if (probes.size() == boards.size() &&
          std::all_of(probes.begin(), probes.end(),
                      [](const json& p) { return p["target"].is_object(); }))
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    const std::string sha = upload_random(http, sim.dir(), o.image_kib * 1024, 1);
    std::ostringstream md;
    std::time_t now = std::time(nullptr);
    char date[64];
    std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
    md << "## probefarmd\n\nProduced by:\n\n```sh\nbuild/bin/probefarmd-bench --time-scale "
       << o.time_scale << "\n```\n\nDate: " << date << ". Boards: " << boards[0] << ", "
       << boards[1] << ", " << boards[2] << ", " << boards[3]
       << " on one probefarm-sim at --time-scale " << o.time_scale
       << ", reached by probefarmd through "
       << "the stand-in libusb.\n\n";
    std::cerr << "probefarmd-bench: fleet\n";
    md << fleet(http, sim.serials(), boards, sha, o.image_kib, o.time_scale, sim_pid(sim.socket()),
                daemon.pid);
    std::cerr << "probefarmd-bench: wrk\n";
    md << wrk(daemon, o.wrk_seconds);
    std::cerr << "probefarmd-bench: events\n";
    const std::string big = upload_random(http, sim.dir(), 256 * 1024, 2);
    md << events(daemon, http, sim.serials()[2], big, o.subscribers);
    char wall[80];
    std::snprintf(wall, sizeof wall, "Wall time of the run: %.0f s.\n", seconds_since(start));
    md << wall;
    std::cout << md.str();
    if (!probefarm::bench::write_section(o.out, "probefarmd-bench", md.str())) {
      std::cerr << "probefarmd-bench: cannot write " << o.out << "\n";
      return 1;
    }
    std::cout << "wrote " << o.out << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "probefarmd-bench: " << e.what() << "\n";
    return 1;
  }
}
