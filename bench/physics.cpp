// The chips and probes of the bench, and the time a change of flash content physically
// needs: the datasheet erase and programming times (flash/chip.hpp) or, when longer, the
// time the probe link needs to carry the changed bytes (README.md "Efficiency" defines it).
#include <algorithm>
#include <cmath>

#include "bench/bench.hpp"

namespace probefarm::bench {

const std::vector<ChipSpec>& all_chips() {
  // DEV_IDs: RM0008 31.6.1 (0x410), RM0316 33.6.1 (0x422), RM0090 38.6.1 (0x413), RM0385
  // 40.6.1 (0x449). SWD clock: what OpenOCD's stock script itself runs the flash write at
  // after its reset-init (8 MHz on F3/F4/F7; stm32f1x.cfg stays at 1 MHz, so the bench asks
  // both tools for 4 MHz there).
  static const std::vector<ChipSpec> chips = {
      {"stm32f103c8", 0x410, 64, "stm32f1x", 4000},
      {"stm32f303vc", 0x422, 256, "stm32f3x", 8000},
      {"stm32f407vg", 0x413, 1024, "stm32f4x", 8000},
      {"stm32f746ng", 0x449, 1024, "stm32f7x", 8000},
  };
  return chips;
}

const std::vector<ProbeSpec>& all_probes() {
  static const std::vector<ProbeSpec> probes = {
      {"cmsis-dap-v1", "hid"}, {"cmsis-dap-v2", "usb_bulk"}, {"stlink-v2", "hla"},
      {"stlink-v2-1", "hla"},  {"stlink-v3", "hla"},
  };
  return probes;
}

flash::ChipInfo chip_info(const ChipSpec& chip) {
  return flash::chip_from_ids(chip.idcode, chip.flash_kib);
}

const char* scenario_name(Scenario s) {
  switch (s) {
    case Scenario::s1:
      return "S1";
    case Scenario::s2:
      return "S2";
    case Scenario::s3:
      return "S3";
    case Scenario::s4:
      return "S4";
  }
  return "?";
}

std::optional<Scenario> parse_scenario(const std::string& text) {
  for (Scenario s : {Scenario::s1, Scenario::s2, Scenario::s3, Scenario::s4}) {
    const std::string name = scenario_name(s);
    if (text == name || (text.size() == 2 && std::toupper(text[0]) == 'S' && text[1] == name[1]))
      return s;
  }
  return std::nullopt;
}

namespace {

// One SWD write of a data word: 8 request bits, turnaround, 3 ACK bits, turnaround, 32 data
// bits and parity (ARM IHI 0031 ADIv5.2 B4.2.2 "Write", Figure B4-2).
constexpr double kSwdBitsPerWord = 46;

// USB 2.0 limits for a stream of bytes from host to probe.
double usb_seconds(const ProbeSpec& probe, std::uint64_t words) {
  const std::uint64_t bytes = words * 4;
  if (probe.name == "cmsis-dap-v1") {
    // HID reports of 64 bytes on a full-speed interrupt endpoint: at most one per 1 ms frame
    // (USB 2.0 5.7.4, bInterval >= 1 ms). A DAP_TransferBlock report carries 14 words after
    // its 5-byte header (command, DAP index, count, request; CMSIS-DAP DAP_TransferBlock).
    return std::ceil(static_cast<double>(words) / 14.0) * 1e-3;
  }
  if (probe.name == "cmsis-dap-v2" || probe.name == "stlink-v3") {
    // High-speed bulk: at most 13 packets of 512 bytes per 125 us microframe (USB 2.0
    // 5.8.4, Table 5-10).
    return static_cast<double>(bytes) / (13.0 * 512) * 125e-6;
  }
  // ST-Link V2 / V2-1, full-speed bulk: at most 19 packets of 64 bytes per 1 ms frame (USB
  // 2.0 5.8.4, Table 5-9).
  return static_cast<double>(bytes) / (19.0 * 64) * 1e-3;
}

bool all_ff(const std::uint8_t* p, std::size_t n) {
  return std::all_of(p, p + n, [](std::uint8_t b) { return b == 0xFF; });
}

}  // namespace

Physical physical_time(const flash::ChipInfo& chip, const ProbeSpec& probe, unsigned swd_khz,
                       const Content& before, const Content& after) {
  Physical ph;
  // The parallelism probefarm uses at 3.3 V (x32 on F4/F7), and the programming unit.
  const unsigned psize = flash::psize_for_supply(chip, 3300);
  const std::size_t unit = chip.style == flash::FlashStyle::f1 ? 2 : std::size_t{1} << psize;
  std::uint64_t units = 0;
  std::uint64_t erase_ms = 0;
  bool keeps_data = false;  // some sector not erased holds data (a mass erase would lose it)
  for (const flash::FlashSector& s : chip.sectors) {
    const std::size_t off = s.address - chip.flash_base;
    bool must_erase = false;
    for (std::size_t i = off; i < off + s.size && !must_erase; ++i)
      must_erase = (after[i] & ~before[i]) != 0;  // a 0 -> 1 bit needs an erase
    if (must_erase) {
      ++ph.sectors_to_erase;
      erase_ms += flash::sector_erase_time(chip, s.size, psize).typical_ms;
    } else if (!all_ff(&before[off], s.size)) {
      keeps_data = true;
    }
    for (std::size_t i = off; i < off + s.size; i += unit) {
      const bool changed = must_erase ? !all_ff(&after[i], unit)
                                      : !std::equal(&after[i], &after[i] + unit, &before[i]);
      if (changed) ++units;
    }
  }
  const std::uint64_t mass_ms = flash::mass_erase_time(chip, psize).typical_ms;
  if (ph.sectors_to_erase > 0 && !keeps_data && mass_ms < erase_ms) {
    erase_ms = mass_ms;
    ph.mass_erase = true;
  }
  ph.erase_s = static_cast<double>(erase_ms) / 1e3;
  ph.bytes_changed = units * unit;
  ph.program_s = static_cast<double>(flash::program_time_us(chip, ph.bytes_changed, psize)) / 1e6;
  const std::uint64_t words = (ph.bytes_changed + 3) / 4;
  const double swd_s = static_cast<double>(words) * kSwdBitsPerWord / (swd_khz * 1e3);
  ph.link_s = std::max(swd_s, usb_seconds(probe, words));
  return ph;
}

double Row::throughput_kib_s() const {
  const double t = probefarm.virtual_s();
  return t > 0 ? static_cast<double>(image_bytes) / 1024.0 / t : 0;
}

double Row::efficiency() const {
  const double t = probefarm.virtual_s();
  const double need = physical.limit_s();
  return t > 0 && need > 0 ? need / t : 0;
}

double Row::ratio() const {
  const double t = probefarm.virtual_s();
  return openocd.ok() && t > 0 ? openocd.virtual_s() / t : 0;
}

double Row::cpu_per_mib() const {
  return image_bytes > 0 ? probefarm.cpu_seconds / (static_cast<double>(image_bytes) / 1048576.0)
                         : 0;
}

}  // namespace probefarm::bench
