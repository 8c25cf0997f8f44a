// The console's flash commands and the STM32 driver commands (stm32f1x / stm32f2x), through
// the engine (flash::Programmer, Stm32Flash, option_bytes) on the session's target.
#include <chrono>
#include <cstdio>

#include "flash/option_bytes.hpp"
#include "flash/programmer.hpp"
#include "flash/stm32_flash.hpp"
#include "probe/error.hpp"
#include "server/console.hpp"
#include "server/image_store.hpp"
#include "server/job_runner.hpp"
#include "server/probe_session.hpp"

namespace probefarm::server {

using namespace console_detail;

namespace {

using Clock = std::chrono::steady_clock;

// OpenOCD's driver names: "stm32f1x" drives the F1/F3 controller (PM0075, RM0316 4),
// "stm32f2x" the F2/F4/F7 one (RM0090 3, RM0385 3).
const char* driver_name(const flash::ChipInfo& chip) {
  return chip.style == flash::FlashStyle::f1 ? "stm32f1x" : "stm32f2x";
}

std::string bank_line(const flash::ChipInfo& chip) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "#0 : %s at 0x%08x, size 0x%08x, buswidth 0, chipwidth 0\n",
                driver_name(chip), chip.flash_base, chip.flash_size);
  return buf;
}

std::string sector_line(const flash::ChipInfo& chip, std::size_t i, const char* state) {
  const flash::FlashSector& s = chip.sectors[i];
  char buf[128];
  std::snprintf(buf, sizeof buf, "\t#%3zu: 0x%08x (0x%x %ukB) %s\n", i, s.address - chip.flash_base,
                s.size, s.size / 1024, state);
  return buf;
}

// The model has one bank per chip (a dual-bank F42x/43x is one run of sectors): bank 0.
void check_bank(const std::string& text, const std::string& form) {
  const std::uint32_t bank = parse_u32(text, form);
  if (bank != 0)
    throw Error(ErrorCategory::usage, "flash bank " + std::to_string(bank) + " does not exist",
                "this chip has one flash bank, 0 ('flash banks' lists it)");
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string rate_text(std::uint64_t bytes, double seconds) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "in %.6fs (%.3f KiB/s)", seconds,
                seconds > 0 ? static_cast<double>(bytes) / 1024.0 / seconds : 0.0);
  return buf;
}

std::uint64_t data_bytes(const flash::Image& image) {
  std::uint64_t n = 0;
  for (const auto& s : image.segments)
    n += s.data.size();
  return n;
}

// Flash work runs the loader, which needs the core halted; say so when the console halted
// it (OpenOCD would refuse with "target not halted").
std::string halt_for_flash(protocol::CortexM& core) {
  if (core.is_halted()) return "";
  core.halt();
  return "target halted for flash access\n";
}

}  // namespace

std::string Console::cmd_flash(const Args& a) {
  const char* form =
      "flash banks|info|probe|erase_sector|erase_check|write_image|verify_image|read_bank ...";
  if (a.size() < 2) usage(form);
  const std::string& sub = a[1];
  if (sub == "banks") {
    if (a.size() != 2) usage("flash banks");
    std::string out;
    with_target([&](ProbeConnection& c) { out = bank_line(c.target->chip()); });
    return out;
  }
  if (sub == "info") {
    if (a.size() != 3) usage("flash info bank_id");
    check_bank(a[2], "flash info bank_id");
    std::string out;
    with_target([&](ProbeConnection& c) {
      const flash::ChipInfo& chip = c.target->chip();
      const flash::ProtectionState p = flash::Stm32Flash(c.target->memory(), chip).protection();
      out = bank_line(chip);
      for (std::size_t i = 0; i < chip.sectors.size(); ++i)
        out += sector_line(
            chip, i,
            i < p.write_protected.size() && p.write_protected[i] ? "protected" : "not protected");
      char buf[160];
      std::snprintf(buf, sizeof buf,
                    "%s - Rev: 0x%04x, %u sectors, %u KiB, read protection level %u\n",
                    chip.name.c_str(), chip.rev_id, static_cast<unsigned>(chip.sectors.size()),
                    chip.flash_size / 1024, p.rdp_level);
      out += buf;
    });
    return out;
  }
  if (sub == "probe") {
    if (a.size() != 3) usage("flash probe bank_id");
    check_bank(a[2], "flash probe bank_id");
    std::string out;
    with_target([&](ProbeConnection& c) {
      // Read the ID and size registers again rather than trusting the attach's answer.
      const flash::ChipInfo chip = flash::detect_chip(c.target->memory());
      char buf[192];
      std::snprintf(buf, sizeof buf,
                    "device id = 0x%08x\nflash size = %u KiB\nflash '%s' found at 0x%08x\n",
                    (std::uint32_t{chip.rev_id} << 16) | chip.dev_id, chip.flash_size / 1024,
                    driver_name(chip), chip.flash_base);
      out = buf;
    });
    return out;
  }
  if (sub == "erase_sector") return flash_erase_sector(a);
  if (sub == "erase_check") return flash_erase_check(a);
  if (sub == "write_image") return flash_write_image(a);
  if (sub == "verify_image") return flash_verify_image(a);
  if (sub == "read_bank") return flash_read_bank(a);
  usage(form);
}

