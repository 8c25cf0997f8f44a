// The on-target flash loader (firmware/loader/, contract loader_abi.h) run on simulated
// boards of every family, and its host half (flash/loader.cpp). The loader is placed and
// called the way a debugger runs an algorithm: halted core, image in SRAM, arguments in
// r0..r3, LR at the loader's BKPT (ARMv7-M ARM C1.6.3 DCRSR register transfers).
#include "flash/loader.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "firmware/loader/loader_abi.h"
#include "probe/error.hpp"
#include "sim/debugger.hpp"

namespace probefarm::flash {
namespace {

using sim::Board;
using sim::BoardOptions;
using sim::kMicrosecond;
using sim::kMillisecond;
using sim::kSecond;
using sim::test::Debugger;

// --- host half ---------------------------------------------------------------------------

std::vector<std::uint8_t> bytes(std::string_view s) {
  return {s.begin(), s.end()};
}

TEST(LoaderCrc32, ZlibCheckValue) {
  EXPECT_EQ(crc32(bytes("123456789")), 0xCBF43926u);  // the CRC-32/ISO-HDLC check value
  EXPECT_EQ(crc32({}), 0u);
  EXPECT_EQ(crc32(bytes("a")), 0xE8B7BE43u);  // zlib.crc32(b"a")
}

TEST(LoaderCrc32, ContinuesFromAPreviousResult) {
  const auto all = bytes("The quick brown fox jumps over the lazy dog");
  EXPECT_EQ(crc32(all), 0x414FA339u);  // zlib.crc32 of the pangram
  const std::span<const std::uint8_t> s(all);
  EXPECT_EQ(crc32(s.subspan(10), crc32(s.first(10))), 0x414FA339u);
}

TEST(LoaderImage, HeaderDescribesTheImage) {
  const Loader& l = loader();
  ASSERT_GE(l.image.size(), sizeof(pf_loader_header));
  EXPECT_LE(l.image.size(), 4096u) << "loaded over SWD every session: keep it small";
  EXPECT_EQ(l.base, PF_LOADER_BASE);
  EXPECT_EQ(l.image[0] | l.image[1] << 8 | l.image[2] << 16 | std::uint32_t{l.image[3]} << 24,
            PF_LOADER_MAGIC);
  const std::uint32_t image_end = l.base + static_cast<std::uint32_t>(l.image.size());
  for (const std::uint32_t entry : {l.crc32_entry, l.program_entry, l.crc32_ranges_entry}) {
    EXPECT_EQ(entry & 1, 1u) << "Thumb bit";
    EXPECT_GT(entry, l.base);
    EXPECT_LT(entry, image_end);
  }
  ASSERT_LT(l.bkpt + 1, image_end);
  EXPECT_EQ(l.image[l.bkpt - l.base] | l.image[l.bkpt - l.base + 1] << 8, 0xBE00) << "bkpt #0";
  EXPECT_GE(l.end, image_end);
  EXPECT_EQ(l.end % 8, 0u);
  EXPECT_EQ(&loader(), &l) << "parsed once";
}

// --- on the simulated boards -------------------------------------------------------------

// Where things go in SRAM, valid on the smallest (F103C8: 20 KiB at 0x20000000): the loader,
// its pf_program block at header.end, the ring after it, test data, then the stack.
constexpr std::uint32_t kRingSize = 1024;
constexpr std::uint32_t kDataBuffer = 0x20002000;
constexpr std::uint32_t kStackTop = 0x20004000;
constexpr std::uint32_t kReadOffset = offsetof(pf_program, read_offset);
constexpr std::uint32_t kWriteOffset = offsetof(pf_program, write_offset);

// Flash interface registers (PM0075 3.1; RM0090 3.9 / RM0385 3.7).
constexpr std::uint32_t kFlashSr = 0x0C;
constexpr std::uint32_t kFlashCr = 0x10;
constexpr std::uint32_t kFlashAr = 0x14;  // F1 only (PM0075 3.6)

struct Target {
  std::uint32_t flash_offset;  // of the erased block the tests program
  std::uint32_t sector;        // F4 style: the sector at flash_offset
};

// A block away from the vector table: pages 16-19 (F103, 1 KiB pages) or 8-9 (F303, 2 KiB),
// sector 1 (F407: 16 KiB at 0x4000, RM0090 3.3 Table 5; F746: 32 KiB at 0x8000, RM0385
// 3.3.2 Table 3).
Target target_for(const sim::ChipInfo& chip) {
  if (chip.name == "stm32f746ng") return {0x8000, 1};
  return {0x4000, 1};
}

std::vector<std::uint8_t> random_bytes(std::size_t n, std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<std::uint8_t> v(n);
  for (auto& b : v)
    b = static_cast<std::uint8_t>(gen());
  return v;
}

class LoaderOnChip : public ::testing::TestWithParam<const char*> {
 protected:
  LoaderOnChip()
      : LoaderOnChip(BoardOptions{.serial = "PFLOADER", .uid_seed = 0, .state_dir = {}}) {}
  explicit LoaderOnChip(BoardOptions options)
      : board_(sim::test::chip_named(GetParam()), std::move(options)) {}

