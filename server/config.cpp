#include "server/config.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "probe/error.hpp"
#include "server/log.hpp"
#include "server/model.hpp"

namespace probefarm::server {

using nlohmann::json;

namespace {

[[noreturn]] void bad(const std::string& message, const std::string& hint) {
  throw Error(ErrorCategory::usage, message, hint);
}

bool is_sha256_hex(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
         });
}

// "HOST:PORT", "[v6]:PORT". Port 0 asks the kernel for a free one (tests).
void parse_listen(Config& c, const std::string& value, const std::string& origin) {
  const auto fail = [&] {
    bad(origin + ": listen address '" + value + "' is not HOST:PORT",
        "e.g. 127.0.0.1:8080, 0.0.0.0:8080 or [::1]:8080");
  };
  std::string host, port;
  if (!value.empty() && value[0] == '[') {
    const auto close = value.find(']');
    if (close == std::string::npos || close + 1 >= value.size() || value[close + 1] != ':') fail();
    host = value.substr(1, close - 1);
    port = value.substr(close + 2);
  } else {
    const auto colon = value.rfind(':');
    if (colon == std::string::npos) fail();
    host = value.substr(0, colon);
    port = value.substr(colon + 1);
  }
  if (host.empty() || port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
    fail();
  const unsigned long n = std::stoul(port);
  if (n > 65535) bad(origin + ": port " + port + " is out of range", "use a port from 1 to 65535");
  c.listen_host = host;
  c.listen_port = static_cast<std::uint16_t>(n);
}

Role parse_role_or_throw(const std::string& name, const std::string& where) {
  const auto role = parse_role(name);
  if (!role) bad(where + ": unknown role '" + name + "'", "roles: viewer, operator, admin");
  return *role;
}

// Typed access to one key of a config object, with errors naming the file and the key path.
class Reader {
 public:
  Reader(const json& j, std::string origin, std::string path)
      : j_(j), origin_(std::move(origin)), path_(std::move(path)) {}

  std::string where(const std::string& key) const {
    return origin_ + ": '" + (path_.empty() ? key : path_ + "." + key) + "'";
  }
  void only(std::initializer_list<const char*> keys) const {
    if (!j_.is_object()) bad(origin_ + ": '" + path_ + "' must be an object", hint());
    for (const auto& [key, value] : j_.items())
      if (std::none_of(keys.begin(), keys.end(), [&](const char* k) { return key == k; })) {
        std::string known;
        for (const char* k : keys)
          known += (known.empty() ? "" : ", ") + std::string(k);
        bad(origin_ + ": unknown key '" + (path_.empty() ? key : path_ + "." + key) + "'",
            "known keys" + (path_.empty() ? std::string() : " of '" + path_ + "'") + ": " + known);
      }
  }
  bool has(const char* key) const { return j_.contains(key); }
  std::string string(const char* key) const {
    if (!j_.at(key).is_string()) bad(where(key) + " must be a string", hint());
    return j_.at(key).get<std::string>();
  }
  bool boolean(const char* key) const {
    if (!j_.at(key).is_boolean()) bad(where(key) + " must be true or false", hint());
    return j_.at(key).get<bool>();
  }
  std::uint64_t number(const char* key, std::uint64_t min, std::uint64_t max) const {
    const json& v = j_.at(key);
    if (!v.is_number_unsigned() || v.get<std::uint64_t>() < min || v.get<std::uint64_t>() > max)
      bad(where(key) + " must be a whole number from " + std::to_string(min) + " to " +
              std::to_string(max),
          hint());
    return v.get<std::uint64_t>();
  }
  std::vector<std::string> strings(const char* key) const {
    const json& v = j_.at(key);
    if (!v.is_array() ||
        !std::all_of(v.begin(), v.end(), [](const json& e) { return e.is_string(); }))
      bad(where(key) + " must be an array of strings", hint());
    return v.get<std::vector<std::string>>();
  }
  const json& at(const char* key) const { return j_.at(key); }

 private:
  std::string hint() const { return "see probefarmd --help for the config file's keys"; }
  const json& j_;
  std::string origin_, path_;
};

std::string flag_value(int argc, char** argv, int& i, const std::string& flag,
                       const std::string& arg) {
  const auto eq = arg.find('=');
  if (eq != std::string::npos) return arg.substr(eq + 1);
  if (i + 1 >= argc) bad(flag + " needs a value", "see probefarmd --help");
  return argv[++i];
}

}  // namespace

