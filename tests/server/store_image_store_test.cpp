#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "flash/image_test_util.hpp"
#include "probe/error.hpp"
#include "server/auth.hpp"
#include "server/database.hpp"
#include "server/image_store.hpp"
#include "temp_dir.hpp"

namespace probefarm::server {
namespace {

using test::TempDir;

namespace fs = std::filesystem;
using flash::testing::bytes_of;
using flash::testing::expect_error;
using flash::testing::ihex_record;

// Two data records at 0x08000000 and 0x08000100, an entry point, EOF.
std::string small_hex(std::uint8_t fill = 0x11) {
  return ihex_record(4, 0, {0x08, 0x00}) +
         ihex_record(0, 0x0000, std::vector<std::uint8_t>(16, fill)) +
         ihex_record(0, 0x0100, {1, 2, 3, 4}) + ihex_record(5, 0, {0x08, 0x00, 0x01, 0x01}) +
         ihex_record(1, 0, {});
}

// An S-record file: S0 header, one S3 record at 0x08000000, S7 entry.
std::string small_srec() {
  auto record = [](int type, std::vector<std::uint8_t> body) {
    std::uint8_t sum = static_cast<std::uint8_t>(body.size() + 1);
    for (auto b : body)
      sum = static_cast<std::uint8_t>(sum + b);
    body.insert(body.begin(), static_cast<std::uint8_t>(body.size() + 1));
    body.push_back(static_cast<std::uint8_t>(~sum));
    std::string out = "S" + std::to_string(type);
    char buf[3];
    for (auto b : body) {
      std::snprintf(buf, sizeof buf, "%02X", b);
      out += buf;
    }
    return out + "\n";
  };
  return record(0, {0, 0, 'h', 'i'}) + record(3, {0x08, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef}) +
         record(7, {0x08, 0, 0, 0x41});
}

class StoreImageStore : public ::testing::Test {
 protected:
  StoreImageStore() : db_(dir_.path() / "probefarm.db"), store_(dir_.path() / "images", db_) {}

  // Streams `text` into a fresh temporary path, as the HTTP layer does, and commits it.
  ImageMeta upload(const std::string& text, UploadParams params, fs::path* temp_out = nullptr) {
    const fs::path temp = store_.temp_path();
    std::ofstream(temp, std::ios::binary) << text;
    if (temp_out) *temp_out = temp;
    return store_.commit(temp, params, "ci");
  }

  // Every regular file under images/ (tmp included).
  std::vector<fs::path> files() const {
    std::vector<fs::path> out;
    for (const auto& e : fs::recursive_directory_iterator(dir_.path() / "images"))
      if (e.is_regular_file()) out.push_back(e.path());
    return out;
  }