  const sim::ChipInfo& chip() const { return board_.chip(); }
  bool f1() const { return chip().flash_style == sim::FlashStyle::f1; }
  std::uint32_t params() const { return loader().end; }
  std::uint32_t ring() const { return (loader().end + sizeof(pf_program) + 7) & ~7u; }
  std::uint32_t flash_address(std::uint32_t offset) const { return chip().flash_base + offset; }

  void write_bytes(std::uint32_t addr, std::span<const std::uint8_t> data) {
    std::vector<std::uint8_t> padded(data.begin(), data.end());
    padded.resize((padded.size() + 3) & ~std::size_t{3}, 0);
    for (std::size_t i = 0; i < padded.size(); i += 4)
      dbg_.wr(addr + static_cast<std::uint32_t>(i), sim::test::word_at(padded, i));
  }
  std::vector<std::uint8_t> read_bytes(std::uint32_t addr, std::uint32_t n) {
    std::vector<std::uint8_t> out;
    for (std::uint32_t i = 0; i < n; i += 4) {
      const std::uint32_t w = dbg_.rd(addr + i);
      for (std::uint32_t k = 0; k < 4 && i + k < n; ++k)
        out.push_back(static_cast<std::uint8_t>(w >> (8 * k)));
    }
    return out;
  }

  void load_loader() {
    dbg_.halt();
    write_bytes(loader().base, loader().image);
    ASSERT_EQ(read_bytes(loader().base, static_cast<std::uint32_t>(loader().image.size())),
              std::vector<std::uint8_t>(loader().image.begin(), loader().image.end()));
  }

  // Starts `entry` with r0..r2 and returns at once; finish() collects the result.
  void start(std::uint32_t entry, std::uint32_t r0, std::uint32_t r1 = 0, std::uint32_t r2 = 0) {
    ASSERT_TRUE(dbg_.halted());
    const std::uint32_t args[] = {r0, r1, r2, 0};
    for (std::uint32_t r = 0; r <= 12; ++r)
      dbg_.set_reg(r, r < 4 ? args[r] : 0);
    dbg_.set_reg(sim::test::kRegMsp, kStackTop);
    dbg_.set_reg(sim::test::kRegLr, loader().bkpt | 1);
    dbg_.set_reg(sim::test::kRegXpsr, 0x01000000);  // EPSR.T (ARMv7-M ARM B1.4.2)
    dbg_.set_reg(sim::test::kRegPc, entry & ~1u);
    dbg_.wr(sim::test::kDfsr, sim::test::kDfsrAll);
    dbg_.resume();
  }
  // The core must be halted on the loader's BKPT (DFSR.BKPT, C1.6.1); r0 is the result.
  std::uint32_t finish() {
    EXPECT_TRUE(dbg_.halted());
    EXPECT_NE(dbg_.rd(sim::test::kDfsr) & sim::test::kDfsrBkpt, 0u) << "stopped on a BKPT";
    EXPECT_EQ(dbg_.reg(sim::test::kRegPc), loader().bkpt) << "returned to header.bkpt";
    EXPECT_EQ(dbg_.reg(sim::test::kRegMsp), kStackTop) << "stack balanced";
    return dbg_.reg(0);
  }
  std::uint32_t call(std::uint32_t entry, std::uint32_t r0, std::uint32_t r1 = 0,
                     std::uint32_t r2 = 0) {
    start(entry, r0, r1, r2);
    EXPECT_TRUE(dbg_.run_until_halted(10 * kSecond)) << "the loader returns";
    return finish();
  }