std::string Console::flash_erase_sector(const Args& a) {
  const char* form = "flash erase_sector bank_id first_sector_num (last_sector_num|last)";
  if (a.size() != 5) usage(form);
  check_bank(a[2], form);
  const std::uint32_t first = parse_u32(a[3], form);
  const bool to_end = a[4] == "last";
  const std::uint32_t last_given = to_end ? 0 : parse_u32(a[4], form);
  audited_ = true;
  std::string out;
  with_target([&](ProbeConnection& c) {
    const flash::ChipInfo& chip = c.target->chip();
    const auto n = static_cast<std::uint32_t>(chip.sectors.size());
    const std::uint32_t last = to_end ? n - 1 : last_given;
    if (first > last || last >= n)
      throw Error(ErrorCategory::usage,
                  "flash erase_sector: sectors " + std::to_string(first) + " to " +
                      std::to_string(last) + " are not within 0.." + std::to_string(n - 1),
                  "'flash info 0' lists the sectors");
    out = halt_for_flash(c.target->core());
    const auto start = Clock::now();
    const std::uint32_t address = chip.sectors[first].address;
    flash::Programmer(*c.target).erase(
        address, static_cast<std::uint32_t>(chip.sectors[last].end() - address));
    char buf[128];
    std::snprintf(buf, sizeof buf, "erased sectors %u through %u on flash bank 0 in %.6fs\n", first,
                  last, seconds_since(start));
    out += buf;
  });
  return out;
}

std::string Console::flash_erase_check(const Args& a) {
  const char* form = "flash erase_check bank_id";
  if (a.size() != 3) usage(form);
  check_bank(a[2], form);
  std::string out;
  with_target([&](ProbeConnection& c) {
    const flash::ChipInfo& chip = c.target->chip();
    out = halt_for_flash(c.target->core());
    flash::Programmer programmer(*c.target);
    // A sector is blank when the loader's CRC of it equals that of 0xFF bytes: verify it
    // against an image of 0xFF, one sector at a time so that each gets its answer.
    for (std::size_t i = 0; i < chip.sectors.size(); ++i) {
      flash::Image blank;
      blank.name = "erased sector";
      blank.segments.push_back(
          {chip.sectors[i].address, std::vector<std::uint8_t>(chip.sectors[i].size, 0xFF)});
      bool erased = true;
      try {
        programmer.verify(blank);
      } catch (const Error& e) {
        if (e.category() != ErrorCategory::verify) throw;
        erased = false;
      }
      out += sector_line(chip, i, erased ? "erased" : "not erased");
    }
  });
  return out;
}

namespace {

struct FoundImage {
  ImageMeta meta;
  flash::Image image;
};

FoundImage find_image(ImageStore* images, const std::string& ref, std::uint32_t offset) {
  if (!images) throw Error(ErrorCategory::internal, "the console has no image store");
  auto meta = images->find(ref);
  if (!meta)
    throw Error(ErrorCategory::image, "no image \"" + ref + "\" in the image store",
                "upload it first (POST /api/v1/images); give its sha256, a prefix or its name");
  FoundImage f{*meta, images->load(*meta)};
  // OpenOCD's offset is added to every address of the image.
  if (offset) {
    for (auto& s : f.image.segments) {
      if (s.end() + offset > 0x100000000ull)
        throw Error(ErrorCategory::image, "offset " + hex8(offset) + " moves image \"" +
                                              meta->name + "\" past the end of memory");
      s.address += offset;
    }
  }
  return f;
}

}  // namespace

std::string Console::flash_write_image(const Args& a) {
  const char* form = "flash write_image [erase] image [offset]";
  std::size_t i = 2;
  const bool erase = a.size() > i && a[i] == "erase";
  if (erase) ++i;
  if (a.size() < i + 1 || a.size() > i + 2) usage(form);
  const std::uint32_t offset = a.size() == i + 2 ? parse_u32(a[i + 1], form) : 0;
  FoundImage f = find_image(env_.images, a[i], offset);
  image_sha256_ = f.meta.sha256;
  audited_ = true;
  std::string out;
  with_target([&](ProbeConnection& c) {
    const flash::ChipInfo& chip = c.target->chip();
    flash::check_fits(f.image, chip.memory(), chip.flash_size);
    out = halt_for_flash(c.target->core());
    // The engine erases exactly the sectors that need it (and skips unchanged ones) with
    // or without "erase"; the word is accepted because OpenOCD scripts carry it.
    if (erase) out += "auto erase enabled\n";
    const auto start = Clock::now();
    const flash::FlashReport r = flash::Programmer(*c.target).flash(f.image, flash::FlashOptions{});
    const double took = seconds_since(start);
    const std::uint64_t bytes = data_bytes(f.image);
    out += "wrote " + std::to_string(bytes) + " bytes from image " + f.meta.name + " (" +
           f.meta.sha256.substr(0, 12) + ") " + rate_text(bytes, took) + "\n";
    out += std::to_string(r.sectors_erased) + " sectors erased, " +
           std::to_string(r.sectors_skipped) + " unchanged sectors skipped" +
           (r.plan.mass_erase ? " (mass erase)" : "") + (r.verified ? ", verified" : "") + "\n";
  });
  return out;
}

