#pragma once
// `probefarm gdb --probe SERIAL [--port N]` (remote mode): a local TCP port for GDB, each
// client tunnelled through the WebSocket /api/v1/probes/{serial}/gdb to the daemon's GDB
// server on that probe. GDB connects with `target extended-remote :N`.
#include "cli/options.hpp"

namespace probefarm::cli {

// Serves clients one after another until interrupted (SIGINT/SIGTERM: returns 0). A refused
// session (unknown probe, probe held or offline) or a port that cannot be opened throws
// Error.
int run_gdb_tunnel(const Options& options);

}  // namespace probefarm::cli
