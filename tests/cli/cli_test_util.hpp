#pragma once
// Running `probefarm` against a simulated board, for the end-to-end tests.
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/sim_process.hpp"

namespace probefarm::cli::test {

using probefarm::test::ChildResult;
using probefarm::test::SimProcess;

inline ChildResult probefarm(std::vector<std::string> args) {
  args.insert(args.begin(), PROBEFARM_CLI_EXE);
  return probefarm::test::run_capture(args);
}

// The JSON document `probefarm --json …` printed; fails the test if there is none.
inline nlohmann::json json_of(const ChildResult& r) {
  try {
    return nlohmann::json::parse(r.out);
  } catch (const std::exception&) {
    ADD_FAILURE() << "no JSON on stdout; stdout:\n" << r.out << "\nstderr:\n" << r.err;
    return nlohmann::json::object();
  }
}

inline std::vector<std::uint8_t> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

inline std::string firmware(const std::string& chip, const std::string& ext) {
  if (ext == "srec") return std::string(PROBEFARM_SREC_DIR) + "/demo_" + chip + ".srec";
  return std::string(PROBEFARM_FIRMWARE_DIR) + "/demo_" + chip + "." + ext;
}

inline std::uint32_t le32(const std::vector<std::uint8_t>& b, std::size_t at) {
  return b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (std::uint32_t{b[at + 3]} << 24);
}

// What a failed run said, for assertion messages.
inline std::string said(const ChildResult& r) {
  return "exit " + std::to_string(r.status) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

}  // namespace probefarm::cli::test