  // PM0075 2.3.4 (page erase: PER, AR, STRT) / RM0090 3.6.3, RM0385 3.3.5 (sector erase:
  // SER, SNB, PSIZE x32, STRT); the host's job, done before the loader runs.
  void erase_target(std::uint32_t pages_or_bytes) {
    ASSERT_NO_FATAL_FAILURE(dbg_.unlock_flash());
    const Target t = target_for(chip());
    if (f1()) {
      for (std::uint32_t off = 0; off < pages_or_bytes; off += chip().page_size) {
        dbg_.wr(dbg_.flash_reg(kFlashCr), 1u << 1);  // PER
        dbg_.wr(dbg_.flash_reg(kFlashAr), flash_address(t.flash_offset + off));
        dbg_.wr(dbg_.flash_reg(kFlashCr), (1u << 1) | (1u << 6));  // PER | STRT
        ASSERT_NO_FATAL_FAILURE(dbg_.wait_flash_idle());
      }
    } else {
      const std::uint32_t cr = (1u << 1) | (t.sector << 3) | (2u << 8);  // SER | SNB | x32
      dbg_.wr(dbg_.flash_reg(kFlashCr), cr);
      dbg_.wr(dbg_.flash_reg(kFlashCr), cr | (1u << 16));  // STRT
      ASSERT_NO_FATAL_FAILURE(dbg_.wait_flash_idle());
    }
    EXPECT_EQ(dbg_.rd(dbg_.flash_sr()) & error_mask(), 0u);
    dbg_.wr(dbg_.flash_reg(kFlashCr), 0);
  }

  // PM0075 3.4 PGERR | WRPRTERR; RM0090 3.9.4 / RM0385 3.7.4 OPERR and the program errors.
  std::uint32_t error_mask() const { return f1() ? 0x14u : 0xF2u; }
  std::uint32_t wrp_error() const { return 1u << 4; }  // WRPRTERR (F1) and WRPERR (F4) alike

  // The pf_program block for `length` bytes at flash offset `offset`, offsets at 0.
  // F4 style: x32 unless told, the 2.7-3.6 V parallelism (RM0090 3.6.2 Table 7).
  void write_params(std::uint32_t offset, std::uint32_t length, std::uint32_t idle_loops,
                    std::uint32_t psize = 2) {
    const std::uint32_t words[] = {
        chip().flash_regs,
        f1() ? PF_STYLE_F1 : PF_STYLE_F4,
        f1() ? 0u : psize,
        flash_address(offset),
        length,
        ring(),
        kRingSize,
        idle_loops,
        0,
        0,
    };
    static_assert(sizeof(words) == sizeof(pf_program));
    for (std::uint32_t i = 0; i < std::size(words); ++i)
      dbg_.wr(params() + 4 * i, words[i]);
  }

  struct Stream {
    std::uint32_t fed = 0;  // bytes handed over (write_offset)
    // Times the loader was seen part-way through while the host still held data back.
    unsigned seen_midway = 0;
  };
  // The host side of the streaming protocol: copies chunks of `data` into the free part of
  // the ring and publishes write_offset, while the loader runs, until `feed_limit` bytes are
  // fed and the core halts (or 10 s of virtual time pass).
  Stream feed(const std::vector<std::uint8_t>& data, std::uint32_t feed_limit) {
    constexpr std::uint32_t kChunk = 256;
    Stream s;
    const sim::Picoseconds deadline = board_.now() + 10 * kSecond;
    while (!dbg_.halted() && board_.now() < deadline) {
      const std::uint32_t read = dbg_.rd(params() + kReadOffset);
      EXPECT_LE(read, s.fed) << "the loader never runs ahead of the host";
      if (read > 0 && read < s.fed && s.fed < feed_limit) ++s.seen_midway;
      const std::uint32_t free = kRingSize - (s.fed - read);
      const std::uint32_t n = std::min({kChunk, free, feed_limit - s.fed});
      if (n == kChunk || (n > 0 && s.fed + n == feed_limit)) {
        // Chunks never straddle the wrap: kRingSize is a multiple of kChunk.
        write_bytes(ring() + s.fed % kRingSize,
                    std::span<const std::uint8_t>(data).subspan(s.fed, n));
        s.fed += n;
        dbg_.wr(params() + kWriteOffset, s.fed);
      } else {
        board_.advance(50 * kMicrosecond);
      }
    }
    return s;
  }

