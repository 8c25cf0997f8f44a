// probefarm: the command line. Maps every failure to an exit code by its category (README
// "Exit codes") and prints what happened and what to do next.
#include <cstdio>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "cli/simulate.hpp"
#include "probe/error.hpp"

namespace {

using probefarm::ErrorCategory;

int exit_code(ErrorCategory c) {
  switch (c) {
    case ErrorCategory::usage:
      return 2;
    case ErrorCategory::image:
      return 3;
    case ErrorCategory::probe_not_found:
      return 4;
    case ErrorCategory::probe_io:
      return 5;
    case ErrorCategory::target_not_responding:
      return 6;
    case ErrorCategory::protection:
      return 7;
    case ErrorCategory::verify:
      return 8;
    case ErrorCategory::timeout:
      return 9;
    case ErrorCategory::busy:
      return 10;
    case ErrorCategory::internal:
      return 70;
  }
  return 70;
}

void report(const probefarm::Error& e, bool json) {
  if (json) {
    nlohmann::json j = {{"ok", false},
                        {"error",
                         {{"category", probefarm::category_name(e.category())},
                          {"message", std::string(e.message())},
                          {"hint", e.hint()}}}};
    std::cout << j.dump(2) << std::endl;
  }
  std::fprintf(stderr, "probefarm: error: %s\n", e.what());
  if (!e.hint().empty()) std::fprintf(stderr, "hint: %s\n", e.hint().c_str());
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  bool json = false;
  for (const auto& a : args)
    if (a == "--json") json = true;
  try {
    auto options = probefarm::cli::parse_options(args);
    if (options.command == probefarm::cli::Command::help) {
      std::fputs(probefarm::cli::usage_text(), stdout);
      return 0;
    }
    if (!options.simulate.empty()) {
      std::vector<std::string> rest;
      for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--simulate") {
          ++i;
          continue;
        }
        rest.push_back(args[i]);
      }
      return probefarm::cli::run_simulated(options.simulate, rest);
    }
    return probefarm::cli::run_command(options);
  } catch (const probefarm::Error& e) {
    report(e, json);
    return exit_code(e.category());
  } catch (const std::exception& e) {
    report(probefarm::Error(ErrorCategory::internal, std::string("internal error: ") + e.what(),
                            "please report this as a bug"),
           json);
    return 70;
  }
}
