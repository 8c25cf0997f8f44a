#pragma once
// The probe kinds probefarm-sim can put in front of a board, by the names the command
// line and `ctl stats` use.
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "board.hpp"
#include "usb_device.hpp"

namespace probefarm::sim {

// "cmsis-dap-v2", ...: every kind make_probe() accepts.
std::span<const std::string_view> probe_kinds();

// The serial a probe of `kind` reports when the user gives none. `index` is the board's
// 0-based position on the command line; serials differ per index.
std::string default_probe_serial(std::string_view kind, const ChipInfo& chip, std::size_t index);

// A probe of `kind` attached to `board`, reporting the board's serial. Throws
// std::invalid_argument with a readable message for an unknown kind or a serial the
// probe cannot report.
std::unique_ptr<UsbDevice> make_probe(std::string_view kind, Board& board);

}  // namespace probefarm::sim
