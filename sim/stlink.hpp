#pragma once
// The command interpreter of an ST-Link probe (ST-LINK/V2, ST-LINK/V2-1, STLINK-V3): the
// 16-byte command packets a host sends on the bulk OUT endpoint, the data phases of write
// commands, the responses for the bulk IN endpoint, and the SWD engine behind them.
// Transport-independent: UsbStLink (usb_stlink.hpp) wraps it as a USB device.
//
// ST does not publish the command set. Command codes, response layouts and status codes
// are as observed from ST-Link firmware behaviour (the protocol every host tool speaks);
// product facts (USB identities, speeds, firmware names) come from UM1075 (ST-LINK/V2
// user manual), UM2448 (STLINK-V3SET user manual) and the ST-LINK firmware release notes.
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "target_port.hpp"

namespace probefarm::sim {

enum class StLinkVariant { v2, v2_1, v3 };

// What a variant reports about itself (GET_VERSION / GET_VERSION_EX).
struct StLinkIdentity {
  std::uint16_t vendor_id;
  std::uint16_t product_id;
  unsigned stlink;  // hardware generation: 2 or 3
  unsigned jtag;    // debug (JTAG/SWD) firmware version "Jn"
  unsigned swim;    // SWIM firmware version "Sn" (0: none)
  unsigned msd;     // mass-storage firmware version "Mn" (0: none)
  unsigned bridge;  // bridge firmware version "Bn" (0: none)
};

const StLinkIdentity& stlink_identity(StLinkVariant variant);

class StLinkEngine {
 public:
  virtual ~StLinkEngine() = default;

  // One bulk OUT transfer as the host sent it: a command packet (its first 16 bytes; a
  // shorter one reads as if padded with zeros), or (part of) the data phase a write
  // command announced. Returns the responses it produced, in order (a command without a
  // reply produces none). Advances the target's virtual time by the SWD work done.
  virtual std::vector<std::vector<std::uint8_t>> receive(
      std::span<const std::uint8_t> transfer) = 0;

  // Data-phase bytes the last write command still expects.
  virtual std::size_t data_expected() const = 0;
};

std::unique_ptr<StLinkEngine> make_stlink_engine(TargetPort& target, StLinkVariant variant);

}  // namespace probefarm::sim
