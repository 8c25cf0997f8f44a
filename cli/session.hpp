#pragma once
// What every command of `probefarm` shares: opening the chosen probe, attaching to its
// target, and printing (a human line on stderr, or one JSON object on stdout with --json).
#include <cstdio>
#include <memory>
#include <nlohmann/json_fwd.hpp>

#include "cli/options.hpp"
#include "flash/target.hpp"
#include "probe/dap_probe.hpp"
#include "probe/discovery.hpp"

namespace probefarm::cli {

// The probe and the attached target, for one command.
struct Session {
  probe::ProbeInfo info;
  std::unique_ptr<probe::DapProbe> probe;
  std::unique_ptr<flash::Target> target;
  std::uint32_t requested_khz = 0;
};

// Opens the probe --probe names (or the only one) and attaches with the options' clock,
// --connect-under-reset, and `halt`. Notes on stderr when the clock differs from the request.
Session attach(const Options& o, bool halt);

void print_json(const nlohmann::json& j);
nlohmann::json chip_json(const Session& s);
nlohmann::json probe_json(const probe::ProbeInfo& p);

// Messages for a person go to stderr so that stdout stays parseable (--json, `read -`).
template <typename... Args>
void note(const Options& o, const char* fmt, Args... args) {
  if (o.json) return;
  std::fprintf(stderr, fmt, args...);
  std::fputc('\n', stderr);
}

// The protection commands (cli/commands_protection.cpp): option-bytes, protect, unlock.
int cmd_option_bytes(const Options& o);
int cmd_protect(const Options& o);
int cmd_unlock(const Options& o);

}  // namespace probefarm::cli
