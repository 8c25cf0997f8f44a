#pragma once
// Helpers for the fault tests (fault_test.cpp): a `probefarm` run in the background with a
// fault injected once the simulator's counters show the wanted phase, random images, and
// the checks every fault case shares (exit code, error named, no success printed).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cli_test_util.hpp"

namespace probefarm::cli::test {

// A file of `size` pseudo-random bytes (seeded: the same bytes every run).
inline std::string random_image(const SimProcess& sim, const std::string& name, std::size_t size,
                                unsigned seed) {
  const std::string path = sim.dir() + "/" + name;
  std::mt19937 rng(seed);
  std::vector<char> data(size);
  for (auto& b : data)
    b = static_cast<char>(rng());
  std::ofstream f(path, std::ios::binary);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
  return path;
}

inline std::uint64_t counter(const SimProcess& sim, const std::string& serial, const char* key) {
  return sim.stats(serial)[key].get<std::uint64_t>();
}

// Runs `probefarm args…` in the background; once `ready()` holds (polled every few ms, for
// at most 60 s) runs `inject()`, then waits for the command to end. `injected` says whether
// the fault went in before the command ended by itself.
struct FaultedRun {
  ChildResult result;
  bool injected = false;
};

inline FaultedRun run_with_fault(const SimProcess& sim, std::vector<std::string> args,
                                 const std::function<bool()>& ready,
                                 const std::function<void()>& inject) {
  args.insert(args.begin(), PROBEFARM_CLI_EXE);
  const std::string out_path = sim.dir() + "/faulted.out", err_path = sim.dir() + "/faulted.err";
  int out_fd = open(out_path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
  int err_fd = open(err_path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
  FaultedRun run;
  pid_t pid = probefarm::test::spawn_child(args, out_fd, err_fd);
  if (pid <= 0) {
    ADD_FAILURE() << "cannot start probefarm";
    return run;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {  // ended before the fault
      run.result.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      pid = -1;
      break;
    }
    if (ready()) {
      inject();
      run.injected = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (pid > 0) run.result.status = probefarm::test::wait_child(pid);
  close(out_fd);
  close(err_fd);
  auto out = read_file(out_path), err = read_file(err_path);
  run.result.out.assign(out.begin(), out.end());
  run.result.err.assign(err.begin(), err.end());
  return run;
}

// A `--json` run that failed with `status` and `category`, whose message names the fault
// (contains `needle`, case-insensitive), and that printed no success.
inline void expect_failure(const ChildResult& r, int status, const std::string& category,
                           const std::string& needle) {
  EXPECT_EQ(r.status, status) << said(r);
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << said(r);
  EXPECT_EQ(j.value("ok", true), false) << said(r);
  EXPECT_FALSE(j.contains("verified")) << "a failed run reported verification\n" << said(r);
  ASSERT_TRUE(j.contains("error")) << said(r);
  EXPECT_EQ(j["error"].value("category", ""), category) << said(r);
  std::string message = j["error"].value("message", "");
  std::string lower_message = message, lower_needle = needle;
  for (auto& c : lower_message)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (auto& c : lower_needle)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  EXPECT_NE(lower_message.find(lower_needle), std::string::npos)
      << "the error does not name the fault (" << needle << "): " << message;
}

// A `--json flash` run that succeeded and verified.
inline void expect_flashed(const ChildResult& r) {
  ASSERT_EQ(r.status, 0) << said(r);
  auto j = json_of(r);
  EXPECT_EQ(j["ok"], true) << said(r);
  EXPECT_EQ(j["verified"], true) << said(r);
}

}  // namespace probefarm::cli::test
