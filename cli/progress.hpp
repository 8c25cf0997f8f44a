#pragma once
// The progress bar of long operations on a terminal: phase, bytes, rate. Off the terminal
// (CI logs, --json) it prints nothing, so logs stay clean.
#include <chrono>
#include <cstdio>
#include <string>

#include "flash/programmer.hpp"

namespace probefarm::cli {

class ProgressBar {
 public:
  // Draws on `out` only if `enabled` and `out` is a terminal.
  ProgressBar(bool enabled, std::FILE* out = stderr);
  ~ProgressBar();

  void update(const flash::Progress& progress);
  // Ends the current line (call before printing anything else).
  void finish();

 private:
  void draw(bool force);

  bool enabled_;
  std::FILE* out_;
  std::string phase_;
  std::uint64_t done_ = 0, total_ = 0;
  std::chrono::steady_clock::time_point phase_start_, last_draw_;
  bool drawn_ = false;
  std::uint64_t drawn_done_ = 0;  // what the last drawn bar showed
};

// "1.5 MiB", "512 B".
std::string format_bytes(std::uint64_t bytes);

}  // namespace probefarm::cli
