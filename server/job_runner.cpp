#include "server/job_runner.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <vector>

#include "flash/image.hpp"
#include "flash/option_bytes.hpp"
#include "flash/programmer.hpp"
#include "probe/error.hpp"
#include "probe/usb_libusb.hpp"
#include "server/image_store.hpp"
#include "server/scheduler.hpp"

namespace probefarm::server {
namespace {

using Clock = std::chrono::steady_clock;

// Unique device ID registers: F1 RM0008 30.2, F3 RM0316 34.1, F4 RM0090 39.1,
// F7 RM0385 41.1.
std::uint32_t uid_address(flash::Family family) {
  switch (family) {
    case flash::Family::f1:
      return 0x1FFFF7E8;
    case flash::Family::f3:
      return 0x1FFFF7AC;
    case flash::Family::f4:
      return 0x1FFF7A10;
    case flash::Family::f7:
      return 0x1FF0F420;
  }
  return 0;
}

std::string hex32(std::uint32_t v) {
  char buf[12];
  std::snprintf(buf, sizeof buf, "%08X", v);
  return buf;
}

// Wall time per phase, in the order phases first appear; a phase entered again (the
// pipeline's "read" of kept bytes between sectors) adds to its first entry.
class PhaseClock {
 public:
  void enter(std::string_view phase) {
    if (phase == current_) return;
    stop();
    current_ = std::string(phase);
    since_ = Clock::now();
  }
  void stop() {
    if (current_.empty()) return;
    const double s = std::chrono::duration<double>(Clock::now() - since_).count();
    bool found = false;
    for (auto& p : phases_)
      if (p.phase == current_) {
        p.seconds += s;
        found = true;
      }
    if (!found) phases_.push_back({current_, s});
    current_.clear();
  }
  std::vector<PhaseTime> take() {
    stop();
    return std::move(phases_);
  }