  Board board_;
  Debugger dbg_{board_};
};

std::string chip_name(const ::testing::TestParamInfo<const char*>& info) {
  return info.param;
}

// zlib CRC-32 on the target, of RAM (unaligned start and odd length, so the byte and word
// paths both run) and continued from a previous result, equals the host's.
TEST_P(LoaderOnChip, Crc32OfRamMatchesTheHost) {
  ASSERT_NO_FATAL_FAILURE(load_loader());
  const auto data = random_bytes(3001, 7);
  write_bytes(kDataBuffer, data);
  const std::span<const std::uint8_t> all(data);
  const std::uint32_t start = kDataBuffer + 1;
  const auto region = all.subspan(1, 2999);
  EXPECT_EQ(call(loader().crc32_entry, start, 2999, 0), crc32(region));
  const std::uint32_t first = call(loader().crc32_entry, start, 1000, 0);
  EXPECT_EQ(first, crc32(region.first(1000)));
  EXPECT_EQ(call(loader().crc32_entry, start + 1000, 1999, first), crc32(region));
  EXPECT_EQ(call(loader().crc32_entry, start, 0, 0), 0u);
  write_bytes(kDataBuffer, bytes("123456789"));
  EXPECT_EQ(call(loader().crc32_entry, kDataBuffer, 9, 0), 0xCBF43926u);
}

// crc32_ranges (loader_abi.h): a table of CRCs in one run, each entry from its own crc_in
// or chained onto the previous result, written back into the table; an unknown flag is
// refused before anything is computed.
TEST_P(LoaderOnChip, Crc32RangesFillsTheTable) {
  ASSERT_NO_FATAL_FAILURE(load_loader());
  const auto data = random_bytes(3001, 11);
  write_bytes(kDataBuffer, data);
  const std::span<const std::uint8_t> all(data);
  const std::uint32_t table = ring();
  const std::uint32_t seed = crc32(bytes("seed"));
  const pf_crc_range entries[] = {
      {kDataBuffer + 1, 2999, 0, 0},                // odd start and length
      {kDataBuffer, 1000, 0, 0},                    // the first part of a chain
      {kDataBuffer + 1000, 2001, 0, PF_CRC_CHAIN},  // continues it
      {kDataBuffer + 5, 0, seed, 0},                // empty: crc_in unchanged
      {kDataBuffer + 7, 64, seed, 0},               // continues a host CRC
  };
  std::vector<std::uint8_t> raw(sizeof entries);
  std::memcpy(raw.data(), entries, sizeof entries);
  write_bytes(table, raw);
  EXPECT_EQ(call(loader().crc32_ranges_entry, table, 5), 0u);
  const auto out = read_bytes(table, sizeof entries);
  auto result = [&](std::size_t i) {
    std::uint32_t v = 0;
    std::memcpy(&v, out.data() + i * sizeof(pf_crc_range) + offsetof(pf_crc_range, crc), 4);
    return v;
  };
  EXPECT_EQ(result(0), crc32(all.subspan(1, 2999)));
  EXPECT_EQ(result(1), crc32(all.first(1000)));
  EXPECT_EQ(result(2), crc32(all));
  EXPECT_EQ(result(3), seed);
  EXPECT_EQ(result(4), crc32(all.subspan(7, 64), seed));

  // An unknown flag: PF_ERROR_ARGUMENT, and the table is left as written.
  pf_crc_range bad[] = {{kDataBuffer, 16, 0x1234, 0}, {kDataBuffer, 16, 0x5678, 0x2}};
  std::vector<std::uint8_t> bad_raw(sizeof bad);
  std::memcpy(bad_raw.data(), bad, sizeof bad);
  write_bytes(table, bad_raw);
  EXPECT_EQ(call(loader().crc32_ranges_entry, table, 2), PF_ERROR_ARGUMENT);
  EXPECT_EQ(read_bytes(table, sizeof bad), bad_raw);
}

// Streams 4 KiB through a 1 KiB ring (it wraps four times) into freshly erased flash,
// with a run of 0xFF the loader must skip, then checks the flash over the debug bus and by
// the loader's own CRC-32 of the flash.
TEST_P(LoaderOnChip, ProgramStreamsThroughTheRing) {
  constexpr std::uint32_t kLength = 4096;
  const Target t = target_for(chip());
  ASSERT_NO_FATAL_FAILURE(load_loader());
  ASSERT_NO_FATAL_FAILURE(erase_target(kLength));
  auto data = random_bytes(kLength, 42);
  std::fill(data.begin() + 1024, data.begin() + 1024 + 256, 0xFF);  // skipped, not programmed
  write_params(t.flash_offset, kLength, 2'000'000);
  const std::uint64_t programmed_before = board_.counters().bytes_programmed;

  start(loader().program_entry, params());
  const Stream s = feed(data, kLength);
  ASSERT_TRUE(dbg_.halted()) << "the loader finished within 10 s of virtual time";
  EXPECT_EQ(finish(), 0u);
  EXPECT_EQ(s.fed, kLength);
  EXPECT_GT(s.seen_midway, 0u) << "programming overlapped the feeding";
  EXPECT_EQ(dbg_.rd(params() + kReadOffset), kLength);
  EXPECT_EQ(read_bytes(flash_address(t.flash_offset), kLength), data);
  EXPECT_EQ(board_.counters().bytes_programmed - programmed_before, kLength - 256)
      << "all-0xFF units are left erased, not programmed";
  EXPECT_EQ(dbg_.rd(dbg_.flash_cr()) & 1u, 0u) << "PG cleared at the end";
  EXPECT_EQ(dbg_.rd(dbg_.flash_sr()) & error_mask(), 0u);

  EXPECT_EQ(call(loader().crc32_entry, flash_address(t.flash_offset), kLength, 0), crc32(data));
}

// Byte, half-word and word programming (FLASH_CR.PSIZE x8, x16, x32: RM0090 3.6.2 /
// 3.6.4, RM0385 3.3.4), each into its own stretch of the erased sector, with one all-0xFF
// unit skipped per run. x64 (two word stores, low first) is left out: the simulator's CPU
// store path (sim/cortex_m.cpp on_flash_store) restores the low word's pre-store contents
// at the end of the execution chunk after the high word has programmed the pair, so a
// CPU-driven double word loses its low half there; reported, not worked around.
class LoaderOnF4Chip : public LoaderOnChip {};

TEST_P(LoaderOnF4Chip, EveryParallelism) {
  ASSERT_FALSE(f1());
  constexpr std::uint32_t kLength = 64;
  const Target t = target_for(chip());
  ASSERT_NO_FATAL_FAILURE(load_loader());
  ASSERT_NO_FATAL_FAILURE(erase_target(kLength));
  for (std::uint32_t psize = 0; psize <= 2; ++psize) {
    SCOPED_TRACE("psize " + std::to_string(psize));
    auto data = random_bytes(kLength, 100 + psize);
    std::fill(data.begin() + 8, data.begin() + 16, 0xFF);
    const std::uint32_t offset = t.flash_offset + 0x100 * psize;
    write_params(offset, kLength, 2'000'000, psize);
    write_bytes(ring(), data);
    dbg_.wr(params() + kWriteOffset, kLength);
    const std::uint64_t before = board_.counters().bytes_programmed;
    EXPECT_EQ(call(loader().program_entry, params()), 0u);
    EXPECT_EQ(read_bytes(flash_address(offset), kLength), data);
    EXPECT_EQ(board_.counters().bytes_programmed - before, kLength - 8);
    EXPECT_EQ(dbg_.rd(params() + kReadOffset), kLength);
  }
}

// BSY that does not clear within the loader's bound (here: an erase of sector 5, 128 KiB
// on the F407 and 256 KiB on the F746, one to two seconds at x32 by DS8626 / DS10916
// tERASE) ends the call with PF_ERROR_TIMEOUT instead of a hang, before anything is
// programmed.
TEST_P(LoaderOnF4Chip, BusyThatOutlastsTheBoundTimesOut) {
  constexpr std::uint32_t kLength = 64;
  constexpr std::uint32_t kSector5 = 0x20000;  // RM0090 3.3 Table 5 / RM0385 3.3.2 Table 3
  const Target t = target_for(chip());
  ASSERT_NO_FATAL_FAILURE(load_loader());
  ASSERT_NO_FATAL_FAILURE(dbg_.unlock_flash());
  write_params(t.flash_offset, kLength, 2'000'000);
  write_bytes(ring(), random_bytes(kLength, 5));
  dbg_.wr(params() + kWriteOffset, kLength);
  const std::uint32_t ser = (1u << 1) | (5u << 3) | (2u << 8);  // SER | SNB 5 | x32
  dbg_.wr(dbg_.flash_cr(), ser);
  dbg_.wr(dbg_.flash_cr(), ser | (1u << 16));  // STRT (RM0090 3.6.3)
  const std::uint64_t before = board_.counters().bytes_programmed;

  EXPECT_EQ(call(loader().program_entry, params()), PF_ERROR_TIMEOUT);
  EXPECT_NE(dbg_.rd(dbg_.flash_sr()) & dbg_.bsy(), 0u) << "the erase is still running";
  EXPECT_EQ(dbg_.rd(params() + kReadOffset), 0u);
  EXPECT_EQ(board_.counters().bytes_programmed, before);
  ASSERT_NO_FATAL_FAILURE(dbg_.wait_flash_idle());
  EXPECT_EQ(dbg_.rd(flash_address(kSector5)), 0xFFFFFFFFu);
}

// The host stops feeding half-way: the loader gives up after idle_loops polls with what
// it has programmed, instead of spinning forever.
TEST_P(LoaderOnChip, StarvedRingReturnsStarved) {
  constexpr std::uint32_t kLength = 2048;
  constexpr std::uint32_t kFed = 512;
  const Target t = target_for(chip());
  ASSERT_NO_FATAL_FAILURE(load_loader());
  ASSERT_NO_FATAL_FAILURE(erase_target(kLength));
  const auto data = random_bytes(kLength, 3);
  write_params(t.flash_offset, kLength, 20'000);

  start(loader().program_entry, params());
  feed(data, kFed);
  ASSERT_TRUE(dbg_.run_until_halted(10 * kSecond));
  EXPECT_EQ(finish(), PF_ERROR_STARVED);
  EXPECT_EQ(dbg_.rd(params() + kReadOffset), kFed);
  EXPECT_EQ(read_bytes(flash_address(t.flash_offset), kFed),
            std::vector<std::uint8_t>(data.begin(), data.begin() + kFed));
  EXPECT_EQ(dbg_.rd(flash_address(t.flash_offset + kFed)), 0xFFFFFFFFu) << "nothing beyond";
  EXPECT_EQ(dbg_.rd(dbg_.flash_cr()) & 1u, 0u) << "PG cleared";
}

// Bad arguments are refused before anything is touched.
TEST_P(LoaderOnChip, MisalignedLengthIsRefused) {
  const Target t = target_for(chip());
  ASSERT_NO_FATAL_FAILURE(load_loader());
  ASSERT_NO_FATAL_FAILURE(dbg_.unlock_flash());
  write_params(t.flash_offset, 3, 1000);
  EXPECT_EQ(call(loader().program_entry, params()), PF_ERROR_ARGUMENT);
  dbg_.wr(params() + 4, 7);  // no such style
  EXPECT_EQ(call(loader().program_entry, params()), PF_ERROR_ARGUMENT);
  EXPECT_EQ(dbg_.rd(params() + kReadOffset), 0u);
}

// PM0075 2.3.3: a half-word that is not erased is not programmed and sets PGERR (F1
// style). The F4/F7 report nothing for it (RM0090 3.6.4 note: programming only clears
// bits), so that case is F1 only; write protection below covers both styles.
class LoaderOnF1Chip : public LoaderOnChip {};

TEST_P(LoaderOnF1Chip, NonErasedHalfWordReturnsPgerr) {
  ASSERT_TRUE(f1());
  constexpr std::uint32_t kLength = 64;
  const Target t = target_for(chip());
  ASSERT_NO_FATAL_FAILURE(load_loader());
  ASSERT_NO_FATAL_FAILURE(erase_target(kLength));
  // Something already at the 9th half-word.
  ASSERT_NO_FATAL_FAILURE(dbg_.program_flash(t.flash_offset + 16, {0x34, 0x12, 0xFF, 0xFF}));
  ASSERT_NO_FATAL_FAILURE(dbg_.unlock_flash());
  const auto data = random_bytes(kLength, 9);
  write_params(t.flash_offset, kLength, 2'000'000);
  write_bytes(ring(), data);
  dbg_.wr(params() + kWriteOffset, kLength);

  EXPECT_EQ(call(loader().program_entry, params()), 1u << 2) << "PGERR";
  EXPECT_EQ(dbg_.rd(params() + kReadOffset), 16u) << "at the failing unit";
  EXPECT_EQ(read_bytes(flash_address(t.flash_offset), 16),
            std::vector<std::uint8_t>(data.begin(), data.begin() + 16));
  EXPECT_EQ(dbg_.rd(flash_address(t.flash_offset + 16)), 0xFFFF1234u) << "left as it was";
  EXPECT_EQ(dbg_.rd(dbg_.flash_cr()) & 1u, 0u) << "PG cleared";
}

INSTANTIATE_TEST_SUITE_P(AllChips, LoaderOnChip, ::testing::ValuesIn(sim::test::kAllChips),
                         chip_name);
INSTANTIATE_TEST_SUITE_P(F4Style, LoaderOnF4Chip, ::testing::Values("stm32f407vg", "stm32f746ng"),
                         chip_name);
INSTANTIATE_TEST_SUITE_P(F1Style, LoaderOnF1Chip, ::testing::Values("stm32f103c8", "stm32f303vc"),
                         chip_name);

// Write protection of the first page group / sector from the option bytes (PM0075 2.5
// WRP0 bit 0, RM0316 4.5; RM0090 3.7.3 / RM0385 3.4.3 nWRP bit 0), loaded from the board's
// state directory as at power-on. The loader returns WRPRTERR / WRPERR at the first unit.
class LoaderWriteProtected : public LoaderOnChip {
 protected:
  LoaderWriteProtected() : LoaderOnChip(options()) {}
  ~LoaderWriteProtected() override { std::filesystem::remove_all(dir_); }

  static std::filesystem::path state_dir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    return std::filesystem::path(::testing::TempDir()) /
           ("probefarm_loader_wrp_" + std::string(GetParam()) + "_" +
            std::to_string(reinterpret_cast<std::uintptr_t>(info)));
  }
  static BoardOptions options() {
    const auto& chip = sim::test::chip_named(GetParam());
    std::vector<std::uint8_t> ob = chip.option_bytes_reset;
    if (chip.flash_style == sim::FlashStyle::f1) {
      ob[8] = 0xFE;  // WRP0 with bit 0 clear, and its complement
      ob[9] = 0x01;
    } else {
      ob[8] &= 0xFE;  // nWRP0 = 0, and the complement half
      ob[10] |= 0x01;
    }
    const auto dir = state_dir();
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "option_bytes.bin", std::ios::binary)
        .write(reinterpret_cast<const char*>(ob.data()), static_cast<std::streamsize>(ob.size()));
    return BoardOptions{.serial = "PFLOADER", .uid_seed = 0, .state_dir = dir};
  }

