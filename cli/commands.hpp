#pragma once
// The commands of `probefarm` in local mode: each opens the probe it is told to (or the only
// one), runs the stack and prints a human summary, or one JSON object with --json.
#include "cli/options.hpp"

namespace probefarm::cli {

// Runs the command; returns the exit status for success (0). Failures throw Error.
int run_command(const Options& options);

}  // namespace probefarm::cli
