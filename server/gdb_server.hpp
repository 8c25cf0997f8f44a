#pragma once
// A GDB remote-serial-protocol server on one probe (GDB manual, "Remote Protocol"): what
// gdb-multiarch and arm-none-eabi-gdb need to load, break, step, watch and run a Cortex-M
// target. Every probe access runs through the ProbeSession, on the probe actor's thread;
// the byte stream comes from a GdbChannel (a TCP socket now, a WebSocket later).
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "flash/chip.hpp"

namespace probefarm::server {

class ProbeSession;
struct ProbeConnection;

// One client's byte stream. Implementations need not be thread-safe: serve_gdb calls them
// from one thread.
class GdbChannel {
 public:
  virtual ~GdbChannel() = default;
  // The bytes that arrived within `timeout`: "" when none did, nullopt once the client is
  // gone.
  virtual std::optional<std::string> read(std::chrono::milliseconds timeout) = 0;
  // false once the client is gone.
  virtual bool write(std::string_view bytes) = 0;
};

struct GdbOptions {
  // No packet from the client for this long while the core is halted ends the session.
  std::chrono::milliseconds idle = std::chrono::minutes(10);
  // How often a running core is checked for a halt.
  std::chrono::milliseconds poll = std::chrono::milliseconds(15);
  // Runs a `monitor` command line and returns its output (the console, console.hpp).
  // Called outside any ProbeSession::run: it makes its own calls. Unset: only the built-in
  // "reset [run|halt|init]", "halt", "resume" and "help".
  std::function<std::string(const std::string& line)> monitor;
  // Polled between packets: true ends the session (daemon shutdown).
  std::function<bool()> stopping;
};

// What a session did, for its audit row.
struct GdbSummary {
  double seconds = 0;
  std::uint64_t bytes_loaded = 0;  // flash bytes programmed through vFlashDone
  unsigned breakpoints_hit = 0, watchpoints_hit = 0;
  std::string chip;        // as detected when the session began; "" if it never attached
  std::string end_reason;  // "detached", "client closed the connection", "idle for 600 s", ...
  bool failed = false;     // ended by an error (probe gone, target lost) rather than the client
  std::string last_error;  // the last error a packet got as "E01" (a failed load, ...), if any
};

// Serves the client until it detaches or leaves, the session ends, or it is idle for too
// long. Halts the core when it begins (GDB expects a stopped target after attaching).
// Never throws; does not close the session.
GdbSummary serve_gdb(GdbChannel& channel, ProbeSession& session, const GdbOptions& options);

// The XML documents the server gives GDB (exposed for tests): the target description
// ("Target Descriptions": org.gnu.gdb.arm.m-profile, plus org.gnu.gdb.arm.vfp when
// `fpu`), and the memory map ("Memory Map Format") of a chip.
std::string gdb_target_xml(bool fpu);
std::string gdb_memory_map_xml(const flash::ChipInfo& chip);

}  // namespace probefarm::server
