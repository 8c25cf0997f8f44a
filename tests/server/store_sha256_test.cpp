#include <gtest/gtest.h>

#include <string>

#include "server/auth.hpp"
#include "server/sha256.hpp"

namespace probefarm::server {
namespace {

// FIPS 180-4 examples (NIST CSRC "Cryptographic Standards and Guidelines: Examples with
// Intermediate Values", SHA-256) and the long-message vector of FIPS 180-2 appendix B.3.
TEST(StoreSha256, EmptyMessage) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(StoreSha256, OneBlockMessageAbc) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(StoreSha256, TwoBlockMessage448Bits) {
  // 56 bytes: the length no longer fits after the padding bit, so padding spills into a
  // second block.
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(StoreSha256, Message896Bits) {
  EXPECT_EQ(sha256_hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnop"
                       "jklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"),
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

TEST(StoreSha256, OneMillionAsFedInOddChunks) {
  const std::string million(1'000'000, 'a');
  EXPECT_EQ(sha256_hex(million),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // The same message through update() in chunks that never align with the 64-byte block.
  Sha256 h;
  std::size_t at = 0, step = 1;
  while (at < million.size()) {
    const std::size_t n = std::min(step, million.size() - at);
    h.update(million.data() + at, n);
    at += n;
    step = step * 7 % 997 + 1;
  }
  EXPECT_EQ(h.hex_digest(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(StoreSha256, IncrementalMatchesOneShotAroundBlockBoundaries) {
  std::string message;
  for (int i = 0; i < 200; ++i)
    message += static_cast<char>('A' + i % 53);
  for (std::size_t len : {55u, 56u, 57u, 63u, 64u, 65u, 119u, 120u, 128u, 200u}) {
    const std::string m = message.substr(0, len);
    for (std::size_t split = 0; split <= len; split += 13) {
      Sha256 h;
      h.update(m.data(), split);
      h.update(m.data() + split, len - split);
      EXPECT_EQ(h.hex_digest(), sha256_hex(m)) << "len " << len << " split " << split;
    }
  }
}

TEST(StoreSha256, DigestResetsForTheNextMessage) {
  Sha256 h;
  h.update("xyz", 3);
  (void)h.hex_digest();
  h.update("abc", 3);
  EXPECT_EQ(h.hex_digest(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace probefarm::server