 private:
  std::string current_;
  Clock::time_point since_{};
  std::vector<PhaseTime> phases_;
};

flash::EraseMode erase_mode(EraseMode m) {
  switch (m) {
    case EraseMode::automatic:
      return flash::EraseMode::automatic;
    case EraseMode::sectors:
      return flash::EraseMode::sectors;
    case EraseMode::all:
      return flash::EraseMode::all;
  }
  return flash::EraseMode::automatic;
}

std::uint64_t data_bytes(const flash::Image& image) {
  std::uint64_t n = 0;
  for (const auto& seg : image.segments)
    n += seg.data.size();
  return n;
}

bool contains(std::string_view text, std::string_view needle) {
  return text.find(needle) != std::string_view::npos;
}

// Raised from the progress callback; the runner recognises it by its own flag, so whatever
// the pipeline wraps around it on the way out does not matter.
Error cancelled_error() {
  return Error(ErrorCategory::usage, "cancelled");
}

OptionBytesView option_view(const flash::ChipInfo& chip, const flash::OptionBytes& ob) {
  OptionBytesView v;
  v.rdp_level = ob.rdp_level;
  for (const auto& f : flash::describe(chip, ob))
    v.values.emplace_back(f.key, f.value);
  for (const auto& g : flash::protection_groups(chip))
    if (flash::group_protected(chip, ob, g)) v.write_protected.push_back({g.address, g.size});
  return v;
}

}  // namespace

void patch_image(flash::Image& image, std::uint32_t flash_base, std::uint32_t flash_size,
                 std::uint32_t address, const std::vector<std::uint8_t>& bytes) {
  const std::uint64_t end = std::uint64_t{address} + bytes.size();
  for (auto& seg : image.segments) {
    if (address >= seg.address && end <= seg.end()) {
      std::copy(bytes.begin(), bytes.end(), seg.data.begin() + (address - seg.address));
      return;
    }
    if (address < seg.end() && end > seg.address)
      throw Error(ErrorCategory::usage,
                  "serial number at 0x" + hex32(address) + " (" + std::to_string(bytes.size()) +
                      " bytes) straddles the edge of the image segment at 0x" + hex32(seg.address),
                  "put it wholly inside the image's data or wholly outside it");
  }
  if (address < flash_base || end > std::uint64_t{flash_base} + flash_size)
    throw Error(ErrorCategory::usage,
                "serial number at 0x" + hex32(address) +
                    " is neither in the image nor in the chip's flash (0x" + hex32(flash_base) +
                    ", " + std::to_string(flash_size) + " bytes)",
                "choose an address inside the image or the flash");
  flash::Segment seg;
  seg.address = address;
  seg.data = bytes;
  auto pos = std::find_if(image.segments.begin(), image.segments.end(),
                          [&](const flash::Segment& s) { return s.address > address; });
  image.segments.insert(pos, std::move(seg));
}

ProbeConnection connect_probe(probe::UsbContext& usb, const probe::ProbeInfo& info,
                              const ConnectOptions& options) {
  ProbeConnection c;
  c.probe = probe::open_dap_probe(usb, info);
  flash::AttachOptions attach;
  attach.speed_khz = options.speed_khz;
  attach.halt = options.halt;
  attach.connect_under_reset = options.connect_under_reset;
  c.target = std::make_unique<flash::Target>(*c.probe, attach);
  return c;
}

std::string read_unique_id(flash::Target& target) {
  const std::uint32_t base = uid_address(target.chip().family);
  if (!base) return "";
  std::string uid;
  for (std::uint32_t i = 0; i < 3; ++i)
    uid += hex32(target.memory().read32(base + 4 * i));
  return uid;
}

TargetInfo describe_target(flash::Target& target) {
  const flash::ChipInfo& c = target.chip();
  TargetInfo t;
  t.chip = c.name;
  t.dev_id = c.dev_id;
  t.rev_id = c.rev_id;
  t.core = c.core;
  t.flash_base = c.flash_base;
  t.flash_size = c.flash_size;
  t.ram_base = c.ram_base;
  t.ram_size = c.ram_size;
  t.sectors = static_cast<unsigned>(c.sectors.size());
  t.speed_khz = target.speed_khz();
  // The ID and protection level are useful, not essential: a target that refuses them is
  // still a target. A probe that fails is not, and that error goes up.
  try {
    t.unique_id = read_unique_id(target);
  } catch (const Error& e) {
    if (e.category() == ErrorCategory::probe_io) throw;
  }
  try {
    t.rdp_level = static_cast<int>(flash::read_option_bytes(target).rdp_level);
  } catch (const Error& e) {
    if (e.category() == ErrorCategory::probe_io) throw;
  }
  return t;
}

bool probe_present(const std::string& serial) {
  try {
    // A context of its own, for the reason ProbeManager's watcher has one: listing opens
    // and closes devices.
    auto usb = probe::make_libusb_context();
    for (const auto& p : probe::list_probes(*usb).probes)
      if (p.serial == serial) return true;
  } catch (const Error&) {
  }
  return false;
}

JobOutcome run_job(Job& job, const JobEnv& env) {
  JobOutcome outcome;
  PhaseClock clock;
  bool cancelled = false;
  const JobSpec& spec = job.spec;
  const std::int64_t id = job.id;
  auto report = [&](std::string_view phase, std::uint64_t done, std::uint64_t total) {
    clock.enter(phase);
    if (!env.scheduler->progress(id, phase, done, total)) {
      cancelled = true;
      throw cancelled_error();
    }
  };
  auto progress = [&](const flash::Progress& p) { report(p.phase, p.done, p.total); };

  try {
    // A missing or changed image fails the job before the probe is touched.
    std::optional<flash::Image> image;
    if (spec.operation == Operation::flash || spec.operation == Operation::verify) {
      auto meta = env.images->find(spec.image);
      if (!meta)
        throw Error(ErrorCategory::image, "image " + spec.image + " is not in the image store",
                    "upload it again (POST /api/v1/images) and resubmit the job");
      image = env.images->load(*meta);
      job.result.image_bytes = data_bytes(*image);
    }

    report("attach", 0, 1);
    ConnectOptions co;
    co.speed_khz = spec.speed_khz.value_or(env.speed_khz);
    co.connect_under_reset = spec.connect_under_reset.value_or(env.connect_under_reset);
    // Memory reads leave the firmware running, as `probefarm read` does.
    co.halt = spec.operation != Operation::read;
    ProbeConnection conn = connect_probe(*env.usb, env.info, co);
    outcome.firmware = conn.probe->info().firmware_version;
    flash::Target& target = *conn.target;
    outcome.target = describe_target(target);
    job.chip = outcome.target->chip;
    job.target_uid = outcome.target->unique_id;
    report("attach", 1, 1);

    flash::Programmer programmer(target, progress);
    const flash::ChipInfo& chip = target.chip();
    // Option-byte work reports its own progress; a guarded operation is not abandoned
    // half-way (an RDP regression interrupted leaves the chip neither here nor there).
    auto option_progress = [&](std::uint32_t elapsed, std::uint32_t expected) {
      clock.enter("option_bytes");
      env.scheduler->progress(id, "option_bytes", elapsed, expected);
    };
    // Writes `wanted` and reloads the option bytes; the job's result shows what is in force.
    auto write_options = [&](const flash::OptionBytes& wanted) {
      flash::OptionWriteOptions wo;
      wo.progress = option_progress;
      const flash::OptionWriteReport rep = flash::write_option_bytes(target, wanted, wo);
      job.result.option_bytes = option_view(chip, rep.after);
      job.result.option_bytes->changed = !rep.reload.empty();
      job.result.option_bytes->reload = rep.reload;
    };
    switch (spec.operation) {
      case Operation::flash: {
        if (spec.serial) {
          if (!job.serial_value)
            throw Error(ErrorCategory::internal,
                        "job " + std::to_string(id) + " has no serial number allocated");
          auto counter = env.scheduler->counter(spec.serial->counter);
          if (!counter)
            throw Error(ErrorCategory::usage,
                        "serial-number counter '" + spec.serial->counter + "' does not exist");
          patch_image(*image, chip.flash_base, chip.flash_size, spec.serial->address,
                      counter_bytes(*counter, *job.serial_value));
        }
        flash::check_fits(*image, chip.memory(), chip.flash_size);
        flash::FlashOptions fo;
        fo.verify = spec.verify;
        fo.readback_verify = spec.readback;
        fo.erase = erase_mode(spec.erase);
        fo.skip_unchanged = spec.skip_unchanged;
        const flash::FlashReport r = programmer.flash(*image, fo);
        job.result.bytes_programmed = r.bytes_programmed;
        job.result.sectors_erased = r.sectors_erased;
        job.result.sectors_skipped = r.sectors_skipped;
        unsigned programmed = 0;
        for (const auto& s : r.plan.sectors)
          if (s.action != flash::SectorAction::skip) ++programmed;
        job.result.sectors_programmed = programmed;
        job.result.mass_erase = r.plan.mass_erase;
        job.result.verified = r.verified;
        break;
      }
      case Operation::verify:
        flash::check_fits(*image, chip.memory(), chip.flash_size);
        programmer.verify(*image, spec.readback);
        job.result.verified = true;
        break;
      case Operation::erase:
        if (spec.address && spec.size) {
          programmer.erase(*spec.address, *spec.size);
          const std::uint64_t end = std::uint64_t{*spec.address} + *spec.size;
          for (const auto& s : chip.sectors)
            if (s.address >= *spec.address && s.end() <= end) ++job.result.sectors_erased;
        } else {
          programmer.mass_erase();
          job.result.mass_erase = true;
          job.result.sectors_erased = static_cast<unsigned>(chip.sectors.size());
        }
        break;
      case Operation::read: {
        // Without a range: the whole flash, a backup that flashes back as it is.
        const std::uint32_t address = spec.address.value_or(chip.flash_base);
        const std::uint32_t size = spec.size.value_or(chip.flash_size);
        std::vector<std::uint8_t> data(size);
        programmer.read(address, data);
        job.result.image_bytes = data.size();
        job.result.read_address = address;
        job.result.read_size = size;
        UploadParams params;
        params.name =
            "read-" + job.probe + "-0x" + hex32(address) + "-" + std::to_string(size) + ".bin";
        params.format = "bin";
        params.bin_address = address;
        job.result.output_image = env.images->add(data, params, job.submitted_by).sha256;
        break;
      }
      case Operation::option_bytes: {
        const flash::OptionBytes current = flash::read_option_bytes(target);
        if (spec.option_set.empty()) {
          job.result.option_bytes = option_view(chip, current);
          break;
        }
        // Every assignment is checked before anything is written, as the CLI does; RDP
        // level 2 stays refused here (apply_assignment wants "2-permanent", and the
        // write below does not allow it).
        flash::OptionBytes wanted = current;
        for (const auto& [key, value] : spec.option_set)
          flash::apply_assignment(chip, wanted, key, value);
        write_options(wanted);
        break;
      }
      case Operation::protect: {
        const auto groups =
            flash::groups_in_range(chip, spec.address.value_or(0), spec.size.value_or(0));
        flash::OptionBytes wanted = flash::read_option_bytes(target);
        for (const auto& g : groups)
          flash::set_group_protected(chip, wanted, g, spec.write_protect);
        write_options(wanted);
        break;
      }
      case Operation::unlock: {
        const flash::UnlockReport rep = flash::unlock_read_protection(target, option_progress);
        job.result.mass_erase = rep.changed;
        job.result.option_bytes = option_view(chip, flash::read_option_bytes(target));
        job.result.option_bytes->changed = rep.changed;
        job.result.option_bytes->reload = rep.reload;
        if (rep.changed && !rep.flash_blank)
          throw Error(ErrorCategory::verify,
                      "read protection removed, but the flash is not blank afterwards",
                      "erase the chip (an erase job without a range) and check again");
        break;
      }
    }
    if (spec.reset && (spec.operation == Operation::flash || spec.operation == Operation::erase)) {
      report("reset", 0, 1);
      target.core().reset(protocol::ResetKind::sysresetreq, false);
      report("reset", 1, 1);
    }
    job.state = JobState::succeeded;
    job.error.reset();
  } catch (const Error& e) {
    if (cancelled) {
      job.state = JobState::cancelled;
      // Scheduler::finish names who asked.
      job.error = JobError{"cancelled", "cancelled", ""};
    } else {
      job.state = JobState::failed;
      std::string message(e.message());
      std::string category(category_name(e.category()));
      const bool io = e.category() == ErrorCategory::probe_io ||
                      e.category() == ErrorCategory::probe_not_found ||
                      e.category() == ErrorCategory::timeout ||
                      e.category() == ErrorCategory::target_not_responding;
      // A probe that left says so plainly, whatever layer noticed first.
      if ((env.offline && env.offline()) || (io && !probe_present(env.info.serial))) {
        outcome.unplugged = true;
        category = "probe_io";
        if (!contains(message, "unplugged"))
          message = "probe " + env.info.serial + " was unplugged: " + message;
      }
      job.error = JobError{category, message, e.hint()};
    }
  } catch (const std::exception& e) {
    job.state = JobState::failed;
    job.error = JobError{"internal", std::string("internal error: ") + e.what(),
                         "this is a bug in probefarmd; please report it with the log"};
  }
  job.result.phases = clock.take();
  return outcome;
}

}  // namespace probefarm::server
