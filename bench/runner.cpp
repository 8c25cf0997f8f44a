// One chip behind one probe kind: a private probefarm-sim with two identical boards, one for
// probefarm and one for OpenOCD, brought into the same state before every measured run.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "bench/bench.hpp"

extern char** environ;

namespace probefarm::bench {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// A tool run never takes this long on the real clock (the slowest, OpenOCD writing 1 MiB
// through a CMSIS-DAP v1 HID probe, takes a few minutes): past it the run is killed.
constexpr auto kToolDeadline = std::chrono::minutes(30);

// Every child alive (simulators, tools), for kill_children() from a signal handler: plain
// atomics, no locks.
constexpr std::size_t kMaxChildren = 64;
std::atomic<pid_t> children[kMaxChildren];

void track(pid_t pid) {
  for (auto& slot : children) {
    pid_t empty = 0;
    if (slot.compare_exchange_strong(empty, pid)) return;
  }
}

void untrack(pid_t pid) {
  for (auto& slot : children) {
    pid_t mine = pid;
    if (slot.compare_exchange_strong(mine, 0)) return;
  }
}

std::mutex log_mutex;
void log(const std::string& line) {
  std::lock_guard lock(log_mutex);
  std::cerr << line << std::endl;
}

struct ChildRun {
  int status = -1;  // exit status, or 128 + signal
  double cpu_seconds = 0;
  std::string err;  // stderr + stdout tail
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs `args` with `env`, output into `log_path`; waits with a deadline and takes the
// child's own CPU time from wait4 (its rusage, not the bench's).
ChildRun run_child(const std::vector<std::string>& args, const std::vector<std::string>& env,
                   const std::string& log_path,
                   std::chrono::steady_clock::duration deadline = kToolDeadline) {
  std::vector<char*> argv, envp;
  for (const auto& a : args)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : env)
    envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  ChildRun r;
  const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot create " + log_path);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fd, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, fd, STDERR_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(fd);
  if (rc != 0) throw std::runtime_error("cannot start " + args[0]);
  track(pid);
  const auto give_up = Clock::now() + deadline;
  int status = 0;
  rusage usage{};
  for (;;) {
    const pid_t got = wait4(pid, &status, WNOHANG, &usage);
    if (got == pid) break;
    if (got < 0) throw std::runtime_error("wait4 failed for " + args[0]);
    if (Clock::now() > give_up) {
      kill(pid, SIGKILL);
      wait4(pid, &status, 0, &usage);
      break;
    }
    // A child has no completion fd to poll here; 2 ms steps cost nothing against runs of
    // a second or more and bound the error of nothing (CPU time comes from rusage).
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  untrack(pid);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.cpu_seconds = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                  static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  const std::string out = slurp(log_path);
  r.err = out.size() > 1500 ? out.substr(out.size() - 1500) : out;
  return r;
}

// probefarm-sim on a private socket, two boards of the same chip and probe kind.
class Sim {
 public:
  Sim(const std::string& chip, const std::string& probe) {
    char tmpl[] = "/tmp/probefarm_bench.XXXXXX";
    if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    socket_ = dir_ + "/sim.sock";
    const std::string board = chip + ":" + probe;
    std::vector<std::string> args = {PROBEFARM_SIM_EXE, "--socket", socket_,   "--time-scale", "0",
                                     "--board",         board,      "--board", board};
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    const int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    if (rc == 0) track(pid_);
    if (rc != 0) {
      ::close(fds[0]);
      throw std::runtime_error("cannot start probefarm-sim");
    }
    // "<serial> <probe> <chip>" per board, printed once the socket listens.
    std::string text;
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    while (serials_.size() < 2 && Clock::now() < deadline) {
      pollfd p{fds[0], POLLIN, 0};
      if (poll(&p, 1, 200) <= 0) continue;
      char buf[512];
      const ssize_t n = ::read(fds[0], buf, sizeof buf);
      if (n <= 0) break;
      text.append(buf, static_cast<std::size_t>(n));
      std::size_t nl;
      while ((nl = text.find('\n')) != std::string::npos) {
        std::istringstream line(text.substr(0, nl));
        text.erase(0, nl + 1);
        std::string serial;
        line >> serial;
        serials_.push_back(serial);
      }
    }
    ::close(fds[0]);
    if (serials_.size() != 2) throw std::runtime_error("probefarm-sim did not start");
    env_.clear();
    for (char** e = environ; *e; ++e) {
      const std::string v = *e;
      if (v.rfind("LD_LIBRARY_PATH=", 0) == 0 || v.rfind("PROBEFARM_SIM_SOCKET=", 0) == 0) continue;
      env_.push_back(v);
    }
    env_.push_back(std::string("LD_LIBRARY_PATH=") + PROBEFARM_STANDIN_DIR);
    env_.push_back("PROBEFARM_SIM_SOCKET=" + socket_);
  }

