#pragma once
// `probefarm console --probe SERIAL` (remote mode): the daemon's OpenOCD-style console of one
// probe over the WebSocket /api/v1/probes/{serial}/console, one command per line of stdin.
#include "cli/options.hpp"

namespace probefarm::cli {

// Returns 0 at the end of input or after `exit`; with stdin not a terminal (a script), the
// exit code of the first command that failed (2 usage, 5 probe I/O, ...). Failures to reach
// the server or a refused session throw Error.
int run_console(const Options& options);

}  // namespace probefarm::cli