  TempDir dir_;
  Database db_;
  ImageStore store_;
};

TEST_F(StoreImageStore, CommitsIntelHexUnderItsSha256) {
  const std::string hex = small_hex();
  fs::path temp;
  const ImageMeta m = upload(hex, {"blinky.hex", "", {}}, &temp);
  EXPECT_EQ(m.sha256, sha256_hex(hex));
  EXPECT_EQ(m.name, "blinky.hex");
  EXPECT_EQ(m.format, "ihex");
  EXPECT_EQ(m.size, hex.size());
  EXPECT_EQ(m.data_bytes, 20u);
  ASSERT_EQ(m.segments.size(), 2u);
  EXPECT_EQ(m.segments[0].address, 0x08000000u);
  EXPECT_EQ(m.segments[0].size, 16u);
  EXPECT_EQ(m.segments[1].address, 0x08000100u);
  EXPECT_EQ(m.entry, 0x08000101u);
  EXPECT_EQ(m.uploaded_by, "ci");
  EXPECT_FALSE(fs::exists(temp));
  EXPECT_EQ(store_.path_of(m.sha256), dir_.path() / "images" / m.sha256);
  std::ifstream in(store_.path_of(m.sha256), std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), hex);
  ASSERT_TRUE(db_.get_image(m.sha256).has_value());
  EXPECT_EQ(db_.get_image(m.sha256)->segments.size(), 2u);
}

TEST_F(StoreImageStore, SameBytesAreStoredOnceUnderTheFirstName) {
  const ImageMeta first = upload(small_hex(), {"first.hex", "", {}});
  fs::path temp;
  const ImageMeta second = upload(small_hex(), {"second.hex", "ihex", {}}, &temp);
  EXPECT_EQ(second.sha256, first.sha256);
  EXPECT_EQ(second.name, "first.hex");
  EXPECT_EQ(second.created_at, first.created_at);
  EXPECT_FALSE(fs::exists(temp));
  EXPECT_EQ(files(), std::vector<fs::path>{store_.path_of(first.sha256)});
  EXPECT_EQ(store_.list().size(), 1u);
}

TEST_F(StoreImageStore, MalformedHexIsRejectedWithItsLineAndLeavesNothing) {
  std::string hex = small_hex();
  // Corrupt the checksum of line 3 (the second data record).
  const std::size_t line3 = hex.find('\n', hex.find('\n') + 1) + 1;
  const std::size_t end3 = hex.find('\n', line3);
  hex[end3 - 1] = hex[end3 - 1] == '0' ? '1' : '0';
  expect_error(
      [&] {
        upload(hex, {"bad.hex", "", {}});
      },
      ErrorCategory::image, {"bad.hex:3:", "checksum"});
  EXPECT_TRUE(files().empty());
  EXPECT_TRUE(store_.list().empty());
}

TEST_F(StoreImageStore, BinNeedsAnAddressAndOthersRefuseOne) {
  fs::path temp;
  expect_error(
      [&] {
        upload("\x01\x02\x03\x04", {"app.bin", "", {}}, &temp);
      },
      ErrorCategory::usage, {"app.bin", "needs an address"});
  EXPECT_FALSE(fs::exists(temp));
  expect_error(
      [&] {
        upload("\x01\x02\x03\x04", {"raw", "bin", {}});
      },
      ErrorCategory::usage, {"raw", "needs an address"});
  expect_error(
      [&] {
        upload(small_hex(), {"x.hex", "", 0x08000000});
      },
      ErrorCategory::usage, {"raw binaries only"});
  EXPECT_TRUE(files().empty());

  const ImageMeta m = upload(std::string("\x01\x02\x03\x04\x05", 5), {"app.bin", "", 0x08004000});
  EXPECT_EQ(m.format, "bin");
  EXPECT_EQ(m.bin_address, 0x08004000u);
  EXPECT_FALSE(m.entry.has_value());
  ASSERT_EQ(m.segments.size(), 1u);
  EXPECT_EQ(m.segments[0].address, 0x08004000u);
  EXPECT_EQ(m.segments[0].size, 5u);
  EXPECT_EQ(db_.get_image(m.sha256)->bin_address, 0x08004000u);
}

TEST_F(StoreImageStore, UnknownFormatNameListsTheValidOnes) {
  fs::path temp;
  const std::string message = expect_error(
      [&] {
        upload(small_hex(), {"x", "hex", {}}, &temp);
      },
      ErrorCategory::usage, {"unknown image format 'hex'", "elf, ihex, srec, bin"});
  EXPECT_FALSE(fs::exists(temp));
  try {
    upload(small_hex(), {"x", "intel", {}});
  } catch (const Error& e) {
    EXPECT_NE(e.hint().find("elf, ihex, srec, bin"), std::string::npos) << e.hint();
  }
}

TEST_F(StoreImageStore, ElfAndSrecAndInMemoryBytes) {
  flash::testing::ElfBuilder elf;
  elf.entry = 0x08000045;
  elf.segments.push_back({1, 0x08000000, 0x08000000, std::vector<std::uint8_t>(64, 0xA5), 0});
  const std::vector<std::uint8_t> elf_bytes = elf.build();
  const ImageMeta e = store_.add(elf_bytes, {"fw.elf", "", {}}, "backup");
  EXPECT_EQ(e.format, "elf");
  EXPECT_EQ(e.entry, 0x08000045u);
  EXPECT_EQ(e.data_bytes, 64u);
  EXPECT_EQ(e.uploaded_by, "backup");

  const ImageMeta s = upload(small_srec(), {"", "", {}});
  EXPECT_EQ(s.format, "srec");
  EXPECT_EQ(s.name, "image");
  EXPECT_EQ(s.entry, 0x08000041u);
  ASSERT_EQ(s.segments.size(), 1u);
  EXPECT_EQ(s.segments[0].size, 4u);

  // load() parses the stored file again.
  const flash::Image image = store_.load(s);
  ASSERT_EQ(image.segments.size(), 1u);
  EXPECT_EQ(image.segments[0].data, (std::vector<std::uint8_t>{0xde, 0xad, 0xbe, 0xef}));
  EXPECT_EQ(files().size(), 2u);
}

TEST_F(StoreImageStore, LoadDetectsAChangedOrMissingFile) {
  const ImageMeta m = upload(small_hex(), {"a.hex", "", {}});
  std::ofstream(store_.path_of(m.sha256), std::ios::binary) << small_hex(0x22);
  expect_error([&] { store_.load(m); }, ErrorCategory::image, {"changed"});
  fs::remove(store_.path_of(m.sha256));
  expect_error([&] { store_.load(m); }, ErrorCategory::image, {m.sha256});
}

TEST_F(StoreImageStore, FindsByShaPrefixAndNewestName) {
  const ImageMeta a = upload(small_hex(0x01), {"app.hex", "", {}});
  const ImageMeta b = upload(small_hex(0x02), {"app.hex", "", {}});
  const ImageMeta c = upload(small_hex(0x03), {"other.hex", "", {}});
  EXPECT_EQ(store_.find(a.sha256)->sha256, a.sha256);
  std::string upper = a.sha256;
  for (char& ch : upper)
    ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  EXPECT_EQ(store_.find(upper)->sha256, a.sha256);
  EXPECT_EQ(store_.find(c.sha256.substr(0, 8))->sha256, c.sha256);
  EXPECT_FALSE(store_.find(c.sha256.substr(0, 7)).has_value());  // too short for a prefix
  EXPECT_FALSE(store_.find("nothing").has_value());
  EXPECT_FALSE(store_.find("").has_value());
  // Same name twice: the newest upload. created_at may tie within a millisecond; the later
  // insert still wins.
  EXPECT_EQ(store_.find("app.hex")->sha256, b.sha256);
}

TEST_F(StoreImageStore, AmbiguousPrefixOrNameIsAnError) {
  // Two rows whose sha256 share 10 digits (metadata only: find() looks at the database).
  ImageMeta m;
  m.format = "ihex";
  m.name = "x";
  m.sha256 = "abcdef0123" + std::string(54, '1');
  db_.put_image(m);
  m.sha256 = "abcdef0123" + std::string(54, '2');
  db_.put_image(m);
  expect_error([&] { store_.find("abcdef0123"); }, ErrorCategory::usage,
               {"'abcdef0123' is ambiguous", "2 images"});
  EXPECT_EQ(store_.find("abcdef0123" + std::string(54, '2'))->sha256, m.sha256);

  // A name that is another image's sha256 prefix.
  const ImageMeta real = upload(small_hex(), {"real.hex", "", {}});
  const std::string prefix = real.sha256.substr(0, 8);
  m.sha256 = std::string(64, 'f');
  m.name = prefix;
  db_.put_image(m);
  expect_error([&] { store_.find(prefix); }, ErrorCategory::usage, {"ambiguous", real.sha256});
}

TEST_F(StoreImageStore, RemoveDeletesFileAndRow) {
  const ImageMeta m = upload(small_hex(), {"a.hex", "", {}});
  EXPECT_TRUE(store_.remove(m.sha256));
  EXPECT_FALSE(fs::exists(store_.path_of(m.sha256)));
  EXPECT_FALSE(db_.get_image(m.sha256).has_value());
  EXPECT_FALSE(store_.remove(m.sha256));
  EXPECT_FALSE(store_.remove("../probefarm.db"));
  EXPECT_TRUE(fs::exists(dir_.path() / "probefarm.db"));
}

TEST_F(StoreImageStore, TempPathsAreFreshAndInsideTmp) {
  const fs::path a = store_.temp_path();
  const fs::path b = store_.temp_path();
  EXPECT_NE(a, b);
  EXPECT_EQ(a.parent_path(), dir_.path() / "images" / "tmp");
  EXPECT_TRUE(fs::is_directory(a.parent_path()));
}

}  // namespace
}  // namespace probefarm::server
