#include "server/log.hpp"

#include <unistd.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <string>

#include "probe/error.hpp"
#include "server/model.hpp"

namespace probefarm::server {

namespace {
std::atomic<bool> g_json{false};
std::atomic<int> g_level{static_cast<int>(LogLevel::info)};
constexpr std::string_view kNames[] = {"debug", "info", "warn", "error"};
}  // namespace

void set_log_format(bool json) {
  g_json = json;
}
void set_log_level(LogLevel level) {
  g_level = static_cast<int>(level);
}

LogLevel parse_log_level(std::string_view name) {
  for (int i = 0; i < 4; ++i)
    if (kNames[i] == name) return static_cast<LogLevel>(i);
  throw Error(ErrorCategory::usage, "unknown log level '" + std::string(name) + "'",
              "use debug, info, warn or error");
}

void log_event(LogLevel level, std::string_view event, const nlohmann::json& fields) {
  if (static_cast<int>(level) < g_level) return;
  const std::int64_t ts = now_ms();
  std::string line;
  if (g_json) {
    nlohmann::json j = {
        {"ts", iso_time(ts)}, {"level", kNames[static_cast<int>(level)]}, {"event", event}};
    if (fields.is_object()) j.update(fields);
    line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } else {
    line = iso_time(ts) + " " + std::string(kNames[static_cast<int>(level)]) + " " +
           std::string(event);
    if (fields.is_object())
      for (const auto& [key, value] : fields.items()) {
        std::string v = value.is_string()
                            ? value.get<std::string>()
                            : value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        if (v.find(' ') != std::string::npos || v.empty())
          v = nlohmann::json(v).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        line += " " + key + "=" + v;
      }
  }
  line += '\n';
  // One write per line so lines from different threads never interleave.
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace probefarm::server
