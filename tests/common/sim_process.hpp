#pragma once
// A probefarm-sim child process on a private socket, for tests that reach simulated boards
// the way users do: through the real libusb backend (and the simulator's stand-in
// libusb-1.0.so.0 on LD_LIBRARY_PATH, set by CMake for ctest) or through the `probefarm`
// executable. Define PROBEFARM_SIM_EXE to the simulator's path.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace probefarm::test {

struct ChildResult {
  int status = -1;  // exit status, or 128 + signal
  std::string out;  // stdout
  std::string err;  // stderr
};

// Starts `args` with stdout/stderr going to `out_fd`/`err_fd` (-1: inherited).
inline pid_t spawn_child(const std::vector<std::string>& args, int out_fd = -1, int err_fd = -1) {
  std::vector<char*> argv;
  for (const auto& a : args)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (out_fd >= 0) posix_spawn_file_actions_adddup2(&actions, out_fd, STDOUT_FILENO);
  if (err_fd >= 0) posix_spawn_file_actions_adddup2(&actions, err_fd, STDERR_FILENO);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  return rc == 0 ? pid : -1;
}

inline int wait_child(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Runs `args` to completion, capturing stdout and stderr (through files: no pipe deadlock).
inline ChildResult run_capture(const std::vector<std::string>& args) {
  char out_name[] = "/tmp/probefarm_test_out.XXXXXX";
  char err_name[] = "/tmp/probefarm_test_err.XXXXXX";
  int out_fd = mkstemp(out_name);
  int err_fd = mkstemp(err_name);
  ChildResult r;
  pid_t pid = spawn_child(args, out_fd, err_fd);
  if (pid > 0) r.status = wait_child(pid);
  auto slurp = [](int fd) {
    std::string s;
    lseek(fd, 0, SEEK_SET);
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
      s.append(buf, static_cast<std::size_t>(n));
    close(fd);
    return s;
  };
  r.out = slurp(out_fd);
  r.err = slurp(err_fd);
  unlink(out_name);
  unlink(err_name);
  return r;
}

class SimProcess {
 public:
  // "chip:probe[:serial]" per board; extra arguments go before them (e.g. --time-scale 1).
  explicit SimProcess(const std::vector<std::string>& boards,
                      const std::vector<std::string>& extra = {}) {
    char tmpl[] = "/tmp/probefarm_sim.XXXXXX";
    if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    socket_ = dir_ + "/sim.sock";
    std::vector<std::string> args = {PROBEFARM_SIM_EXE, "--socket", socket_};
    args.insert(args.end(), extra.begin(), extra.end());
    for (const auto& b : boards) {
      args.push_back("--board");
      args.push_back(b);
    }
    int fds[2];
    if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
    pid_ = spawn_child(args, fds[1]);
    close(fds[1]);
    // "<serial> <probe> <chip>" per board, printed once the socket listens.
    std::string text;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (serials_.size() < boards.size() && std::chrono::steady_clock::now() < deadline) {
      pollfd p{fds[0], POLLIN, 0};
      if (poll(&p, 1, 200) <= 0) continue;
      char buf[512];
      ssize_t n = read(fds[0], buf, sizeof(buf));
      if (n <= 0) break;
      text.append(buf, static_cast<std::size_t>(n));
      std::size_t nl;
      while ((nl = text.find('\n')) != std::string::npos) {
        std::istringstream line(text.substr(0, nl));
        text.erase(0, nl + 1);
        std::string serial, probe, chip;
        line >> serial >> probe >> chip;
        serials_.push_back(serial);
        by_probe_[probe] = serial;
      }
    }
    close(fds[0]);
    if (serials_.size() != boards.size()) throw std::runtime_error("probefarm-sim did not start");
    setenv("PROBEFARM_SIM_SOCKET", socket_.c_str(), 1);
  }

  ~SimProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      wait_child(pid_);
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  SimProcess(const SimProcess&) = delete;
  SimProcess& operator=(const SimProcess&) = delete;

  const std::string& socket() const { return socket_; }
  const std::string& dir() const { return dir_; }
  // In board order.
  const std::vector<std::string>& serials() const { return serials_; }
  // Probe kind name → serial (the last board with that probe kind).
  const std::map<std::string, std::string>& by_probe() const { return by_probe_; }

  // `probefarm-sim ctl --socket S <verb…>`; returns its exit status.
  int ctl(const std::vector<std::string>& verb) const {
    std::vector<std::string> args = {PROBEFARM_SIM_EXE, "ctl", "--socket", socket_};
    args.insert(args.end(), verb.begin(), verb.end());
    return run_capture(args).status;
  }

  // The board entry of `ctl stats` for `serial`.
  nlohmann::json stats(const std::string& serial) const {
    auto r = run_capture({PROBEFARM_SIM_EXE, "ctl", "--socket", socket_, "stats"});
    auto doc = nlohmann::json::parse(r.out);
    for (const auto& b : doc.at("boards"))
      if (b.at("serial") == serial) return b;
    throw std::runtime_error("no board " + serial + " in stats");
  }

 private:
  std::string dir_, socket_;
  pid_t pid_ = -1;
  std::vector<std::string> serials_;
  std::map<std::string, std::string> by_probe_;
};

}  // namespace probefarm::test
