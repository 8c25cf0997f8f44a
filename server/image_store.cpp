#include "server/image_store.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <system_error>

#include "probe/error.hpp"
#include "server/database.hpp"
#include "server/sha256.hpp"

namespace probefarm::server {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kFormatNames[] = {"elf", "ihex", "srec", "bin"};
constexpr flash::ImageFormat kFormats[] = {flash::ImageFormat::elf, flash::ImageFormat::ihex,
                                           flash::ImageFormat::srec, flash::ImageFormat::bin};

std::string_view format_key(flash::ImageFormat f) {
  for (std::size_t i = 0; i < std::size(kFormats); ++i)
    if (kFormats[i] == f) return kFormatNames[i];
  return "bin";
}

std::optional<flash::ImageFormat> parse_format(std::string_view name) {
  for (std::size_t i = 0; i < std::size(kFormats); ++i)
    if (kFormatNames[i] == name) return kFormats[i];
  return std::nullopt;
}

bool is_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  });
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool is_sha256(std::string_view s) {
  return s.size() == 64 && is_hex(s);
}

// Removes the upload's temporary file however commit() ends.
struct RemoveOnExit {
  fs::path path;
  ~RemoveOnExit() {
    std::error_code ec;
    fs::remove(path, ec);
  }
};

// Reads the whole file once, hashing it on the way: the bytes are needed for parsing, the
// hash for the name, and a 64 MiB upload should not be read twice.
std::vector<std::uint8_t> read_hashed(const fs::path& path, std::string& sha256,
                                      ErrorCategory missing) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw Error(missing, "image file " + path.string() + " cannot be opened",
                "upload the image again");
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  std::vector<std::uint8_t> bytes;
  if (!ec) bytes.reserve(size);
  Sha256 hash;
  std::uint8_t chunk[64 * 1024];
  while (in) {
    in.read(reinterpret_cast<char*>(chunk), sizeof chunk);
    const auto got = static_cast<std::size_t>(in.gcount());
    if (got == 0) break;
    hash.update(chunk, got);
    bytes.insert(bytes.end(), chunk, chunk + got);
  }
  if (in.bad())
    throw Error(missing, "reading image file " + path.string() + " failed",
                "check the data directory's disk");
  sha256 = hash.hex_digest();
  return bytes;
}

