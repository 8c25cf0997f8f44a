#pragma once
// Internal to the GDB server (gdb_server.cpp, gdb_flash.cpp): one client's session state.
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "flash/chip.hpp"
#include "protocol/cortex_m.hpp"
#include "protocol/gdb_rsp.hpp"
#include "server/gdb_server.hpp"
#include "server/probe_session.hpp"

namespace probefarm::server::gdb_detail {

namespace rsp = protocol::rsp;

// Our register numbers (gdb_target_xml): r0-pc 0-15, xpsr 16, d0-d15 17-32, fpscr 33.
constexpr unsigned kXpsr = 16, kFirstD = 17, kFpscr = 33;
// DWT comparator n (ARMv7-M ARM C1.8.7): COMP at +0x20, FUNCTION at +0x28, stride 0x10;
// FUNCTION.MATCHED is bit 24 and clears when read.
constexpr std::uint32_t kDwtComp0 = 0xE0001020, kDwtFunction0 = 0xE0001028;
constexpr std::uint32_t kDwtMatched = 1u << 24;
// The size GDB may send in one packet (qSupported PacketSize, in hex there).
constexpr std::size_t kPacketSize = 0x4000;

struct Watch {
  std::uint32_t length = 0;
  protocol::WatchKind kind = protocol::WatchKind::write;
};

// An error the client hears as "E01": the message is logged in the summary only.
inline std::string error_reply() {
  return "E01";
}

class Session {
 public:
  Session(GdbChannel& channel, ProbeSession& session, const GdbOptions& options)
      : channel_(channel), session_(session), options_(options) {}

  GdbSummary serve();

 private:
  void run(const ProbeSession::Work& work,
           std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    session_.run(work, timeout);
  }
  bool send(std::string_view payload);
  bool send_raw(std::string_view bytes) { return channel_.write(bytes); }
  // One packet; false when the session is over.
  bool handle(const std::string& packet);
  std::optional<std::string> dispatch(const std::string& packet);

  std::string stop_reply(ProbeConnection& c, bool interrupted);
  std::string read_all_registers();
  std::optional<std::string> read_one_register(protocol::CortexM& core, unsigned n);
  bool write_one_register(protocol::CortexM& core, unsigned n, std::string_view hex);
  std::string read_memory(std::string_view args);
  std::string write_memory(std::string_view args, bool binary);
  std::string breakpoint(std::string_view packet);
  std::string resume(bool step, std::optional<std::uint32_t> address);
  std::string vcont(std::string_view actions);
  std::string xfer(std::string_view packet);
  std::string monitor(std::string_view hex);
  std::string flash_erase(std::string_view args);
  std::string flash_write(std::string_view args);
  std::string flash_done();
  void poll_running();
  void interrupt();
  void detach();

  GdbChannel& channel_;
  ProbeSession& session_;
  const GdbOptions& options_;
  rsp::Decoder decoder_{kPacketSize + 64};
  bool ack_ = true;
  std::string last_sent_;
  bool running_ = false;
  bool done_ = false;
  flash::ChipInfo chip_;
  bool fpu_ = false;
  std::map<std::uint32_t, Watch> watches_;
  std::map<std::uint32_t, std::vector<std::uint8_t>> flash_writes_;  // by address
  std::vector<std::pair<std::uint32_t, std::uint32_t>> flash_erases_;
  std::string last_error_;
  GdbSummary summary_;
};

}  // namespace probefarm::server::gdb_detail
