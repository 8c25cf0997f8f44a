#pragma once
// One job (or one quick action) on one probe, on the probe actor's thread: open the probe,
// attach to the target, identify it, run the operation through flash::Programmer the way the
// CLI does, close the probe. Nothing here keeps state between jobs: the probe is opened
// afresh each time, so an unplug/replug in between costs nothing.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "flash/image.hpp"
#include "flash/target.hpp"
#include "probe/dap_probe.hpp"
#include "probe/discovery.hpp"
#include "server/model.hpp"

namespace probefarm::server {

class ImageStore;
class Scheduler;

// An open probe and its attached target. Members are declared so that the target goes
// before the probe it talks through.
struct ProbeConnection {
  std::unique_ptr<probe::DapProbe> probe;
  std::unique_ptr<flash::Target> target;
};

struct ConnectOptions {
  std::uint32_t speed_khz = 4000;
  bool halt = false;
  bool connect_under_reset = false;
};

// Opens the probe on `usb` and attaches. Throws Error.
ProbeConnection connect_probe(probe::UsbContext& usb, const probe::ProbeInfo& info,
                              const ConnectOptions& options);

// The 96-bit unique device ID as 24 hex digits, word at the lowest address first; "" for a
// family whose UID address is not known.
std::string read_unique_id(flash::Target& target);

// Chip, IDs, core, memories, sectors, UID and RDP level of an attached target. UID and RDP
// are best effort (left empty / -1) unless the probe itself failed.
TargetInfo describe_target(flash::Target& target);

// Is a probe with this serial on the bus right now?
bool probe_present(const std::string& serial);

struct JobEnv {
  probe::UsbContext* usb = nullptr;  // the actor's own libusb context
  probe::ProbeInfo info;
  std::uint32_t speed_khz = 4000;    // the probe's configured (or the daemon's default) clock
  bool connect_under_reset = false;  // likewise
  ImageStore* images = nullptr;
  Scheduler* scheduler = nullptr;
  std::function<bool()> offline;  // has the probe manager seen the probe leave?
};

struct JobOutcome {
  std::optional<TargetInfo> target;  // what the job's attach found
  std::string firmware;              // the probe's firmware version, once it was opened
  bool unplugged = false;            // the job failed because the probe left the bus
};

// Writes `bytes` into `image` at `address`: over an image segment that holds the whole
// range, or as a segment of its own where the image has no data but the chip has flash
// (the sector is then programmed like any other). Error(usage) when the range straddles
// a segment's edge or leaves both the image and the flash.
void patch_image(flash::Image& image, std::uint32_t flash_base, std::uint32_t flash_size,
                 std::uint32_t address, const std::vector<std::uint8_t>& bytes);

// Runs a job that Scheduler::take handed out and leaves it in a final state (succeeded,
// failed or cancelled) with its result, phase times and error filled in. Never throws.
JobOutcome run_job(Job& job, const JobEnv& env);

}  // namespace probefarm::server
