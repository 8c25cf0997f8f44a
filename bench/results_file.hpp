#pragma once
// bench/RESULTS.md is written by two programs: probefarm-bench (the engine against OpenOCD)
// and probefarmd-bench (the daemon). Each owns one section, delimited by
// "<!-- begin NAME -->" / "<!-- end NAME -->" lines, and rewrites only its own.
#include <string>

namespace probefarm::bench {

// Replaces section `name` of `path` with `text` (appends it when absent; probefarm-bench's
// unmarked text, from before the sections, is kept as is). Returns false if the file cannot
// be written.
bool write_section(const std::string& path, const std::string& name, const std::string& text);

// The file's section `name` with its markers, or "" when absent.
std::string read_section(const std::string& path, const std::string& name);

}  // namespace probefarm::bench
