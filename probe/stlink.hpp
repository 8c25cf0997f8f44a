#pragma once
// The ST-Link driver (ST-LINK/V2, ST-LINK/V2-1, STLINK-V3), SWD only: DapProbe over the
// firmware's DP/AP register commands, NativeMemory over its block memory commands. The
// command set itself (CDB layouts, answers, status codes, firmware thresholds) is in
// stlink_commands.hpp.
//
// The firmware runs the SWD packets itself and retries WAIT on its own; what reaches the
// host is one status per command. It has no batching of register operations, so flush()
// sends one command per queued operation. Memory is far faster through native_memory()
// (up to 1 KiB per command) than through DRW.
#include <memory>

#include "probe/dap_probe.hpp"

namespace probefarm::probe {

// Asks the probe for its firmware version (info().firmware_version) and brings it out of
// DFU, SWIM or a debug session an earlier host left behind; does not connect. Throws Error
// probe_io when the USB interface lacks its bulk endpoints or the probe does not answer.
std::unique_ptr<DapProbe> make_stlink(std::unique_ptr<UsbDevice> device, ProbeInfo info);

}  // namespace probefarm::probe
