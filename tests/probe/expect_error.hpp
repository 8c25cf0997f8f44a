#pragma once
// The Error a call throws, for tests that check its category, message or hint; a test
// failure (and a placeholder Error) when it throws none.
#include <gtest/gtest.h>

#include <string_view>

#include "probe/error.hpp"

namespace probefarm::probe::test {

template <typename F>
Error expect_error(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no Error thrown";
  return Error(ErrorCategory::internal, "none");
}

inline bool contains(std::string_view s, std::string_view part) {
  return s.find(part) != std::string_view::npos;
}

}  // namespace probefarm::probe::test
