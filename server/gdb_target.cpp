// The XML documents of the GDB server: target description and memory map.
#include <cstdio>
#include <string>

#include "server/gdb_server.hpp"

namespace probefarm::server {
namespace {

std::string hex(std::uint64_t value) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(value));
  return buf;
}

}  // namespace

// GDB manual "Standard Target Features", "ARM Features": the M-profile feature needs
// r0-r12, sp, lr, pc and xpsr; the VFP feature d0-d15 and fpscr. Registers are numbered
// in document order (no regnum attributes): r0-pc 0-15, xpsr 16, d0-d15 17-32, fpscr 33,
// which is the order of the 'g' packet and the numbers of 'p'/'P'.
std::string gdb_target_xml(bool fpu) {
  std::string x =
      "<?xml version=\"1.0\"?>\n"
      "<!DOCTYPE target SYSTEM \"gdb-target.dtd\">\n"
      "<target version=\"1.0\">\n"
      "<architecture>arm</architecture>\n"
      "<feature name=\"org.gnu.gdb.arm.m-profile\">\n";
  for (int i = 0; i <= 12; ++i)
    x += "<reg name=\"r" + std::to_string(i) + "\" bitsize=\"32\" type=\"uint32\"/>\n";
  x += "<reg name=\"sp\" bitsize=\"32\" type=\"data_ptr\"/>\n"
       "<reg name=\"lr\" bitsize=\"32\" type=\"uint32\"/>\n"
       "<reg name=\"pc\" bitsize=\"32\" type=\"code_ptr\"/>\n"
       "<reg name=\"xpsr\" bitsize=\"32\" type=\"uint32\"/>\n"
       "</feature>\n";
  if (fpu) {
    x += "<feature name=\"org.gnu.gdb.arm.vfp\">\n";
    for (int i = 0; i < 16; ++i)
      x += "<reg name=\"d" + std::to_string(i) +
           "\" bitsize=\"64\" type=\"ieee_double\" group=\"float\"/>\n";
    x += "<reg name=\"fpscr\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n</feature>\n";
  }
  x += "</target>\n";
  return x;
}

// GDB manual "Memory Map Format". With a map, GDB refuses accesses outside it ("mem
// inaccessible-by-default"), so everything that is not the main flash is described as
// RAM: the SRAM, peripherals and the system space stay reachable for print and x. Flash
// is one region per run of equal sectors, with the sector size as the blocksize GDB
// erases in (vFlashErase).
std::string gdb_memory_map_xml(const flash::ChipInfo& chip) {
  std::string x =
      "<?xml version=\"1.0\"?>\n"
      "<!DOCTYPE memory-map PUBLIC \"+//IDN gnu.org//DTD GDB Memory Map V1.0//EN\" "
      "\"http://sourceware.org/gdb/gdb-memory-map.dtd\">\n"
      "<memory-map>\n";
  std::uint64_t flash_start = chip.flash_base, flash_end = chip.flash_base;
  if (!chip.sectors.empty()) {
    flash_start = chip.sectors.front().address;
    flash_end = chip.sectors.back().end();
  }
  if (flash_start > 0)
    x += "<memory type=\"ram\" start=\"0x0\" length=\"" + hex(flash_start) + "\"/>\n";
  for (std::size_t i = 0; i < chip.sectors.size();) {
    std::size_t j = i;
    while (j + 1 < chip.sectors.size() && chip.sectors[j + 1].size == chip.sectors[i].size &&
           chip.sectors[j + 1].address == chip.sectors[j].end())
      ++j;
    const std::uint64_t length = chip.sectors[j].end() - chip.sectors[i].address;
    x += "<memory type=\"flash\" start=\"" + hex(chip.sectors[i].address) + "\" length=\"" +
         hex(length) + "\"><property name=\"blocksize\">" + hex(chip.sectors[i].size) +
         "</property></memory>\n";
    i = j + 1;
  }
  if (flash_end < 0x100000000ull)
    x += "<memory type=\"ram\" start=\"" + hex(flash_end) + "\" length=\"" +
         hex(0x100000000ull - flash_end) + "\"/>\n";
  x += "</memory-map>\n";
  return x;
}

}  // namespace probefarm::server
