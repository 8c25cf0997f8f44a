#include "probe/bytes.hpp"

#include <cstdio>

namespace probefarm::probe {

std::string hex32(std::uint32_t v) {
  char buf[11];  // "0x" + 8 digits + NUL
  std::snprintf(buf, sizeof buf, "0x%08X", v);
  return buf;
}

}  // namespace probefarm::probe
