#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "probe/error.hpp"
#include "server/config.hpp"
#include "temp_dir.hpp"

namespace probefarm::server {
namespace {

using test::TempDir;

namespace fs = std::filesystem;

Config parse(std::vector<std::string> args) {
  args.insert(args.begin(), "probefarmd");
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  return parse_config(static_cast<int>(args.size()), argv.data());
}

std::string usage_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::usage) << e.what();
    EXPECT_FALSE(e.hint().empty()) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return {};
}

const std::string kSha(64, 'a');

TEST(StoreConfig, DefaultsWithoutArguments) {
  const Config c = parse({});
  EXPECT_EQ(c.listen_host, "127.0.0.1");
  EXPECT_EQ(c.listen_port, 8080);
  EXPECT_EQ(c.data_dir, fs::path("probefarm-data"));
  EXPECT_FALSE(c.config_file.has_value());
  EXPECT_TRUE(c.simulate.empty());
  EXPECT_EQ(c.log_level, "info");
  EXPECT_FALSE(c.log_json);
}

TEST(StoreConfig, FlagsInBothSpellings) {
  const Config c =
      parse({"--listen", "0.0.0.0:9000", "--data-dir=/srv/pf", "--simulate",
             "stm32f407vg:cmsis-dap-v2", "--time-scale=0", "--log-json", "--log-level", "debug"});
  EXPECT_EQ(c.listen_host, "0.0.0.0");
  EXPECT_EQ(c.listen_port, 9000);
  EXPECT_EQ(c.data_dir, fs::path("/srv/pf"));
  EXPECT_EQ(c.simulate, "stm32f407vg:cmsis-dap-v2");
  EXPECT_EQ(c.time_scale, 0.0);
  EXPECT_TRUE(c.log_json);
  EXPECT_EQ(c.log_level, "debug");

  const Config v6 = parse({"--listen", "[::1]:0"});
  EXPECT_EQ(v6.listen_host, "::1");
  EXPECT_EQ(v6.listen_port, 0);
}

TEST(StoreConfig, BadFlagsNameTheFlag) {
  EXPECT_NE(usage_error([] {
              parse({"--listen", "localhost"});
            }).find("'localhost' is not HOST:PORT"),
            std::string::npos);
  EXPECT_NE(usage_error([] {
              parse({"--listen", "h:70000"});
            }).find("port 70000 is out of range"),
            std::string::npos);
  EXPECT_NE(usage_error([] { parse({"--listen", "h:80x"}); }).find("--listen"), std::string::npos);
  EXPECT_NE(usage_error([] { parse({"--data-dir"}); }).find("--data-dir needs a value"),
            std::string::npos);
  EXPECT_NE(usage_error([] {
              parse({"--time-scale", "fast"});
            }).find("--time-scale 'fast'"),
            std::string::npos);
  EXPECT_NE(usage_error([] {
              parse({"--time-scale", "-1"});
            }).find("--time-scale"),
            std::string::npos);
  EXPECT_NE(usage_error([] {
              parse({"--log-level", "loud"});
            }).find("unknown log level 'loud'"),
            std::string::npos);
  EXPECT_NE(usage_error([] {
              parse({"--port", "1"});
            }).find("unknown option '--port'"),
            std::string::npos);
  EXPECT_NE(usage_error([] {
              parse({"--config", "/nonexistent/pf.json"});
            }).find("cannot read /nonexistent/pf.json"),
            std::string::npos);
}

TEST(StoreConfig, FileValuesAndFlagsOverThem) {
  TempDir dir;
  const fs::path file = dir.path() / "pf.json";
  std::ofstream(file) << R"({
    "listen": "10.0.0.1:1000", "data_dir": "/var/lib/probefarm",
    "allowed_hosts": ["farm.example.com:8080"],
    "tokens": [{"name": "ci", "role": "operator", "sha256": ")" +
                             std::string(64, 'A') + R"("}],
    "default_speed_khz": 1800, "connect_under_reset": true,
    "probes": {"PFSIM01": {"name": "bench-3", "labels": ["f4", "hil"], "speed_khz": 8000,
                           "connect_under_reset": false}},
    "max_upload_bytes": 1048576, "max_request_bytes": 4096, "max_ws_message_bytes": 1024,
    "ws_queue_messages": 16, "poll_interval_ms": 250, "log_json": true
  })";
  // --listen stands before --config and still wins.
  const Config c = parse({"--listen", "127.0.0.1:2000", "--config", file.string()});
  EXPECT_EQ(c.config_file, file);
  EXPECT_EQ(c.listen_host, "127.0.0.1");
  EXPECT_EQ(c.listen_port, 2000);
  EXPECT_EQ(c.data_dir, fs::path("/var/lib/probefarm"));
  EXPECT_EQ(c.allowed_hosts, std::vector<std::string>{"farm.example.com:8080"});
  ASSERT_EQ(c.tokens.size(), 1u);
  EXPECT_EQ(c.tokens[0].name, "ci");
  EXPECT_EQ(c.tokens[0].role, Role::operator_);
  EXPECT_EQ(c.tokens[0].sha256, std::string(64, 'a'));
  EXPECT_EQ(c.default_speed_khz, 1800u);
  EXPECT_TRUE(c.connect_under_reset);
  ASSERT_EQ(c.probes.count("PFSIM01"), 1u);
  const ProbeConfig& p = c.probes.at("PFSIM01");
  EXPECT_EQ(p.name, "bench-3");
  EXPECT_EQ(p.labels, (std::vector<std::string>{"f4", "hil"}));
  EXPECT_EQ(p.speed_khz, 8000u);
  EXPECT_EQ(p.connect_under_reset, false);
  EXPECT_EQ(c.max_upload_bytes, 1048576u);
  EXPECT_EQ(c.max_request_bytes, 4096u);
  EXPECT_EQ(c.max_ws_message_bytes, 1024u);
  EXPECT_EQ(c.ws_queue_messages, 16u);
  EXPECT_EQ(c.poll_interval_ms, 250u);
  EXPECT_TRUE(c.log_json);

  const Config d = parse({"--config=" + file.string(), "--data-dir", "/tmp/other"});
  EXPECT_EQ(d.data_dir, fs::path("/tmp/other"));
  EXPECT_EQ(d.listen_host, "10.0.0.1");
  EXPECT_EQ(d.listen_port, 1000);
}

