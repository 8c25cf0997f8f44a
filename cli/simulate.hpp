#pragma once
// --simulate CHIP:PROBE[,…]: runs this same command against probefarm-sim boards, through
// the same libusb code path as real probes. probefarm starts probefarm-sim on a private
// socket, then runs itself again with the simulator's stand-in libusb-1.0.so.0 on
// LD_LIBRARY_PATH, and stops the simulator afterwards. Board flash is kept between runs in
// $XDG_STATE_HOME/probefarm/simulate (or ~/.local/state/…), like a board on the desk.
#include <string>
#include <vector>

namespace probefarm::cli {

// Returns the exit status of the simulated run. `args` are the command-line arguments
// without argv[0] and without --simulate. Throws Error(usage) for a bad spec or a missing
// simulator.
int run_simulated(const std::string& spec, const std::vector<std::string>& args);

}  // namespace probefarm::cli
