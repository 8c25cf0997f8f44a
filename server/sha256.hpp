#pragma once
// Incremental SHA-256 (FIPS 180-4): image uploads are hashed while they stream to disk, and
// API tokens are stored only as their hash (auth.hpp).
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace probefarm::server {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, std::size_t size);
  // Finishes the hash; the object is reset afterwards and may hash a new message.
  std::string hex_digest();

 private:
  void compress(const std::uint8_t* block);
  void reset();

  std::array<std::uint32_t, 8> state_{};
  std::array<std::uint8_t, 64> buffer_{};
  std::size_t buffered_ = 0;
  std::uint64_t total_bytes_ = 0;
};

}  // namespace probefarm::server