  ~Sim() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status = 0;
      waitpid(pid_, &status, 0);
      untrack(pid_);
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  Sim(const Sim&) = delete;
  Sim& operator=(const Sim&) = delete;

  const std::string& dir() const { return dir_; }
  const std::vector<std::string>& env() const { return env_; }
  const std::string& serial(int board) const {
    return serials_.at(static_cast<std::size_t>(board));
  }

  void ctl(const std::vector<std::string>& verb) const {
    std::vector<std::string> args = {PROBEFARM_SIM_EXE, "ctl", "--socket", socket_};
    args.insert(args.end(), verb.begin(), verb.end());
    const ChildRun r = run_child(args, env_, dir_ + "/ctl.log", std::chrono::seconds(60));
    if (r.status != 0) throw std::runtime_error("probefarm-sim ctl failed: " + r.err);
  }

  // The board's counters.
  nlohmann::json stats(const std::string& serial) const {
    const ChildRun r = run_child({PROBEFARM_SIM_EXE, "ctl", "--socket", socket_, "stats"}, env_,
                                 dir_ + "/stats.json", std::chrono::seconds(60));
    if (r.status != 0) throw std::runtime_error("probefarm-sim ctl stats failed: " + r.err);
    const auto doc = nlohmann::json::parse(slurp(dir_ + "/stats.json"));
    for (const auto& b : doc.at("boards"))
      if (b.at("serial") == serial) return b;
    throw std::runtime_error("no board " + serial + " in stats");
  }