void apply_config_json(Config& c, const std::string& text, const std::string& origin) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::parse_error& e) {
    // The parser's message carries the line and column ("parse error at line 3, column 5").
    bad(origin + ": invalid JSON: " + e.what(), "fix the config file's JSON syntax");
  }
  if (!doc.is_object()) bad(origin + ": the config file must be a JSON object", "{\"listen\": …}");
  Reader r(doc, origin, "");
  r.only({"listen", "data_dir", "allowed_hosts", "tokens", "default_speed_khz",
          "connect_under_reset", "probes", "max_upload_bytes", "max_request_bytes",
          "max_ws_message_bytes", "ws_queue_messages", "poll_interval_ms", "log_json",
          "session_jobs", "web_dir", "queue_timeout_s"});

  if (r.has("listen")) parse_listen(c, r.string("listen"), r.where("listen"));
  if (r.has("data_dir")) {
    c.data_dir = r.string("data_dir");
    if (c.data_dir.empty()) bad(r.where("data_dir") + " is empty", "name a directory");
  }
  if (r.has("allowed_hosts")) c.allowed_hosts = r.strings("allowed_hosts");
  if (r.has("tokens")) {
    const json& tokens = r.at("tokens");
    if (!tokens.is_array())
      bad(r.where("tokens") + " must be an array of {name, role, sha256}", "see probefarmd --help");
    c.tokens.clear();
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      Reader t(tokens[i], origin, "tokens[" + std::to_string(i) + "]");
      t.only({"name", "role", "sha256"});
      for (const char* key : {"name", "role", "sha256"})
        if (!t.has(key))
          bad(t.where(key) + " is missing", "each token needs name, role and sha256");
      ConfiguredToken token;
      token.name = t.string("name");
      if (token.name.empty()) bad(t.where("name") + " is empty", "give the token a name");
      token.role = parse_role_or_throw(t.string("role"), t.where("role"));
      token.sha256 = t.string("sha256");
      if (!is_sha256_hex(token.sha256))
        bad(t.where("sha256") +
                " must be 64 hex digits (the SHA-256 of the token, not the "
                "token)",
            "compute it with: printf %s \"$TOKEN\" | sha256sum");
      std::transform(token.sha256.begin(), token.sha256.end(), token.sha256.begin(),
                     [](unsigned char ch) { return std::tolower(ch); });
      for (const ConfiguredToken& other : c.tokens)
        if (other.name == token.name)
          bad(t.where("name") + ": token name '" + token.name + "' is used twice",
              "give every token a unique name");
      c.tokens.push_back(std::move(token));
    }
  }
  if (r.has("default_speed_khz"))
    c.default_speed_khz = static_cast<std::uint32_t>(r.number("default_speed_khz", 1, 100000));
  if (r.has("connect_under_reset")) c.connect_under_reset = r.boolean("connect_under_reset");
  if (r.has("session_jobs")) {
    const std::string v = r.string("session_jobs");
    if (v != "wait" && v != "refuse")
      bad(r.where("session_jobs") + " is '" + v + "'", "use \"wait\" or \"refuse\"");
    c.refuse_jobs_during_session = v == "refuse";
  }
  if (r.has("probes")) {
    const json& probes = r.at("probes");
    if (!probes.is_object())
      bad(r.where("probes") + " must be an object keyed by probe serial", "see probefarmd --help");
    c.probes.clear();
    for (const auto& [serial, value] : probes.items()) {
      Reader p(value, origin, "probes." + serial);
      p.only({"name", "labels", "speed_khz", "connect_under_reset"});
      ProbeConfig pc;
      if (p.has("name")) pc.name = p.string("name");
      if (p.has("labels")) pc.labels = p.strings("labels");
      if (p.has("speed_khz"))
        pc.speed_khz = static_cast<std::uint32_t>(p.number("speed_khz", 1, 100000));
      if (p.has("connect_under_reset")) pc.connect_under_reset = p.boolean("connect_under_reset");
      c.probes[serial] = std::move(pc);
    }
  }
  constexpr std::uint64_t kMax = 1ull << 40;
  if (r.has("max_upload_bytes")) c.max_upload_bytes = r.number("max_upload_bytes", 1, kMax);
  if (r.has("max_request_bytes")) c.max_request_bytes = r.number("max_request_bytes", 1, kMax);
  if (r.has("max_ws_message_bytes"))
    c.max_ws_message_bytes = r.number("max_ws_message_bytes", 1, kMax);
  if (r.has("ws_queue_messages"))
    c.ws_queue_messages = static_cast<std::size_t>(r.number("ws_queue_messages", 1, 1u << 24));
  if (r.has("poll_interval_ms"))
    c.poll_interval_ms = static_cast<unsigned>(r.number("poll_interval_ms", 10, 3600000));
  if (r.has("log_json")) c.log_json = r.boolean("log_json");
  if (r.has("queue_timeout_s"))
    c.queue_timeout_s = static_cast<unsigned>(r.number("queue_timeout_s", 1, kMaxQueueTimeoutS));
  if (r.has("web_dir")) {
    c.web_dir = r.string("web_dir");
    if (c.web_dir.empty()) bad(r.where("web_dir") + " is empty", "name the dashboard's directory");
  }
}

