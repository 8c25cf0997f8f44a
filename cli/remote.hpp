#pragma once
// Remote mode of `probefarm` (--server URL): the commands run as jobs on a probefarmd.
#include "cli/options.hpp"

namespace probefarm::cli {

// Returns the exit status: 0, the failed job's category code, or 11 for a job cancelled or
// interrupted on the server. Failures to talk to the server throw Error.
int run_remote(const Options& options);

}  // namespace probefarm::cli
