#include "probe/simulated_bus.hpp"

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "probe/error.hpp"

extern char** environ;

namespace probefarm::probe {
namespace {

namespace fs = std::filesystem;

// The simulated run, for the signal handler that passes SIGINT/SIGTERM on.
volatile sig_atomic_t g_child = -1;

pid_t spawn(const std::vector<std::string>& args, int stdout_fd, char** env) {
  std::vector<char*> argv;
  for (const auto& a : args)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (stdout_fd >= 0) posix_spawn_file_actions_adddup2(&actions, stdout_fd, STDOUT_FILENO);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), env);
  posix_spawn_file_actions_destroy(&actions);
  return rc == 0 ? pid : -1;
}

int wait_status(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return 70;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

fs::path state_dir() {
  if (const char* s = std::getenv("XDG_STATE_HOME"); s && *s)
    return fs::path(s) / "probefarm" / "simulate";
  if (const char* h = std::getenv("HOME"); h && *h)
    return fs::path(h) / ".local" / "state" / "probefarm" / "simulate";
  return fs::temp_directory_path() / "probefarm-simulate-state";
}

// Kills and reaps the simulator however the run ends.
struct Simulator {
  pid_t pid = -1;
  fs::path dir;
  ~Simulator() {
    if (pid > 0) {
      kill(pid, SIGTERM);
      wait_status(pid);
    }
    std::error_code ec;
    if (!dir.empty()) fs::remove_all(dir, ec);
  }
};

}  // namespace

int run_simulated(const std::string& spec, const std::vector<std::string>& args,
                  const SimulationOptions& options) {
  std::vector<std::string> boards;
  std::stringstream ss(spec);
  for (std::string b; std::getline(ss, b, ',');) {
    if (b.find(':') == std::string::npos)
      throw Error(ErrorCategory::usage, "--simulate '" + b + "' is not CHIP:PROBE",
                  "for example --simulate stm32f407vg:cmsis-dap-v2,stm32f103c8:stlink-v2");
    boards.push_back(b);
  }
  if (boards.empty()) throw Error(ErrorCategory::usage, "--simulate needs at least one CHIP:PROBE");

  const fs::path self = fs::read_symlink("/proc/self/exe");
  const fs::path sim_exe = self.parent_path() / "probefarm-sim";
  const fs::path standin = self.parent_path().parent_path() / "lib" / "probefarm-sim";
  if (!fs::exists(sim_exe) || !fs::exists(standin / "libusb-1.0.so.0"))
    throw Error(ErrorCategory::usage,
                "--simulate needs probefarm-sim and its stand-in libusb next to " +
                    options.program + " (" + sim_exe.string() + ")",
                "build the whole tree (cmake --build build) and run it from build/bin");

  Simulator sim;
  char tmpl[] = "/tmp/probefarm-simulate.XXXXXX";
  if (!mkdtemp(tmpl)) throw Error(ErrorCategory::internal, "cannot create a temporary directory");
  sim.dir = tmpl;
  const std::string socket = (sim.dir / "sim.sock").string();
  std::error_code ec;
  fs::create_directories(state_dir(), ec);

  std::vector<std::string> sim_args = {sim_exe.string(), "--socket", socket};
  if (!ec) {
    sim_args.push_back("--state-dir");
    sim_args.push_back(state_dir().string());
  }
  if (options.time_scale) {
    sim_args.push_back("--time-scale");
    sim_args.push_back(std::to_string(*options.time_scale));
  }
  for (const auto& b : boards) {
    sim_args.push_back("--board");
    sim_args.push_back(b);
  }
  int fds[2];
  if (pipe(fds) != 0) throw Error(ErrorCategory::internal, "pipe() failed");
  sim.pid = spawn(sim_args, fds[1], environ);
  close(fds[1]);
  if (sim.pid < 0) {
    close(fds[0]);
    throw Error(ErrorCategory::internal, "cannot start " + sim_exe.string());
  }
  // The simulator prints one line per board once its socket listens (or exits on a bad
  // --board, having said why on stderr).
  std::size_t lines = 0;
  std::string text;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (lines < boards.size() && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fds[0], POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    char buf[256];
    ssize_t n = read(fds[0], buf, sizeof(buf));
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i)
      if (buf[i] == '\n') ++lines;
  }
  close(fds[0]);
  if (lines < boards.size())
    throw Error(ErrorCategory::usage, "the simulator did not start with --simulate " + spec,
                "check the chip and probe names in '" + options.program + " --help'");

  // The child sees the simulator as its USB bus.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    std::string s = *e;
    if (s.rfind("LD_LIBRARY_PATH=", 0) == 0 || s.rfind("PROBEFARM_SIM_SOCKET=", 0) == 0) continue;
    env_strings.push_back(s);
  }
  std::string ld = "LD_LIBRARY_PATH=" + standin.string();
  if (const char* old = std::getenv("LD_LIBRARY_PATH"); old && *old) ld += ":" + std::string(old);
  env_strings.push_back(ld);
  env_strings.push_back("PROBEFARM_SIM_SOCKET=" + socket);
  std::vector<char*> env;
  for (auto& s : env_strings)
    env.push_back(s.data());
  env.push_back(nullptr);

  std::vector<std::string> child_args = {self.string()};
  child_args.insert(child_args.end(), args.begin(), args.end());
  pid_t child = spawn(child_args, -1, env.data());
  if (child < 0) throw Error(ErrorCategory::internal, "cannot run " + self.string());
  g_child = child;
  struct sigaction forward {};
  forward.sa_handler = [](int sig) {
    if (g_child > 0) kill(g_child, sig);
  };
  sigemptyset(&forward.sa_mask);
  sigaction(SIGINT, &forward, nullptr);
  sigaction(SIGTERM, &forward, nullptr);
  const int status = wait_status(child);
  g_child = -1;
  return status;
}

}  // namespace probefarm::probe
