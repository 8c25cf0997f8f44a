#pragma once
// probefarmd as a child process on probefarm-sim boards, for the integration tests: started
// on a free port with a private data directory, reached through the same HTTP and WebSocket
// client the CLI uses, killed or stopped like a real service.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/sim_process.hpp"
#include "probe/error.hpp"
#include "server/http_client.hpp"

namespace probefarm::server::test {

using nlohmann::json;
using probefarm::Error;
using probefarm::test::SimProcess;
using Clock = std::chrono::steady_clock;

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline void write_file(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
}

// `size` pseudo-random bytes (seeded, so the same bytes every run).
inline std::string random_bytes(std::size_t size, unsigned seed) {
  std::mt19937 rng(seed);
  std::string data(size, '\0');
  for (auto& b : data)
    b = static_cast<char>(rng());
  return data;
}

// Polls `done` until it holds or `limit` passes.
inline bool eventually(const std::function<bool()>& done,
                       std::chrono::milliseconds limit = std::chrono::seconds(30)) {
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

class Daemon {
 public:
  // `data_dir` survives the Daemon (a restart reuses it); `extra` are more flags.
  Daemon(std::string data_dir, std::vector<std::string> extra = {})
      : data_dir_(std::move(data_dir)), extra_(std::move(extra)) {
    start();
  }
  ~Daemon() { stop(SIGTERM); }
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  void start() {
    log_ = data_dir_ + ".log";
    std::vector<std::string> args = {PROBEFARMD_EXE, "--listen",   "127.0.0.1:0", "--data-dir",
                                     data_dir_,      "--log-json", "--log-level", "debug"};
    args.insert(args.end(), extra_.begin(), extra_.end());
    int fd = ::open(log_.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
    pid_ = probefarm::test::spawn_child(args, fd, fd);
    ::close(fd);
    ASSERT_GT(pid_, 0) << "cannot start " << PROBEFARMD_EXE;
    // The "probefarmd.started" line carries the URL with the port the kernel chose.
    const bool up = eventually([&] {
      std::istringstream lines(read_file(log_));
      for (std::string line; std::getline(lines, line);) {
        json j = json::parse(line, nullptr, false);
        if (!j.is_discarded() && j.value("event", "") == "probefarmd.started") {
          url_ = j["url"];
          return true;
        }
      }
      return false;
    });
    ASSERT_TRUE(up) << "probefarmd did not start; its log:\n" << read_file(log_);
    admin_token_ = read_file(data_dir_ + "/admin-token");
    while (!admin_token_.empty() && std::isspace(static_cast<unsigned char>(admin_token_.back())))
      admin_token_.pop_back();
  }

  // Returns the exit status (128 + signal when killed).
  int stop(int sig) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, sig);
    int status = probefarm::test::wait_child(pid_);
    pid_ = -1;
    return status;
  }

  ServerAddress address() const { return ServerAddress::parse(url_); }
  const std::string& url() const { return url_; }
  const std::string& admin_token() const { return admin_token_; }
  const std::string& data_dir() const { return data_dir_; }
  std::string log() const { return read_file(log_); }

  HttpClient client(const std::string& token) const { return HttpClient(address(), token); }

 private:
  std::string data_dir_, log_, url_, admin_token_;
  std::vector<std::string> extra_;
  pid_t pid_ = -1;
};

// A fresh directory under the simulator's (removed with it).
inline std::string temp_dir(const SimProcess& sim, const std::string& name) {
  const std::string dir = sim.dir() + "/" + name;
  std::filesystem::create_directories(dir);
  return dir;
}

inline json job_of(HttpClient& http, std::int64_t id) {
  auto r = http.get("/api/v1/jobs/" + std::to_string(id));
  EXPECT_EQ(r.status, 200u) << r.body;
  return r.json();
}

// Waits for the job to reach a final state; the job as last read.
inline json wait_job(HttpClient& http, std::int64_t id,
                     std::chrono::milliseconds limit = std::chrono::seconds(120)) {
  json job;
  eventually(
      [&] {
        job = job_of(http, id);
        const std::string s = job.value("state", "");
        return s != "queued" && s != "running";
      },
      limit);
  return job;
}

inline std::string upload(HttpClient& http, const std::string& path, const std::string& query) {
  auto r = http.upload("/api/v1/images?" + query, path);
  EXPECT_TRUE(r.status == 201 || r.status == 200) << r.body;
  return r.json().value("sha256", "");
}

inline json submit(HttpClient& http, const json& spec,
                   const std::map<std::string, std::string>& headers = {}) {
  auto r = http.post_json("/api/v1/jobs", spec, headers);
  EXPECT_TRUE(r.status == 201 || r.status == 200) << r.body;
  return r.json();
}

// A token of the given role, created through the API with an admin client.
inline std::string create_token(HttpClient& admin, const std::string& name,
                                const std::string& role) {
  auto r = admin.post_json("/api/v1/tokens", {{"name", name}, {"role", role}});
  EXPECT_EQ(r.status, 201u) << r.body;
  return r.json().value("token", "");
}

// The demo firmware ELF the build made for `chip` ("stm32f407vg").
inline std::string demo_elf(const std::string& chip) {
  return std::string(PROBEFARM_FIRMWARE_DIR) + "/demo_" + chip + ".elf";
}

inline json probe_of(HttpClient& http, const std::string& serial) {
  auto r = http.get("/api/v1/probes/" + serial);
  EXPECT_EQ(r.status, 200u) << r.body;
  return r.json();
}

}  // namespace probefarm::server::test
