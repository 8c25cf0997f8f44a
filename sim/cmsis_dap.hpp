#pragma once
// The command interpreter of a CMSIS-DAP probe: packets in, packets out, the SWD engine
// and the pins behind it. Transport-independent: the v2 (bulk) and v1 (HID) USB device
// models wrap it. Arm CMSIS-DAP specification v2.1, "Commands".
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "target_port.hpp"

namespace probefarm::sim {

struct CmsisDapConfig {
  std::uint16_t packet_size = 512;  // DAP_Info 0xFF
  std::uint8_t packet_count = 4;    // DAP_Info 0xFE
  std::string vendor = "probefarm";
  std::string product = "probefarm-sim CMSIS-DAP";
  std::string serial;
  std::string protocol_version = "2.1.0";  // DAP_Info 0x04
  std::string target_vendor;               // DAP_Info 0x05
  std::string target_name;                 // DAP_Info 0x06
  std::string board_vendor;                // DAP_Info 0x07
  std::string board_name;                  // DAP_Info 0x08
  std::string firmware_version = "1.0.0";  // DAP_Info 0x09
};

// Fills what the USB probe models take from the board they sit on when `config` leaves it
// empty: the serial and the target identification of DAP_Info 0x05/0x06.
inline void fill_board_identity(CmsisDapConfig& config, const std::string& serial,
                                std::string_view part) {
  if (config.serial.empty()) config.serial = serial;
  if (config.target_vendor.empty()) config.target_vendor = "STMicroelectronics";
  if (config.target_name.empty()) config.target_name = std::string(part);
}

class CmsisDapEngine {
 public:
  virtual ~CmsisDapEngine() = default;
  // One command packet as received from the host. Returns the response packet, or
  // nothing while commands are being queued (DAP_QueueCommands). Advances the target's
  // virtual time by the SWD work the command does.
  virtual std::optional<std::vector<std::uint8_t>> process(
      std::span<const std::uint8_t> request) = 0;
};

std::unique_ptr<CmsisDapEngine> make_cmsis_dap_engine(TargetPort& target, CmsisDapConfig config);

}  // namespace probefarm::sim
