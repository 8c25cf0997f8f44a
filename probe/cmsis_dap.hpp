#pragma once
// The CMSIS-DAP driver: a DapProbe over a CMSIS-DAP v1 (HID reports on the claimed HID
// interface's interrupt endpoints) or v2 (vendor interface, bulk endpoints) probe, in SWD
// mode. It knows the probe only through UsbDevice, so tests can hand it any implementation.
//
// What it does with the queue: DP/AP accesses become DAP_Transfer packets, runs of accesses
// to one AP register DAP_TransferBlock packets (cmsis_dap_packets.hpp); up to the probe's
// packet count are in flight at once; DP SELECT is written by the driver only when the
// AP, AP bank or DP bank changes.
//
// Arm CMSIS-DAP specification v2.1 (arm-software.github.io/CMSIS_5/DAP/html).
#include <memory>

#include "probe/dap_probe.hpp"

namespace probefarm::probe {

// Takes the opened device with `info.interface_number` claimed (open_probe), asks the probe
// for its firmware version, capabilities, packet size and count (DAP_Info), and returns the
// driver, not yet connected. Throws Error(probe_io) if the interface or its endpoints are
// missing or the probe does not answer DAP_Info sensibly.
std::unique_ptr<DapProbe> make_cmsis_dap(std::unique_ptr<UsbDevice> device, ProbeInfo info);

}  // namespace probefarm::probe
