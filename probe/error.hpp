#pragma once
// The one error type of the stack (DESIGN.md "Conventions"): a category that the CLI maps
// to an exit code and the API to an HTTP status, a message that says what happened, and a
// hint that says what to do next. It lives in the lowest layer so that every folder above
// (protocol/, flash/, server/, cli/) throws and catches the same type.
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace probefarm {

enum class ErrorCategory {
  usage,                  // the caller asked for something malformed or contradictory
  image,                  // a firmware image is malformed or does not fit the target
  probe_not_found,        // no probe, or an ambiguous serial
  probe_io,               // USB transfer failed, probe unplugged, protocol violation
  target_not_responding,  // the probe works, the target does not answer
  protection,             // read/write protection blocks the operation
  verify,                 // what is in flash is not what was written
  timeout,                // a bounded wait on hardware ran out
  busy,                   // the probe or target is in use by someone else
  internal,               // a bug in probefarm
};

// "usage", "image", ... : the stable names used in JSON output and logs.
constexpr std::string_view category_name(ErrorCategory c) {
  switch (c) {
    case ErrorCategory::usage:
      return "usage";
    case ErrorCategory::image:
      return "image";
    case ErrorCategory::probe_not_found:
      return "probe_not_found";
    case ErrorCategory::probe_io:
      return "probe_io";
    case ErrorCategory::target_not_responding:
      return "target_not_responding";
    case ErrorCategory::protection:
      return "protection";
    case ErrorCategory::verify:
      return "verify";
    case ErrorCategory::timeout:
      return "timeout";
    case ErrorCategory::busy:
      return "busy";
    case ErrorCategory::internal:
      return "internal";
  }
  return "internal";
}

// The category a stable name (category_name) stands for; nullopt for any other name.
constexpr std::optional<ErrorCategory> category_from_name(std::string_view name) {
  for (auto c : {ErrorCategory::usage, ErrorCategory::image, ErrorCategory::probe_not_found,
                 ErrorCategory::probe_io, ErrorCategory::target_not_responding,
                 ErrorCategory::protection, ErrorCategory::verify, ErrorCategory::timeout,
                 ErrorCategory::busy, ErrorCategory::internal})
    if (category_name(c) == name) return c;
  return std::nullopt;
}

// The process exit status of a failure in this category, for probefarm and probefarmd
// (README "Exit codes").
constexpr int exit_code(ErrorCategory c) {
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

class Error : public std::runtime_error {
 public:
  Error(ErrorCategory category, std::string message, std::string hint = {})
      : std::runtime_error(std::move(message)), category_(category), hint_(std::move(hint)) {}

  ErrorCategory category() const { return category_; }
  std::string_view message() const { return what(); }
  // What the user can do about it; empty when there is nothing to suggest.
  const std::string& hint() const { return hint_; }

 private:
  ErrorCategory category_;
  std::string hint_;
};

}  // namespace probefarm
