#pragma once
// The ST-Link's command pipe (stlink.cpp speaks the command set over it): a 16-byte command
// block on the bulk OUT endpoint, its answer on the bulk IN endpoint, every transfer with a
// deadline, and the transport-fault policy.
//
// Retry policy. The ST-Link answers every command in order and has no sequence numbers, so
// after a lost, STALLed or garbled transfer the host cannot tell whether the command ran.
// A command is sent again only when running it twice does what running it once does, and
// the caller says so (`may_repeat`): identity, mode, voltage and clock commands, nRST,
// ENTER, INIT_AP, DP register accesses, AP reads other than DRW, AP writes to CSW or TAR,
// READMEM (it names its own address) and GETLASTRWSTATUS2. WRITEMEM and DRW/BDn writes are
// never repeated: the data may have reached memory (FLASH_KEYR, FLASH_CR, the loader's ring
// buffer are not idempotent), and a lost data phase leaves the firmware waiting for data,
// so that any command sent next would be taken as data. Those end in Error(probe_io)
// naming the fault. Before a re-send, the answers the probe still holds are drained.
//
// A garbled answer is never taken as data: it must arrive at its full size (a short USB
// packet ends an answer), and callers check its fixed fields (`valid`).
#include <array>
#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>

#include "probe/stlink_commands.hpp"
#include "probe/transport_fault.hpp"
#include "probe/usb.hpp"

namespace probefarm::probe::stlink {

using namespace std::chrono_literals;

// USB deadlines. Every command is answered within milliseconds; the margin covers a busy
// host. A memory command's data phase is at most 1 KiB, a few ms even at full speed.
constexpr auto kCommandTimeout = 1000ms;
constexpr auto kDataTimeout = 2000ms;

// Transport faults are retried this many times in all when the command is repeatable.
// Before a retry, whatever the probe still holds is read and dropped, each read waiting at
// most kDrainTimeout: the firmware queues an answer within microseconds of its command.
constexpr unsigned kTransportAttempts = 3;
constexpr auto kDrainTimeout = 50ms;
constexpr unsigned kDrainReads = 8;

// A status byte the firmware can send. Anything else is a garbled answer; UNKNOWN_COMMAND
// too, since the driver only sends commands the firmware version supports (require()): a
// command block damaged on the way is what the firmware did not understand.
bool plausible_status(std::uint8_t status);

class Link {
 public:
  // Finds the debug interface's bulk endpoint pair; Error(probe_io) when it has none.
  // `label` names the probe in messages ("ST-LINK/V2 <serial>").
  Link(UsbDevice& usb, int interface_number, std::string label);

  // One exchange's pieces, for callers that build an attempt of their own: USB failures
  // other than an unplug become TransportFault.
  void send(const Cdb& cdb) { send_bytes(cdb, kCommandTimeout); }
  void send_bytes(std::span<const std::uint8_t> data, std::chrono::milliseconds timeout);
  // Reads exactly `in.size()` bytes; an answer that ends short is a TransportFault.
  void receive(std::span<std::uint8_t> in, std::chrono::milliseconds timeout, const char* what);
  // Reads and drops whatever answers the probe still holds, each read bounded.
  void drain();

  // Runs `attempt` (one exchange) and, on a TransportFault, drains and runs it again when
  // `may_repeat`, kTransportAttempts times in all; otherwise Error(probe_io) naming the
  // first fault. After the retries ran out once, later calls get one attempt each until
  // one succeeds (no rounds of timeouts on a dead link).
  template <class Attempt>
  std::invoke_result_t<Attempt&> with_retry(bool may_repeat, const std::string& what,
                                            Attempt&& attempt) {
    std::string first;
    const unsigned attempts = may_repeat && !given_up_ ? kTransportAttempts : 1;
    for (unsigned n = 0; n < attempts; ++n) {
      try {
        if (n > 0) drain();
        auto result = attempt();
        given_up_ = false;
        return result;
      } catch (const TransportFault& f) {
        // The first fault is the one to name; later ones are usually its after-effects.
        if (first.empty()) first = f.message;
      }
    }
    given_up_ = true;
    throw give_up(first, what, may_repeat, attempts);
  }

  // One command block and its answer. `valid` checks the answer's fixed fields; a failed
  // check is a garbled answer (retried like a lost one), never data.
  template <class Valid>
  void command(const Cdb& cdb, std::span<std::uint8_t> answer, const char* what, Valid&& valid,
               bool may_repeat = true) {
    with_retry(may_repeat, what, [&] {
      send(cdb);
      receive(answer, kCommandTimeout, what);
      if (!valid(std::span<const std::uint8_t>(answer)))
        throw TransportFault{label_ + " answered " + what + " with a garbled answer"};
      return true;
    });
  }
  // The answer's first byte is a status.
  void command(const Cdb& cdb, std::span<std::uint8_t> answer, const char* what);
  // A command answered by a status alone.
  std::uint8_t status_of(const Cdb& cdb, const char* what, bool may_repeat = true);
  // A command with no answer (the exits).
  void send_only(const Cdb& cdb, const char* what);

 private:
  Error give_up(const std::string& fault, const std::string& what, bool may_repeat,
                unsigned attempts) const;

  UsbDevice& usb_;
  std::string label_;
  std::uint8_t ep_out_ = 0;
  std::uint8_t ep_in_ = 0;
  std::size_t ep_in_max_ = 64;  // wMaxPacketSize of ep_in_
  bool given_up_ = false;
};

}  // namespace probefarm::probe::stlink