// A rename is only durable once the file's data and the directory entry are on disk.
void sync_path(const fs::path& path, bool directory) {
  const int fd = ::open(path.c_str(), (directory ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

ImageStore::ImageStore(const fs::path& dir, Database& db) : dir_(dir), db_(db) {
  std::error_code ec;
  fs::create_directories(dir_ / "tmp", ec);
  if (ec)
    throw Error(ErrorCategory::internal,
                "cannot create the image store " + (dir_ / "tmp").string() + ": " + ec.message(),
                "check that the data directory is writable");
  // Uploads that were in flight when the daemon stopped will never be committed.
  for (const auto& entry : fs::directory_iterator(dir_ / "tmp", ec))
    fs::remove(entry.path(), ec);
}

fs::path ImageStore::temp_path() {
  std::uint8_t random[12];
  if (::getrandom(random, sizeof random, 0) != static_cast<ssize_t>(sizeof random))
    throw Error(ErrorCategory::internal, "getrandom failed for an upload file name",
                "check the system's entropy source");
  char name[40] = "upload-";
  for (std::size_t i = 0; i < sizeof random; ++i)
    std::snprintf(name + 7 + 2 * i, 3, "%02x", random[i]);
  return dir_ / "tmp" / name;
}

fs::path ImageStore::path_of(const std::string& sha256) const {
  return dir_ / lower(sha256);
}

ImageMeta ImageStore::commit(const fs::path& temp, const UploadParams& params,
                             const std::string& uploaded_by) {
  RemoveOnExit cleanup{temp};
  const std::string name = params.name.empty() ? "image" : params.name;

  std::optional<flash::ImageFormat> format;
  if (!params.format.empty()) {
    format = parse_format(params.format);
    if (!format)
      throw Error(ErrorCategory::usage,
                  "unknown image format '" + params.format + "' (formats: elf, ihex, srec, bin)",
                  "formats: elf, ihex, srec, bin (or leave it out to detect the format)");
  }

  std::string sha256;
  const std::vector<std::uint8_t> bytes = read_hashed(temp, sha256, ErrorCategory::internal);
  if (!format) format = flash::detect_format(bytes, name);
  if (*format == flash::ImageFormat::bin && !params.bin_address)
    throw Error(ErrorCategory::usage,
                "image '" + name + "': a raw binary needs an address (where its first byte goes)",
                "give address=0x08000000 (or wherever the image starts)");
  if (*format != flash::ImageFormat::bin && params.bin_address)
    throw Error(ErrorCategory::usage,
                "image '" + name + "': an address applies to raw binaries only; this is " +
                    std::string(flash::format_name(*format)) + ", which carries its own addresses",
                "drop the address, or give format=bin to store the file as raw bytes");
  // The parser's Error(image) names the line, record or program header at fault.
  const flash::Image image = flash::load_image(bytes, name, format, params.bin_address);

  ImageMeta meta;
  meta.sha256 = sha256;
  meta.name = name;
  meta.format = std::string(format_key(*format));
  meta.size = bytes.size();
  for (const flash::Segment& s : image.segments) {
    meta.segments.push_back({s.address, static_cast<std::uint32_t>(s.data.size())});
    meta.data_bytes += s.data.size();
  }
  meta.entry = image.entry;
  meta.bin_address = params.bin_address;
  meta.uploaded_by = uploaded_by;
  meta.created_at = now_ms();

  const fs::path target = path_of(sha256);
  std::error_code ec;
  if (!fs::exists(target, ec)) {
    sync_path(temp, false);
    fs::rename(temp, target, ec);
    if (ec)
      throw Error(ErrorCategory::internal,
                  "cannot store image " + target.string() + ": " + ec.message(),
                  "check that the data directory is writable and has free space");
    sync_path(dir_, true);
  }
  // Same bytes already stored: put_image keeps the first row (name, uploader, time).
  return db_.put_image(meta);
}

ImageMeta ImageStore::add(std::span<const std::uint8_t> bytes, const UploadParams& params,
                          const std::string& uploaded_by) {
  const fs::path temp = temp_path();
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      std::error_code ec;
      fs::remove(temp, ec);
      throw Error(ErrorCategory::internal, "cannot write " + temp.string(),
                  "check that the data directory is writable and has free space");
    }
  }
  return commit(temp, params, uploaded_by);
}

std::optional<ImageMeta> ImageStore::find(const std::string& ref) {
  if (ref.empty()) return std::nullopt;
  if (is_sha256(ref)) {
    if (auto m = db_.get_image(lower(ref))) return m;
  }
  const std::vector<ImageMeta> all = db_.list_images();  // newest first
  std::vector<const ImageMeta*> by_prefix;
  if (ref.size() >= 8 && is_hex(ref)) {
    const std::string prefix = lower(ref);
    for (const ImageMeta& m : all)
      if (m.sha256.compare(0, prefix.size(), prefix) == 0) by_prefix.push_back(&m);
  }
  const ImageMeta* by_name = nullptr;
  for (const ImageMeta& m : all)
    if (m.name == ref) {
      by_name = &m;
      break;
    }
  if (by_prefix.size() > 1)
    throw Error(ErrorCategory::usage,
                "image '" + ref + "' is ambiguous: " + std::to_string(by_prefix.size()) +
                    " images' sha256 start with it",
                "give more digits of the sha256");
  if (by_prefix.size() == 1 && by_name && by_name->sha256 != by_prefix[0]->sha256)
    throw Error(ErrorCategory::usage,
                "image '" + ref + "' is ambiguous: it is a sha256 prefix of " +
                    by_prefix[0]->sha256 + " and the name of " + by_name->sha256,
                "give the full sha256");
  if (by_prefix.size() == 1) return *by_prefix[0];
  if (by_name) return *by_name;
  return std::nullopt;
}

std::vector<ImageMeta> ImageStore::list() {
  return db_.list_images();
}

flash::Image ImageStore::load(const ImageMeta& meta) {
  const fs::path path = path_of(meta.sha256);
  std::string sha256;
  const std::vector<std::uint8_t> bytes = read_hashed(path, sha256, ErrorCategory::image);
  if (sha256 != meta.sha256)
    throw Error(ErrorCategory::image,
                "stored image " + path.string() + " has changed on disk (sha256 " + sha256 + ")",
                "delete the image and upload it again");
  std::optional<flash::ImageFormat> format = parse_format(meta.format);
  return flash::load_image(bytes, meta.name, format, meta.bin_address);
}

bool ImageStore::remove(const std::string& sha256) {
  // Only a well-formed sha256 names a file here: anything else could walk out of dir_.
  if (!is_sha256(sha256)) return false;
  const bool had_row = db_.delete_image(lower(sha256));
  std::error_code ec;
  const bool had_file = fs::remove(path_of(sha256), ec);
  return had_row || had_file;
}

}  // namespace probefarm::server
