#pragma once
// A probefarm-sim child process serving one board per probe kind, for tests that run the
// real libusb backend through the simulator's stand-in libusb-1.0.so.0.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "probe/discovery.hpp"
#include "probe/usb_libusb.hpp"

extern char** environ;

namespace probefarm::probe::test {

// The boards of every probe kind, in the order the simulator numbers them.
inline const std::vector<std::string> kBoards = {
    "stm32f103c8:stlink-v2", "stm32f303vc:cmsis-dap-v1", "stm32f407vg:cmsis-dap-v2",
    "stm32f746ng:stlink-v3", "stm32f407vg:stlink-v2-1",
};

// Runs `args` and returns its exit status.
inline int run_child(const std::vector<std::string>& args, pid_t* keep = nullptr,
                     int stdout_fd = -1) {
  std::vector<char*> argv;
  for (const auto& a : args)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (stdout_fd >= 0) posix_spawn_file_actions_adddup2(&actions, stdout_fd, STDOUT_FILENO);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  if (keep) {
    *keep = pid;
    return 0;
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class SimTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/probe_tests.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    socket_ = dir_ + "/sim.sock";

    std::vector<std::string> args = {PROBEFARM_SIM_EXE, "--socket", socket_};
    for (const auto& b : kBoards) {
      args.push_back("--board");
      args.push_back(b);
    }
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    ASSERT_EQ(run_child(args, &sim_pid_, fds[1]), 0);
    close(fds[1]);

    // "<serial> <probe> <chip>" per board, printed once the socket listens.
    std::string text;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (serials_.size() < kBoards.size() && std::chrono::steady_clock::now() < deadline) {
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
        serials_[probe] = serial;
      }
    }
    close(fds[0]);
    ASSERT_EQ(serials_.size(), kBoards.size()) << "probefarm-sim did not start";
    setenv("PROBEFARM_SIM_SOCKET", socket_.c_str(), 1);
    usb_ = make_libusb_context();
  }

  void TearDown() override {
    usb_.reset();
    if (sim_pid_ > 0) {
      kill(sim_pid_, SIGTERM);
      int status = 0;
      waitpid(sim_pid_, &status, 0);
    }
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // `probefarm-sim ctl --socket S <verb> <args…>`; returns its exit status.
  int ctl(const std::vector<std::string>& verb) {
    std::vector<std::string> args = {PROBEFARM_SIM_EXE, "ctl", "--socket", socket_};
    args.insert(args.end(), verb.begin(), verb.end());
    return run_child(args);
  }

  const ProbeInfo* find(const ProbeList& list, const std::string& serial) {
    for (const auto& p : list.probes)
      if (p.serial == serial) return &p;
    return nullptr;
  }

  std::string dir_;
  std::string socket_;
  pid_t sim_pid_ = -1;
  std::map<std::string, std::string> serials_;  // probe kind name → serial
  std::shared_ptr<UsbContext> usb_;
};

}  // namespace probefarm::probe::test