std::string Console::flash_verify_image(const Args& a) {
  const char* form = "flash verify_image image [offset]";
  if (a.size() < 3 || a.size() > 4) usage(form);
  const std::uint32_t offset = a.size() == 4 ? parse_u32(a[3], form) : 0;
  FoundImage f = find_image(env_.images, a[2], offset);
  std::string out;
  with_target([&](ProbeConnection& c) {
    const flash::ChipInfo& chip = c.target->chip();
    flash::check_fits(f.image, chip.memory(), chip.flash_size);
    out = halt_for_flash(c.target->core());
    const auto start = Clock::now();
    flash::Programmer(*c.target).verify(f.image);
    const std::uint64_t bytes = data_bytes(f.image);
    out += "verified " + std::to_string(bytes) + " bytes from image " + f.meta.name + " (" +
           f.meta.sha256.substr(0, 12) + ") " + rate_text(bytes, seconds_since(start)) + "\n";
  });
  return out;
}

std::string Console::flash_read_bank(const Args& a) {
  const char* form = "flash read_bank bank_id name [offset [length]]";
  if (a.size() < 4 || a.size() > 6) usage(form);
  check_bank(a[2], form);
  const std::string name = a[3];
  const std::uint32_t offset = a.size() >= 5 ? parse_u32(a[4], form) : 0;
  const std::optional<std::uint32_t> length =
      a.size() == 6 ? std::optional(parse_u32(a[5], form)) : std::nullopt;
  if (!env_.images) throw Error(ErrorCategory::internal, "the console has no image store");
  std::vector<std::uint8_t> data;
  std::uint32_t address = 0;
  double took = 0;
  with_target([&](ProbeConnection& c) {
    const flash::ChipInfo& chip = c.target->chip();
    if (offset >= chip.flash_size ||
        (length && (*length == 0 || *length > chip.flash_size - offset)))
      throw Error(ErrorCategory::usage,
                  "flash read_bank: offset " + hex8(offset) +
                      (length ? " and length " + std::to_string(*length) : std::string()) +
                      " are not within the " + std::to_string(chip.flash_size) + "-byte bank",
                  "'flash banks' shows the bank's size");
    address = chip.flash_base + offset;
    data.resize(length ? *length : chip.flash_size - offset);
    const auto start = Clock::now();
    flash::Programmer(*c.target).read(address, data);
    took = seconds_since(start);
  });
  // Stored off the actor's thread: the probe has nothing to do with it.
  UploadParams params;
  params.name = name;
  params.format = "bin";
  params.bin_address = address;
  const ImageMeta meta = env_.images->add(data, params, env_.who);
  return "wrote " + std::to_string(data.size()) + " bytes to image " + name +
         " from flash bank 0 at offset " + hex8(offset) + " " + rate_text(data.size(), took) +
         "\nsha256 " + meta.sha256 + "\n";
}

std::string Console::cmd_stm32(const Args& a) {
  const std::string& driver = a[0];
  const std::string form = driver + " unlock|options_read bank_id";
  if (a.size() != 3 || (a[1] != "unlock" && a[1] != "options_read")) usage(form);
  check_bank(a[2], form);
  const bool unlock = a[1] == "unlock";
  if (unlock) {
    // A guarded operation: level 1 -> 0 mass-erases the chip.
    if (env_.role != Role::admin)
      throw Error(ErrorCategory::protection,
                  driver + " unlock mass-erases the chip; it needs an admin token",
                  "reconnect the console with an admin token");
    audited_ = true;
  }
  std::string out;
  with_target([&](ProbeConnection& c) {
    flash::Target& target = *c.target;
    const flash::ChipInfo& chip = target.chip();
    const std::string mine = driver_name(chip);
    if (mine != driver)
      throw Error(ErrorCategory::usage, driver + " does not drive this chip (" + chip.name +
                                            "): use '" + mine + " " + a[1] + " 0'");
    if (unlock) {
      const flash::UnlockReport r = flash::unlock_read_protection(target);
      if (!r.changed) {
        out = driver + ": the device is not read protected (level 0); nothing to do\n";
        return;
      }
      out = driver + " unlocked: read protection level " + std::to_string(r.level_before) +
            " -> 0, the chip mass-erased its flash" +
            (r.flash_blank ? " (checked blank)" : " (NOT blank afterwards)") + "\n" +
            "option bytes reloaded by " + r.reload + "\n";
      return;
    }
    const flash::OptionBytes ob = flash::read_option_bytes(target);
    out = driver + " option bytes of " + chip.name + ":\n";
    for (const auto& field : flash::describe(chip, ob))
      out += "  " + field.key + " = " + field.shown +
             (field.meaning.empty() ? "" : " (" + field.meaning + ")") + "\n";
  });
  return out;
}

}  // namespace probefarm::server
