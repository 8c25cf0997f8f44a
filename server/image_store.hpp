#pragma once
// The content-addressed firmware image store: DATA_DIR/images/<sha256> holds the bytes as
// uploaded, the database holds what they are (format, segments, name). The same bytes
// uploaded twice are stored once. Uploads are streamed by the HTTP layer into a temporary
// file under DATA_DIR/images/tmp and committed here: hashed, parsed with flash::load_image
// (so a malformed image is rejected with the line or address at fault before it is
// stored), then renamed into place.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "flash/image.hpp"
#include "server/model.hpp"

namespace probefarm::server {

class Database;

struct UploadParams {
  std::string name;                          // ?name=; "image" when empty
  std::string format;                        // ?format= elf|ihex|srec|bin; empty: detect
  std::optional<std::uint32_t> bin_address;  // ?address=; required for bin
};

class ImageStore {
 public:
  ImageStore(const std::filesystem::path& dir, Database& db);

  // A fresh path in the temporary directory for one upload (the caller streams into it).
  std::filesystem::path temp_path();
  // Validates and stores the file at `temp` (always removed). Throws Error(image) for a
  // malformed image (the parser's message: line, address, program header), Error(usage)
  // for bad parameters (unknown format, bin without address, address with ELF …).
  ImageMeta commit(const std::filesystem::path& temp, const UploadParams& params,
                   const std::string& uploaded_by);
  // The same for bytes in memory (a read job's backup).
  ImageMeta add(std::span<const std::uint8_t> bytes, const UploadParams& params,
                const std::string& uploaded_by);

  // By full sha256, unique sha256 prefix (at least 8 hex digits), or name (the newest
  // upload of that name). nullopt when nothing matches; Error(usage) when a prefix or name
  // is ambiguous.
  std::optional<ImageMeta> find(const std::string& ref);
  std::vector<ImageMeta> list();
  std::filesystem::path path_of(const std::string& sha256) const;
  // Parses the stored file again (jobs). Error(image) if it vanished or changed.
  flash::Image load(const ImageMeta& meta);
  // Removes file and row; false when unknown.
  bool remove(const std::string& sha256);

 private:
  std::filesystem::path dir_;
  Database& db_;
};

}  // namespace probefarm::server
