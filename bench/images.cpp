// The bench's images: deterministic pseudo-random content filling the whole flash, written
// as an ELF32 file that both probefarm and OpenOCD load (one PT_LOAD segment).
#include <cstdio>
#include <stdexcept>

#include "bench/bench.hpp"

namespace probefarm::bench {
namespace {

// SplitMix64 (Steele, Lea, Flood, "Fast splittable pseudorandom number generators", 2014):
// a fixed, portable generator, so every run and every machine builds the same images.
std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void fill_random(std::uint8_t* out, std::size_t n, std::uint64_t seed) {
  std::uint64_t state = seed;
  for (std::size_t i = 0; i < n; i += 8) {
    const std::uint64_t v = splitmix64(state);
    for (std::size_t k = 0; k < 8 && i + k < n; ++k)
      out[i + k] = static_cast<std::uint8_t>(v >> (8 * k));
  }
}

void put16(std::vector<std::uint8_t>& out, std::size_t at, std::uint16_t v) {
  out[at] = static_cast<std::uint8_t>(v);
  out[at + 1] = static_cast<std::uint8_t>(v >> 8);
}

void put32(std::vector<std::uint8_t>& out, std::size_t at, std::uint32_t v) {
  for (unsigned i = 0; i < 4; ++i)
    out[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
}

}  // namespace

Content make_content(const flash::ChipInfo& chip, std::uint64_t seed) {
  Content c(chip.flash_size);
  fill_random(c.data(), c.size(), seed);
  // A vector table that parks the core in a loop, so that a board reset between two runs
  // does not execute random bytes (ARMv7-M ARM B1.5.3: SP_main at 0, Reset at 4): SP at the
  // top of the first KiB of RAM, Reset at offset 8 (Thumb bit set), where `b .` (0xE7FE,
  // ARMv7-M ARM A7.7.12 encoding T2) spins.
  std::vector<std::uint8_t> head(12);
  put32(head, 0, chip.ram_base + 1024);
  put32(head, 4, chip.flash_base + 8 + 1);
  put16(head, 8, 0xE7FE);
  put16(head, 10, 0xE7FE);
  std::copy(head.begin(), head.end(), c.begin());
  return c;
}

std::size_t s4_sector(const flash::ChipInfo& chip) {
  return chip.sectors.size() / 2;
}

Content with_sector_replaced(const flash::ChipInfo& chip, const Content& base, std::uint64_t seed) {
  Content c = base;
  const flash::FlashSector& s = chip.sectors.at(s4_sector(chip));
  fill_random(c.data() + (s.address - chip.flash_base), s.size, seed);
  return c;
}

void write_elf(const std::string& path, std::uint32_t address, const Content& content) {
  // ELF32 little-endian ARM executable with one PT_LOAD program header and no sections
  // (System V gABI "ELF Header" and "Program Header"; ARM IHI 0044 ELF for the Arm
  // Architecture 5.2: EM_ARM = 40, e_flags EF_ARM_EABI_VER5 = 0x05000000).
  constexpr std::size_t kEhdr = 52, kPhdr = 32, kData = 0x100;
  std::vector<std::uint8_t> out(kData + content.size(), 0);
  const std::uint8_t ident[] = {0x7F, 'E', 'L', 'F', 1 /*ELFCLASS32*/, 1 /*ELFDATA2LSB*/,
                                1 /*EV_CURRENT*/};
  std::copy(std::begin(ident), std::end(ident), out.begin());
  put16(out, 16, 2);                // e_type ET_EXEC
  put16(out, 18, 40);               // e_machine EM_ARM
  put32(out, 20, 1);                // e_version
  put32(out, 24, address + 8 + 1);  // e_entry: the Reset handler above
  put32(out, 28, kEhdr);            // e_phoff
  put32(out, 32, 0);                // e_shoff: no sections
  put32(out, 36, 0x05000000);       // e_flags
  put16(out, 40, kEhdr);            // e_ehsize
  put16(out, 42, kPhdr);            // e_phentsize
  put16(out, 44, 1);                // e_phnum
  put16(out, 46, 40);               // e_shentsize
  put16(out, 48, 0);                // e_shnum
  put16(out, 50, 0);                // e_shstrndx
  put32(out, kEhdr + 0, 1);         // p_type PT_LOAD
  put32(out, kEhdr + 4, kData);     // p_offset
  put32(out, kEhdr + 8, address);   // p_vaddr
  put32(out, kEhdr + 12, address);  // p_paddr
  put32(out, kEhdr + 16, static_cast<std::uint32_t>(content.size()));  // p_filesz
  put32(out, kEhdr + 20, static_cast<std::uint32_t>(content.size()));  // p_memsz
  put32(out, kEhdr + 24, 5);                                           // p_flags R+X
  put32(out, kEhdr + 28, 4);                                           // p_align
  std::copy(content.begin(), content.end(), out.begin() + kData);
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw std::runtime_error("cannot write " + path);
  const bool ok = std::fwrite(out.data(), 1, out.size(), f) == out.size();
  if (std::fclose(f) != 0 || !ok) throw std::runtime_error("cannot write " + path);
}

}  // namespace probefarm::bench
