#pragma once
// --simulate CHIP:PROBE[,…] (probefarm and probefarmd): runs this same program against
// probefarm-sim boards, through the same libusb code path as real probes. The program starts
// probefarm-sim on a private socket, then runs itself again with the simulator's stand-in
// libusb-1.0.so.0 on LD_LIBRARY_PATH (and PROBEFARM_SIM_SOCKET set), and stops the simulator
// when that run ends. Board flash is kept between runs in $XDG_STATE_HOME/probefarm/simulate
// (or ~/.local/state/…), like a board on the desk.
#include <optional>
#include <string>
#include <vector>

namespace probefarm::probe {

struct SimulationOptions {
  // The simulator's pacing: 1 follows the wall clock (a person watching), 0 runs as fast as
  // the host allows; unset: the simulator's default.
  std::optional<double> time_scale;
  // Forwarded to the child's stderr with this prefix when the simulator fails to start.
  std::string program = "probefarm";
};

// Returns the exit status of the simulated run. `args` are the command-line arguments
// without argv[0] and without --simulate. SIGINT/SIGTERM sent to this process are passed on
// to the child (so a daemon shuts down gracefully). Throws Error(usage) for a bad spec or a
// missing simulator.
int run_simulated(const std::string& spec, const std::vector<std::string>& args,
                  const SimulationOptions& options = {});

}  // namespace probefarm::probe
