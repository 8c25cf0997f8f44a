#pragma once
// Helpers for the image tests: bytes from text, a minimal ELF32 writer, and an assertion
// that a call throws probefarm::Error of a given category with a given text in its message.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "probe/error.hpp"

namespace probefarm::flash::testing {

inline std::vector<std::uint8_t> bytes_of(std::string_view text) {
  return {text.begin(), text.end()};
}

// Runs `f`, expects an Error of `category` whose message contains every one of `parts`, and
// a non-empty hint. Returns the message for further checks.
inline std::string expect_error(const std::function<void()>& f, ErrorCategory category,
                                std::initializer_list<std::string_view> parts) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(category_name(e.category()), category_name(category)) << e.what();
    for (std::string_view p : parts) {
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos)
          << "message \"" << e.what() << "\" lacks \"" << p << "\"";
    }
    EXPECT_FALSE(e.hint().empty()) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no probefarm::Error thrown";
  return {};
}

// A well-formed Intel HEX record: count, address, type, data, two's complement checksum.
inline std::string ihex_record(std::uint8_t type, std::uint16_t address,
                               std::vector<std::uint8_t> data) {
  std::vector<std::uint8_t> r = {static_cast<std::uint8_t>(data.size()),
                                 static_cast<std::uint8_t>(address >> 8),
                                 static_cast<std::uint8_t>(address), type};
  r.insert(r.end(), data.begin(), data.end());
  std::uint8_t sum = 0;
  for (std::uint8_t b : r)
    sum = static_cast<std::uint8_t>(sum + b);
  r.push_back(static_cast<std::uint8_t>(-sum));
  std::string out = ":";
  char buf[3];
  for (std::uint8_t b : r) {
    std::snprintf(buf, sizeof buf, "%02X", b);
    out += buf;
  }
  return out + "\n";
}

struct ElfSegment {
  std::uint32_t type = 1;  // PT_LOAD
  std::uint32_t vaddr = 0;
  std::uint32_t paddr = 0;
  std::vector<std::uint8_t> data;
  std::uint32_t memsz = 0;  // 0: same as data.size()
};

// An ELF32 little-endian ARM executable: header, program headers, then the segment data.
struct ElfBuilder {
  std::uint8_t elf_class = 1;
  std::uint8_t data_encoding = 1;
  std::uint16_t type = 2;  // ET_EXEC
  std::uint16_t machine = 40;
  std::uint32_t entry = 0x08000045;
  std::vector<ElfSegment> segments;

  std::vector<std::uint8_t> build() const {
    std::vector<std::uint8_t> out(52 + 32 * segments.size());
    auto put16 = [&](std::size_t at, std::uint16_t v) {
      out[at] = static_cast<std::uint8_t>(v);
      out[at + 1] = static_cast<std::uint8_t>(v >> 8);
    };
    auto put32 = [&](std::size_t at, std::uint32_t v) {
      for (int i = 0; i < 4; ++i)
        out[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
    };
    std::memcpy(out.data(),
                "\x7f"
                "ELF",
                4);
    out[4] = elf_class;
    out[5] = data_encoding;
    out[6] = 1;  // EV_CURRENT
    put16(16, type);
    put16(18, machine);
    put32(20, 1);
    put32(24, entry);
    put32(28, 52);  // e_phoff
    put16(40, 52);  // e_ehsize
    put16(42, 32);  // e_phentsize
    put16(44, static_cast<std::uint16_t>(segments.size()));
    for (std::size_t i = 0; i < segments.size(); ++i) {
      const ElfSegment& s = segments[i];
      const std::size_t ph = 52 + 32 * i;
      put32(ph, s.type);
      put32(ph + 4, static_cast<std::uint32_t>(out.size()));
      put32(ph + 8, s.vaddr);
      put32(ph + 12, s.paddr);
      put32(ph + 16, static_cast<std::uint32_t>(s.data.size()));
      put32(ph + 20, s.memsz ? s.memsz : static_cast<std::uint32_t>(s.data.size()));
      out.insert(out.end(), s.data.begin(), s.data.end());
    }
    return out;
  }
};

}  // namespace probefarm::flash::testing