TEST(StoreConfig, UnknownKeyNamesTheKeyAndTheFile) {
  TempDir dir;
  const fs::path file = dir.path() / "pf.json";
  std::ofstream(file) << R"({"listen": "127.0.0.1:8080", "lisen": "x"})";
  const std::string message = usage_error([&] { parse({"--config", file.string()}); });
  EXPECT_EQ(message, file.string() + ": unknown key 'lisen'");

  Config c;
  EXPECT_EQ(
      usage_error([&] { apply_config_json(c, R"({"probes": {"S1": {"nmae": "x"}}})", "f.json"); }),
      "f.json: unknown key 'probes.S1.nmae'");
  EXPECT_EQ(usage_error([&] {
              apply_config_json(c,
                                R"({"tokens": [{"name": "a", "role": "admin", "sha256": ")" + kSha +
                                    R"(", "token": "pf_x"}]})",
                                "f.json");
            }),
            "f.json: unknown key 'tokens[0].token'");
}

TEST(StoreConfig, BadJsonNamesTheFileAndPosition) {
  TempDir dir;
  const fs::path file = dir.path() / "pf.json";
  std::ofstream(file) << "{\n  \"listen\": \"127.0.0.1:8080\",\n  oops\n}\n";
  const std::string message = usage_error([&] { parse({"--config", file.string()}); });
  EXPECT_EQ(message.rfind(file.string() + ": invalid JSON: ", 0), 0u) << message;
  EXPECT_NE(message.find("line 3"), std::string::npos) << message;
}

TEST(StoreConfig, ValidatesTypesRolesHashesAndPorts) {
  Config c;
  auto error = [&](const std::string& text) {
    return usage_error([&] { apply_config_json(c, text, "f.json"); });
  };
  EXPECT_EQ(error(R"({"tokens": [{"name": "a", "role": "root", "sha256": ")" + kSha + "\"}]}"),
            "f.json: 'tokens[0].role': unknown role 'root'");
  EXPECT_EQ(error(R"({"tokens": [{"name": "a", "role": "admin", "sha256": "pf_abc"}]})"),
            "f.json: 'tokens[0].sha256' must be 64 hex digits (the SHA-256 of the token, not "
            "the token)");
  EXPECT_EQ(error(R"({"tokens": [{"name": "a", "role": "admin"}]})"),
            "f.json: 'tokens[0].sha256' is missing");
  EXPECT_NE(error(R"({"tokens": [{"name": "a", "role": "admin", "sha256": ")" + kSha +
                  R"("}, {"name": "a", "role": "viewer", "sha256": ")" + kSha + "\"}]}")
                .find("used twice"),
            std::string::npos);
  EXPECT_NE(error(R"({"listen": "0.0.0.0:65536"})").find("port 65536 is out of range"),
            std::string::npos);
  EXPECT_EQ(error(R"({"listen": 8080})"), "f.json: 'listen' must be a string");
  EXPECT_EQ(error(R"({"log_json": "yes"})"), "f.json: 'log_json' must be true or false");
  EXPECT_EQ(error(R"({"poll_interval_ms": -5})"),
            "f.json: 'poll_interval_ms' must be a whole number from 10 to 3600000");
  EXPECT_EQ(error(R"({"allowed_hosts": "a"})"),
            "f.json: 'allowed_hosts' must be an array of strings");
  EXPECT_EQ(error(R"([1, 2])"), "f.json: the config file must be a JSON object");
  EXPECT_EQ(error(R"({"session_jobs": "queue"})"), "f.json: 'session_jobs' is 'queue'");
  EXPECT_FALSE(c.refuse_jobs_during_session);
  apply_config_json(c, R"({"session_jobs": "refuse"})", "f.json");
  EXPECT_TRUE(c.refuse_jobs_during_session);
}

TEST(StoreConfig, UsageTextNamesEveryFlag) {
  const std::string text = usage_text();
  for (const char* flag : {"--listen", "--data-dir", "--config", "--simulate", "--time-scale",
                           "--log-json", "--log-level", "--help"})
    EXPECT_NE(text.find(flag), std::string::npos) << flag;
}

}  // namespace
}  // namespace probefarm::server