  std::filesystem::path dir_ = state_dir();
};

TEST_P(LoaderWriteProtected, ReturnsTheWriteProtectionError) {
  constexpr std::uint32_t kLength = 64;
  ASSERT_NO_FATAL_FAILURE(load_loader());
  ASSERT_NO_FATAL_FAILURE(dbg_.unlock_flash());
  const auto data = random_bytes(kLength, 11);
  write_params(0, kLength, 2'000'000);
  write_bytes(ring(), data);
  dbg_.wr(params() + kWriteOffset, kLength);
  const std::uint64_t programmed_before = board_.counters().bytes_programmed;

  EXPECT_EQ(call(loader().program_entry, params()), wrp_error());
  EXPECT_EQ(dbg_.rd(params() + kReadOffset), 0u) << "at the failing unit";
  EXPECT_EQ(board_.counters().bytes_programmed, programmed_before);
  EXPECT_EQ(dbg_.rd(flash_address(0)), 0xFFFFFFFFu);
  EXPECT_EQ(dbg_.rd(dbg_.flash_cr()) & 1u, 0u) << "PG cleared";
}

INSTANTIATE_TEST_SUITE_P(AllChips, LoaderWriteProtected, ::testing::ValuesIn(sim::test::kAllChips),
                         chip_name);

}  // namespace
}  // namespace probefarm::flash
