#pragma once
// Remote mode of `probefarm` (--server URL): the commands run as jobs on a probefarmd.
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "cli/options.hpp"
#include "probe/error.hpp"

namespace probefarm::cli {

// Returns the exit status: 0, the failed job's category code, or 11 for a job cancelled or
// interrupted on the server. Failures to talk to the server throw Error.
int run_remote(const Options& options);

// Percent-encodes everything but RFC 3986 unreserved characters (a path segment or a query
// value).
std::string url_encode(const std::string& s);
// An API error object {"category", "message", "hint"} as an Error.
Error error_from_json(const nlohmann::json& error);

}  // namespace probefarm::cli
