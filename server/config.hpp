#pragma once
// probefarmd's configuration: command-line flags over an optional JSON config file over
// defaults.
//
//   probefarmd [--listen HOST:PORT] [--data-dir DIR] [--config FILE]
//              [--simulate CHIP:PROBE,…] [--time-scale X] [--web-dir DIR] [--log-json]
//              [--log-level LEVEL]
//
// Config file (JSON; every key optional):
//   {"listen": "127.0.0.1:8080", "data_dir": "/var/lib/probefarm",
//    "allowed_hosts": ["farm.example.com:8080"],   // Host/Origin values besides the listen one
//    "tokens": [{"name": "ci", "role": "operator", "sha256": "<hex of the token's SHA-256>"}],
//    "default_speed_khz": 4000, "connect_under_reset": false,
//    "probes": {"<serial>": {"name": "bench-3", "labels": ["f4", "hil"],
//                            "speed_khz": 8000, "connect_under_reset": true}},
//    "max_upload_bytes": 67108864, "max_request_bytes": 1048576, "max_ws_message_bytes": 65536,
//    "ws_queue_messages": 1024, "poll_interval_ms": 500, "log_json": false,
//    "web_dir": "/usr/share/probefarm/web"}
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "server/model.hpp"

namespace probefarm::server {

struct ConfiguredToken {
  std::string name;
  Role role = Role::viewer;
  std::string sha256;
};

struct ProbeConfig {
  std::string name;
  std::vector<std::string> labels;
  std::optional<std::uint32_t> speed_khz;
  std::optional<bool> connect_under_reset;
};

struct Config {
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 8080;
  std::filesystem::path data_dir = "probefarm-data";
  std::optional<std::filesystem::path> config_file;
  std::string simulate;     // --simulate spec; empty: real probes through libusb
  double time_scale = 1.0;  // --simulate: the simulator's pacing (0: as fast as possible)
  std::vector<std::string> allowed_hosts;
  std::vector<ConfiguredToken> tokens;
  std::uint32_t default_speed_khz = 4000;
  bool connect_under_reset = false;
  std::map<std::string, ProbeConfig> probes;  // by serial
  std::uint64_t max_upload_bytes = 64ull << 20;
  std::uint64_t max_request_bytes = 1ull << 20;
  std::uint64_t max_ws_message_bytes = 64ull << 10;
  std::size_t ws_queue_messages = 1024;  // a subscriber further behind is dropped
  unsigned poll_interval_ms = 500;       // hot-plug: bus listing period
  // A job for a probe held by a GDB or console session: wait for the session to end, or be
  // refused at submission (409, naming who holds the probe).
  bool refuse_jobs_during_session = false;
  // A job not started this long after its submission fails ("timeout"), unless it gives
  // its own queue_timeout_s: a probe offline or busy for good must not hold a CI step.
  unsigned queue_timeout_s = 3600;
  // The dashboard's static files (api_web.cpp); empty: the source tree's web/ (compiled in).
  std::filesystem::path web_dir;
  bool log_json = false;
  std::string log_level = "info";  // debug, info, warn, error
};

// Parses argv (flags override the file named by --config). Throws Error(usage) naming the
// flag, the file and line, or the key at fault. `--help` is not handled here.
Config parse_config(int argc, char** argv);
// Applies a JSON config document onto `config` (used by parse_config; tests).
void apply_config_json(Config& config, const std::string& text, const std::string& origin);

// The usage text of `probefarmd --help`.
std::string usage_text();

}  // namespace probefarm::server
