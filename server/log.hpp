#pragma once
// The daemon's log: one line per event on stderr, as text
// ("2026-11-21T12:50:03.120Z info job.finished id=17 state=succeeded probe=PFSIM03")
// or, with --log-json, as one JSON object per line ({"ts", "level", "event", …fields}).
#include <nlohmann/json_fwd.hpp>
#include <string_view>

namespace probefarm::server {

enum class LogLevel { debug, info, warn, error };

void set_log_format(bool json);
void set_log_level(LogLevel level);
// Error(usage) for an unknown name.
LogLevel parse_log_level(std::string_view name);

// `fields` must be a JSON object (or null). Thread-safe; one write(2) per line.
void log_event(LogLevel level, std::string_view event, const nlohmann::json& fields);

}  // namespace probefarm::server
