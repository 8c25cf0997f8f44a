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
#include "probe/error.hpp"
#include "probe/simulated_bus.hpp"

namespace {

using probefarm::ErrorCategory;

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
      return probefarm::probe::run_simulated(options.simulate, rest);
    }
    return probefarm::cli::run_command(options);
  } catch (const probefarm::Error& e) {
    report(e, json);
    return probefarm::exit_code(e.category());
  } catch (const std::exception& e) {
    report(probefarm::Error(ErrorCategory::internal, std::string("internal error: ") + e.what(),
                            "please report this as a bug"),
           json);
    return 70;
  }
}