Config parse_config(int argc, char** argv) {
  Config c;
  // The file first, wherever --config stands, so that every flag overrides it.
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--config" || arg.rfind("--config=", 0) == 0) {
      const std::string file = flag_value(argc, argv, i, "--config", arg);
      std::ifstream in(file, std::ios::binary);
      if (!in)
        bad("--config: cannot read " + file + ": " + std::strerror(errno),
            "check the path and its permissions");
      std::ostringstream text;
      text << in.rdbuf();
      apply_config_json(c, text.str(), file);
      c.config_file = file;
    }
  }
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const std::string flag = arg.substr(0, arg.find('='));
    const bool inline_value = arg.find('=') != std::string::npos;
    if (flag == "--config") {
      flag_value(argc, argv, i, flag, arg);
    } else if (flag == "--listen") {
      parse_listen(c, flag_value(argc, argv, i, flag, arg), "--listen");
    } else if (flag == "--data-dir") {
      c.data_dir = flag_value(argc, argv, i, flag, arg);
      if (c.data_dir.empty()) bad("--data-dir is empty", "name a directory");
    } else if (flag == "--simulate") {
      c.simulate = flag_value(argc, argv, i, flag, arg);
      if (c.simulate.empty())
        bad("--simulate is empty",
            "e.g. --simulate stm32f407vg:cmsis-dap-v2,stm32f103c8:stlink-v2");
    } else if (flag == "--time-scale") {
      const std::string v = flag_value(argc, argv, i, flag, arg);
      char* end = nullptr;
      errno = 0;
      const double x = std::strtod(v.c_str(), &end);
      if (v.empty() || *end != '\0' || errno != 0 || !(x >= 0) || x > 1e6)
        bad("--time-scale '" + v + "' is not a number from 0 to 1000000",
            "1 runs the simulator in real time, 0 as fast as possible");
      c.time_scale = x;
    } else if (flag == "--web-dir") {
      c.web_dir = flag_value(argc, argv, i, flag, arg);
      if (c.web_dir.empty()) bad("--web-dir is empty", "name the dashboard's directory");
    } else if (flag == "--log-json") {
      if (inline_value) bad("--log-json takes no value", "give --log-json alone");
      c.log_json = true;
    } else if (flag == "--log-level") {
      const std::string v = flag_value(argc, argv, i, flag, arg);
      parse_log_level(v);  // Error(usage) naming the level
      c.log_level = v;
    } else if (flag == "--help" || flag == "-h" || flag == "--version") {
      // Handled by main before the configuration is read.
    } else {
      bad("unknown option '" + arg + "'", "see probefarmd --help");
    }
  }
  return c;
}

std::string usage_text() {
  return R"(Usage: probefarmd [OPTIONS]

probefarmd owns the debug probes attached to this host and serves flash jobs over a
REST + WebSocket API.

Options:
  --listen HOST:PORT   address to listen on (default 127.0.0.1:8080; port 0: any free port)
  --data-dir DIR       database, image store and admin token (default ./probefarm-data)
  --config FILE        JSON configuration file; flags override its values
  --simulate SPEC      serve simulated boards instead of USB probes, e.g.
                       stm32f407vg:cmsis-dap-v2,stm32f103c8:stlink-v2
  --time-scale X       simulator pacing: 1 real time, 0 as fast as possible (default 1)
  --web-dir DIR        the dashboard's files, served at / (default: the build's source
                       tree web/)
  --log-json           log one JSON object per line
  --log-level LEVEL    debug, info, warn or error (default info)
  -h, --help           show this text
  --version            show the version

Config file keys (all optional):
  listen, data_dir, allowed_hosts [host:port, ...],
  tokens [{"name", "role": viewer|operator|admin, "sha256": hex of the token's SHA-256}],
  default_speed_khz, connect_under_reset,
  probes {"<serial>": {"name", "labels": [...], "speed_khz", "connect_under_reset"}},
  max_upload_bytes, max_request_bytes, max_ws_message_bytes, ws_queue_messages,
  poll_interval_ms, log_json, web_dir,
  session_jobs: "wait" (default) or "refuse": what happens to a job submitted for a probe
    that a GDB or console session holds,
  queue_timeout_s (default 3600): a job not started within it fails with a timeout (a job's
    own "queue_timeout_s" wins)

On first start probefarmd creates an admin token and writes it to DATA_DIR/admin-token
(mode 0600).
)";
}

}  // namespace probefarm::server
