// ELF32 little-endian ARM executables. Field offsets and values are from the Tool Interface
// Standard "ELF Specification v1.2" (Book I, "ELF Header" and "Program Header") and the
// ARM "ELF for the Arm Architecture" ABI (EM_ARM = 40, ELFCLASS32, ELFDATA2LSB).
#include <cstring>

#include "flash/image_detail.hpp"
#include "probe/error.hpp"

namespace probefarm::flash::detail {

namespace {

constexpr std::size_t kEhdrSize = 52;  // sizeof(Elf32_Ehdr)
constexpr std::size_t kPhdrSize = 32;  // sizeof(Elf32_Phdr)
constexpr std::uint8_t kElfClass32 = 1;
constexpr std::uint8_t kElfData2Lsb = 1;
constexpr std::uint16_t kEtRel = 1;
constexpr std::uint16_t kEmArm = 40;
constexpr std::uint32_t kPtLoad = 1;

const char* const kHint =
    "give the linked executable (the .elf the linker wrote), or convert it with "
    "arm-none-eabi-objcopy -O ihex";

std::uint16_t u16(std::span<const std::uint8_t> b, std::size_t at) {
  return static_cast<std::uint16_t>(b[at] | b[at + 1] << 8);
}

std::uint32_t u32(std::span<const std::uint8_t> b, std::size_t at) {
  return std::uint32_t{b[at]} | std::uint32_t{b[at + 1]} << 8 | std::uint32_t{b[at + 2]} << 16 |
         std::uint32_t{b[at + 3]} << 24;
}

[[noreturn]] void fail(std::string_view name, const std::string& what) {
  throw Error(ErrorCategory::image, std::string(name) + ": " + what, kHint);
}

}  // namespace

Parsed parse_elf(std::span<const std::uint8_t> b, std::string_view name) {
  if (b.size() < 4 || std::memcmp(b.data(),
                                  "\x7f"
                                  "ELF",
                                  4) != 0) {
    fail(name, "not an ELF file (no \\x7fELF magic)");
  }
  if (b.size() < kEhdrSize) {
    fail(name, "truncated ELF header: the file has " + std::to_string(b.size()) +
                   " bytes, the header needs " + std::to_string(kEhdrSize));
  }
  // e_ident[EI_CLASS] and e_ident[EI_DATA] decide how everything else reads.
  if (b[4] != kElfClass32) {
    fail(name, b[4] == 2 ? "a 64-bit ELF (ELFCLASS64); Cortex-M images are ELF32"
                         : "unknown ELF class " + std::to_string(b[4]) + "; expected ELF32");
  }
  if (b[5] != kElfData2Lsb) {
    fail(name, "a big-endian ELF (EI_DATA " + std::to_string(b[5]) +
                   "); Cortex-M images are little-endian");
  }
  const std::uint16_t e_type = u16(b, 16);
  const std::uint16_t e_machine = u16(b, 18);
  if (e_machine != kEmArm) {
    fail(name, "e_machine is " + std::to_string(e_machine) + ", not EM_ARM (40): not an ARM image");
  }
  const std::uint32_t e_entry = u32(b, 24);
  const std::uint32_t e_phoff = u32(b, 28);
  const std::uint16_t e_phentsize = u16(b, 42);
  const std::uint16_t e_phnum = u16(b, 44);
  if (e_phnum == 0) {
    fail(name, e_type == kEtRel
                   ? "a relocatable object (ET_REL) has no program headers; link it first"
                   : "no program headers, so nothing to load");
  }
  if (e_phentsize < kPhdrSize) {
    fail(name, "e_phentsize is " + std::to_string(e_phentsize) + ", smaller than an Elf32_Phdr (" +
                   std::to_string(kPhdrSize) + ")");
  }
  const std::uint64_t table_end = std::uint64_t{e_phoff} + std::uint64_t{e_phnum} * e_phentsize;
  if (table_end > b.size()) {
    fail(name, "truncated: the program header table (" + std::to_string(e_phnum) +
                   " entries at offset " + hex(e_phoff) + ") runs past the end of the " +
                   std::to_string(b.size()) + "-byte file");
  }

  Parsed parsed;
  parsed.origin_unit = "program header";
  parsed.entry = e_entry;
  for (std::uint32_t i = 0; i < e_phnum; ++i) {
    const std::size_t ph = e_phoff + std::size_t{i} * e_phentsize;
    const std::uint32_t p_type = u32(b, ph);
    const std::uint32_t p_offset = u32(b, ph + 4);
    // p_paddr, not p_vaddr: initialised .data runs from RAM (VMA) but is stored in flash (LMA)
    // for the startup code to copy; the physical address is where its bytes must be written.
    const std::uint32_t p_paddr = u32(b, ph + 12);
    const std::uint32_t p_filesz = u32(b, ph + 16);
    // p_memsz beyond p_filesz is .bss: zeroed at run time, never programmed.
    if (p_type != kPtLoad || p_filesz == 0) continue;
    const std::string where = "program header " + std::to_string(i) + " (PT_LOAD at " +
                              hex(p_paddr) + ", " + std::to_string(p_filesz) + " bytes)";
    if (std::uint64_t{p_offset} + p_filesz > b.size()) {
      fail(name, where + " runs past the end of the file: its data ends at offset " +
                     hex(std::uint64_t{p_offset} + p_filesz) + ", the file has " +
                     std::to_string(b.size()) + " bytes (truncated?)");
    }
    if (std::uint64_t{p_paddr} + p_filesz > (std::uint64_t{1} << 32)) {
      fail(name, where + " runs past the 4 GiB address space");
    }
    parsed.chunks.push_back(
        Chunk{p_paddr, {b.begin() + p_offset, b.begin() + p_offset + p_filesz}, i});
  }
  if (parsed.chunks.empty()) {
    fail(name, "no loadable data: no PT_LOAD program header has file contents");
  }
  return parsed;
}

}  // namespace probefarm::flash::detail
