// Motorola S-records (the SREC format of the M68000 family reference, as documented in
// srec(5)): "S" type, count, address, data, checksum; the count covers address, data and
// checksum, and the checksum is the one's complement of the low byte of their sum with the
// count.
#include "flash/image_detail.hpp"
#include "probe/error.hpp"

namespace probefarm::flash::detail {

namespace {

const char* const kHint =
    "the file is corrupt or not an S-record file; regenerate it (arm-none-eabi-objcopy -O srec "
    "firmware.elf firmware.srec)";

// Address field width by record type S0..S9; 0 marks S4, which is reserved.
constexpr std::size_t kAddressBytes[10] = {2, 2, 3, 4, 0, 2, 3, 4, 3, 2};

}  // namespace

Parsed parse_srec(std::span<const std::uint8_t> bytes, std::string_view name) {
  Parsed parsed;
  parsed.origin_unit = "line";
  std::uint32_t data_records = 0;
  bool terminated = false;
  LineReader reader(bytes);
  std::string_view line;
  std::size_t first = 0;
  while (reader.next(line, first)) {
    const std::string where = reader.where(name);
    auto fail = [&](const std::string& what) -> void {
      throw Error(ErrorCategory::image, where + ": " + what, kHint);
    };
    if (terminated) fail("data after the termination record");
    if (line.front() != 'S') fail("a record must start with 'S'");
    if (line.size() < 2 || line[1] < '0' || line[1] > '9') {
      fail("'S' must be followed by the record type 0 to 9");
    }
    const int type = line[1] - '0';
    if (type == 4) fail("record type S4 is reserved");
    const std::size_t address_bytes = kAddressBytes[type];
    const std::vector<std::uint8_t> r = decode_hex(line.substr(2), where, first + 3, kHint);
    if (r.empty()) fail("truncated record: no byte count");
    const std::size_t count = r[0];
    if (r.size() - 1 != count) {
      fail((r.size() - 1 < count ? "truncated record: " : "record too long: ") +
           std::to_string(r.size() - 1) + " bytes after the count, the count says " +
           std::to_string(count));
    }
    if (count < address_bytes + 1) {
      fail("byte count " + std::to_string(count) + " is too small for an S" + std::to_string(type) +
           " record (" + std::to_string(address_bytes) + " address bytes and a checksum)");
    }
    std::uint8_t sum = 0;
    for (std::size_t i = 0; i + 1 < r.size(); ++i)
      sum = static_cast<std::uint8_t>(sum + r[i]);
    const auto expected = static_cast<std::uint8_t>(~sum);
    if (r.back() != expected) {
      fail("checksum " + hex(r.back(), 2) + " is wrong, the record's bytes need " +
           hex(expected, 2));
    }
    std::uint32_t address = 0;
    for (std::size_t i = 0; i < address_bytes; ++i)
      address = address << 8 | r[1 + i];
    const std::uint8_t* data = r.data() + 1 + address_bytes;
    const std::size_t size = count - address_bytes - 1;
    switch (type) {
      case 0:  // header: free text, nothing to program
        break;
      case 1:
      case 2:
      case 3:
        if (std::uint64_t{address} + size > (std::uint64_t{1} << 32)) {
          fail("data at " + hex(address) + " (" + std::to_string(size) +
               " bytes) runs past the 4 GiB address space");
        }
        ++data_records;
        parsed.chunks.push_back(Chunk{address, {data, data + size}, reader.line_number()});
        break;
      case 5:
      case 6:
        // The count of S1/S2/S3 records so far; a mismatch means records were lost.
        if (address != data_records) {
          fail("the count record says " + std::to_string(address) + " data records, the file has " +
               std::to_string(data_records) + " before it");
        }
        break;
      default:  // 7, 8, 9: termination with the start address
        parsed.entry = address;
        terminated = true;
        break;
    }
  }
  if (!terminated) {
    throw Error(
        ErrorCategory::image,
        reader.line_number() == 0
            ? std::string(name) + ": the file is empty"
            : reader.where(name) + ": the file ends without a termination record (S7, S8 or S9)",
        "the file is truncated; copy or regenerate it completely");
  }
  return parsed;
}

}  // namespace probefarm::flash::detail