 private:
  std::string dir_, socket_;
  pid_t pid_ = -1;
  std::vector<std::string> serials_;
  std::vector<std::string> env_;
};

std::uint64_t counter(const nlohmann::json& b, const char* key) {
  return b.at(key).get<std::uint64_t>();
}

// Runs `args` against board `serial` and returns what the simulator counted meanwhile.
Measurement measure(const Sim& sim, const std::string& serial, const std::vector<std::string>& args,
                    const std::string& log_name) {
  const nlohmann::json before = sim.stats(serial);
  const ChildRun r = run_child(args, sim.env(), sim.dir() + "/" + log_name);
  const nlohmann::json after = sim.stats(serial);
  Measurement m;
  m.ran = true;
  m.exit_status = r.status;
  m.cpu_seconds = r.cpu_seconds;
  if (r.status != 0) m.error = r.err;
  auto delta = [&](const char* key) { return counter(after, key) - counter(before, key); };
  m.virtual_ps = delta("virtual_time_ps");
  m.usb_transfers = delta("usb_transfers");
  m.swd_transfers = delta("swd_transfers");
  m.bytes_programmed = delta("bytes_programmed");
  m.erases = delta("pages_erased") + delta("sectors_erased");
  m.mass_erases = delta("mass_erases");
  return m;
}

// What a board holds, as far as the bench knows (nullopt: unknown after a failed run).
using State = std::optional<Content>;

}  // namespace

void kill_children() {
  for (auto& slot : children) {
    const pid_t pid = slot.load();
    if (pid > 0) kill(pid, SIGTERM);
  }
}

std::vector<Row> run_combination(const Options& options, const ChipSpec& chip,
                                 const ProbeSpec& probe) {
  const flash::ChipInfo info = chip_info(chip);
  const std::string label = chip.name + " " + probe.name;
  Sim sim(chip.name, probe.name);
  const std::string pf_serial = sim.serial(0), ocd_serial = sim.serial(1);

  // The images: A (the one flashed), B (the "other firmware" of S2), A4 (S4: A with its
  // middle sector replaced). Fixed seeds: the same bytes on every run.
  const Content blank(info.flash_size, 0xFF);
  const Content image_a = make_content(info, 1);
  const Content image_b = make_content(info, 2);
  const Content image_a4 = with_sector_replaced(info, image_a, 3);
  std::map<const Content*, std::string> files;
  for (const auto& [c, name] : {std::pair{&image_a, "a"}, {&image_b, "b"}, {&image_a4, "a4"}}) {
    files[c] = sim.dir() + "/" + chip.name + "_" + name + ".elf";
    write_elf(files[c], info.flash_base, *c);
  }

  const std::string khz = std::to_string(chip.swd_khz);
  auto probefarm_args = [&](const std::string& serial, std::vector<std::string> command) {
    std::vector<std::string> args = {PROBEFARM_CLI_EXE, "--probe", serial, "--speed", khz};
    args.insert(args.end(), command.begin(), command.end());
    return args;
  };
  auto openocd_args = [&](const std::string& serial, const std::string& file) {
    std::vector<std::string> args = {"openocd"};
    // tests/openocd/lib.sh adapter_args.
    if (probe.openocd_adapter == "hla") {
      args.insert(args.end(), {"-f", "interface/stlink.cfg"});
    } else {
      args.insert(args.end(),
                  {"-f", "interface/cmsis-dap.cfg", "-c",
                   "cmsis_dap_backend " + probe.openocd_adapter, "-c", "transport select swd"});
    }
    args.insert(args.end(), {"-c", "adapter serial " + serial, "-c", "gdb_port disabled", "-c",
                             "tcl_port disabled", "-c", "telnet_port disabled", "-f",
                             "target/" + chip.openocd_target + ".cfg"});
    // stm32f1x.cfg sets 1 MHz and never raises it; the F3/F4/F7 scripts switch to 8 MHz in
    // their reset-init, which `program` runs, so only the F1 needs telling.
    if (chip.openocd_target == "stm32f1x") args.insert(args.end(), {"-c", "adapter speed " + khz});
    args.insert(args.end(), {"-c", "program " + file + " verify", "-c", "shutdown"});
    return args;
  };

  State pf_state = blank, ocd_state = blank;
  // Brings a board into `want` (not measured): a mass erase for blank, else probefarm flash.
  auto prepare = [&](const std::string& serial, State& state, const Content& want) {
    if (state && *state == want) return;
    std::vector<std::string> command;
    if (&want == &blank) {
      command = {"erase", "--all"};
    } else {
      command = {"flash", files.at(&want)};
    }
    const ChildRun r =
        run_child(probefarm_args(serial, command), sim.env(), sim.dir() + "/prepare.log");
    if (r.status != 0) {
      state.reset();
      throw std::runtime_error(label + ": preparing " + serial + " failed: " + r.err);
    }
    state = want;
  };

  // Execution order S1, S3, S4, S2: each leaves the boards where the next one starts.
  struct Step {
    Scenario scenario;
    const Content* before;
    const Content* image;
  };
  const std::vector<Step> order = {{Scenario::s1, &blank, &image_a},
                                   {Scenario::s3, &image_a, &image_a},
                                   {Scenario::s4, &image_a, &image_a4},
                                   {Scenario::s2, &image_b, &image_a}};
  std::vector<Row> rows;
  for (const Step& step : order) {
    if (std::find(options.scenarios.begin(), options.scenarios.end(), step.scenario) ==
        options.scenarios.end())
      continue;
    Row row;
    row.chip = chip.name;
    row.probe = probe.name;
    row.scenario = step.scenario;
    row.image_bytes = info.flash_size;
    row.swd_khz = chip.swd_khz;
    row.physical = physical_time(info, probe, chip.swd_khz, *step.before, *step.image);
    const std::string s = scenario_name(step.scenario);

    prepare(pf_serial, pf_state, *step.before);
    // A fresh board: power cycled (RAM, clocks and core state back to reset; the flash
    // stays), so that no run inherits what the previous one left.
    sim.ctl({"power", pf_serial, "cycle"});
    log("[" + label + "] " + s + " probefarm");
    row.probefarm =
        measure(sim, pf_serial, probefarm_args(pf_serial, {"flash", files.at(step.image)}),
                s + "_probefarm.log");
    pf_state = row.probefarm.ok() ? State(*step.image) : State();
    if (step.scenario == Scenario::s3) {
      // What any command pays before flashing starts: S3's floor.
      row.attach = measure(sim, pf_serial, probefarm_args(pf_serial, {"info"}), "info.log");
    }
    if (!row.probefarm.ok())
      log("[" + label + "] " + s + " probefarm FAILED: " + row.probefarm.error);

    if (options.openocd) {
      prepare(ocd_serial, ocd_state, *step.before);
      sim.ctl({"power", ocd_serial, "cycle"});
      log("[" + label + "] " + s + " openocd");
      row.openocd = measure(sim, ocd_serial, openocd_args(ocd_serial, files.at(step.image)),
                            s + "_openocd.log");
      ocd_state = row.openocd.ok() ? State(*step.image) : State();
      if (!row.openocd.ok()) log("[" + label + "] " + s + " openocd FAILED: " + row.openocd.error);
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace probefarm::bench
