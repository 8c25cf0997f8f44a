// probefarm-bench: every chip x every probe kind x scenarios S1-S4, flashed by `probefarm`
// and by Debian's OpenOCD on identical simulated boards; prints the table and writes
// RESULTS.md (see README.md).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>

#include "bench/bench.hpp"
#include "bench/results_file.hpp"

namespace pb = probefarm::bench;

namespace {

constexpr int kExitUsage = 2;

const char* const kHelp =
    R"(probefarm-bench: probefarm against OpenOCD and the chip's physical limit.

Usage: probefarm-bench [--chips LIST] [--probes LIST] [--scenarios LIST] [--no-openocd]
                       [--jobs N] [--out FILE]
  --chips LIST       comma-separated: stm32f103c8,stm32f303vc,stm32f407vg,stm32f746ng (default all)
  --probes LIST      comma-separated: cmsis-dap-v1,cmsis-dap-v2,stlink-v2,stlink-v2-1,stlink-v3
                     (default all)
  --scenarios LIST   comma-separated: S1,S2,S3,S4 (default all)
                     S1 blank chip, full-flash image; S2 chip holding other firmware;
                     S3 the same image again; S4 an image differing in one sector
  --no-openocd       measure probefarm only
  --jobs N           chip/probe combinations run in parallel, each on its own simulator (default 1)
  --out FILE         where to write the Markdown results (default bench/RESULTS.md)
)";

[[noreturn]] void usage_error(const std::string& message) {
  std::cerr << "probefarm-bench: " << message << "\nTry 'probefarm-bench --help'.\n";
  std::exit(kExitUsage);
}

std::vector<std::string> split(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream s(list);
  std::string item;
  while (std::getline(s, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string shell_word(const std::string& a) {
  if (!a.empty() && a.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                        "0123456789-_=./,:") == std::string::npos)
    return a;
  std::string q = "'";
  for (char c : a)
    q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

pb::Options parse(int argc, char** argv) {
  pb::Options o;
  o.chips = pb::all_chips();
  o.probes = pb::all_probes();
  o.scenarios = {pb::Scenario::s1, pb::Scenario::s2, pb::Scenario::s3, pb::Scenario::s4};
  o.out = PROBEFARM_BENCH_DEFAULT_OUT;
  o.command_line = "build/bin/probefarm-bench";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::string value;
    auto take = [&](const std::string& flag) {
      if (a == flag) {
        if (i + 1 >= argc) usage_error(flag + " needs a value");
        value = argv[++i];
        return true;
      }
      if (a.rfind(flag + "=", 0) == 0) {
        value = a.substr(flag.size() + 1);
        return true;
      }
      return false;
    };
    if (a == "--help" || a == "-h") {
      std::cout << kHelp;
      std::exit(0);
    } else if (a == "--no-openocd") {
      o.openocd = false;
      o.command_line += " --no-openocd";
      continue;
    } else if (take("--chips")) {
      o.chips.clear();
      for (const auto& name : split(value)) {
        auto it = std::find_if(pb::all_chips().begin(), pb::all_chips().end(),
                               [&](const pb::ChipSpec& c) { return c.name == name; });
        if (it == pb::all_chips().end()) usage_error("unknown chip '" + name + "'");
        o.chips.push_back(*it);
      }
      if (o.chips.empty()) usage_error("--chips needs at least one chip");
    } else if (take("--probes")) {
      o.probes.clear();
      for (const auto& name : split(value)) {
        auto it = std::find_if(pb::all_probes().begin(), pb::all_probes().end(),
                               [&](const pb::ProbeSpec& p) { return p.name == name; });
        if (it == pb::all_probes().end()) usage_error("unknown probe kind '" + name + "'");
        o.probes.push_back(*it);
      }
      if (o.probes.empty()) usage_error("--probes needs at least one probe kind");
    } else if (take("--scenarios")) {
      o.scenarios.clear();
      for (const auto& name : split(value)) {
        auto s = pb::parse_scenario(name);
        if (!s) usage_error("unknown scenario '" + name + "' (S1, S2, S3, S4)");
        o.scenarios.push_back(*s);
      }
      if (o.scenarios.empty()) usage_error("--scenarios needs at least one scenario");
    } else if (take("--jobs")) {
      char* end = nullptr;
      const long n = std::strtol(value.c_str(), &end, 10);
      if (*end != 0 || n < 1 || n > 64) usage_error("--jobs needs a number from 1 to 64");
      o.jobs = static_cast<unsigned>(n);
    } else if (take("--out")) {
      o.out = value;
      // The file name is not part of how the figures were produced.
      continue;
    } else {
      usage_error("unknown option '" + a + "'");
    }
    o.command_line += " " + shell_word(a.find('=') != std::string::npos ? a : a) +
                      (a.find('=') != std::string::npos ? "" : " " + shell_word(value));
  }
  return o;
}

}  // namespace

extern "C" void on_signal(int sig) {
  pb::kill_children();
  _exit(128 + sig);
}

int main(int argc, char** argv) {
  const pb::Options options = parse(argc, argv);
  // An interrupted bench takes its simulators and tools with it (results written so far,
  // after each combination, stay).
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  const auto start = std::chrono::steady_clock::now();

  struct Job {
    pb::ChipSpec chip;
    pb::ProbeSpec probe;
    std::vector<pb::Row> rows;
    std::string error;
  };
  std::vector<Job> jobs;
  for (const auto& c : options.chips)
    for (const auto& p : options.probes)
      jobs.push_back({c, p, {}, {}});
  // The combinations the targets name first, the slowest (a CMSIS-DAP v1 HID probe moving
  // 1 MiB, minutes on the real clock) last: a run cut short still says the most.
  auto rank = [](const Job& j) {
    const bool big = j.chip.flash_kib >= 1024;
    const bool fast_probe = j.probe.name == "cmsis-dap-v2" || j.probe.name == "stlink-v3";
    if (big && fast_probe) return 0;
    if (!big && j.probe.name != "cmsis-dap-v1") return 1;
    if (j.probe.name != "cmsis-dap-v1") return 2;
    return big ? 4 : 3;
  };
  std::stable_sort(jobs.begin(), jobs.end(),
                   [&](const Job& a, const Job& b) { return rank(a) < rank(b); });
  std::vector<bool> finished(jobs.size(), false);

  // Rows in a stable order (chip, probe as given; scenarios S1..S4), and what remains.
  auto collect = [&](std::vector<std::string>* pending) {
    std::vector<pb::Row> rows;
    for (const auto& c : options.chips) {
      for (const auto& p : options.probes) {
        for (std::size_t i = 0; i < jobs.size(); ++i) {
          if (jobs[i].chip.name != c.name || jobs[i].probe.name != p.name) continue;
          if (!finished[i] && pending) pending->push_back(c.name + " " + p.name);
          std::vector<pb::Row> sorted = jobs[i].rows;
          std::sort(sorted.begin(), sorted.end(),
                    [](const pb::Row& a, const pb::Row& b) { return a.scenario < b.scenario; });
          rows.insert(rows.end(), sorted.begin(), sorted.end());
        }
      }
    }
    return rows;
  };
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };

  // Workers take the next combination until none is left. After each one the results file
  // is rewritten, so that a run cut short leaves what it measured.
  std::mutex next_mutex;
  std::size_t next = 0;
  auto worker = [&] {
    for (;;) {
      std::size_t index = 0;
      {
        std::lock_guard lock(next_mutex);
        if (next >= jobs.size()) return;
        index = next++;
      }
      Job* job = &jobs[index];
      try {
        job->rows = pb::run_combination(options, job->chip, job->probe);
      } catch (const std::exception& e) {
        job->error = e.what();
        std::cerr << "probefarm-bench: " << job->chip.name << " " << job->probe.name << ": "
                  << e.what() << std::endl;
      }
      std::lock_guard lock(next_mutex);
      finished[index] = true;
      std::vector<std::string> pending;
      const std::vector<pb::Row> rows = collect(&pending);
      if (!pending.empty()) {
        const std::string daemon_section = pb::read_section(options.out, "probefarmd-bench");
        std::ofstream partial(options.out);
        partial << pb::results_markdown(options, rows, elapsed(), pending);
        if (!daemon_section.empty()) partial << "\n" << daemon_section;
      }
    }
  };
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < std::min<std::size_t>(options.jobs, jobs.size()); ++i)
    threads.emplace_back(worker);
  for (auto& t : threads)
    t.join();

  const std::vector<pb::Row> rows = collect(nullptr);
  bool failed = false;
  for (const Job& j : jobs)
    failed = failed || !j.error.empty();
  for (const pb::Row& r : rows)
    failed = failed || !r.probefarm.ok() || (r.openocd.ran && !r.openocd.ok());
  const double wall = elapsed();
  std::cout << pb::table_text(rows);
  // probefarmd-bench's section of the file survives this rewrite.
  const std::string daemon_section = pb::read_section(options.out, "probefarmd-bench");
  std::ofstream out(options.out);
  out << pb::results_markdown(options, rows, wall);
  if (!daemon_section.empty()) out << "\n" << daemon_section;
  out.close();
  if (!out) {
    std::cerr << "probefarm-bench: cannot write " << options.out << "\n";
    return 1;
  }
  std::cout << "wrote " << options.out << "\n";
  // A failed run is a result worth writing down, but not a successful bench.
  return failed ? 1 : 0;
}
