#pragma once
// The OpenOCD-style command console of one probe: the vocabulary people type into OpenOCD's
// telnet port (halt, mdw, flash write_image, stm32f2x unlock ...) run on a ProbeSession,
// one line at a time. Independent of the transport: the console WebSocket
// (api_console.cpp) and the GDB server's `monitor` both call execute().
//
// Output is text, every line '\n'-terminated. A failed command prints "Error: <message>"
// (and "hint: <hint>") or, for a malformed line, OpenOCD's kind of usage error:
// `invalid command name "foo"` or "usage: mdw address [count]".
//
// Commands that change the target (mw*, reg with a value, reset, flash erase/write, unlock,
// adapter speed with a value) write an audit row (job_id 0, operation "console") with the
// command line and what it did.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "server/model.hpp"

namespace probefarm::server {

class Database;
class ImageStore;
class ProbeSession;
struct ProbeConnection;

struct ConsoleEnv {
  ImageStore* images = nullptr;  // flash write_image / verify_image / read_bank
  Database* db = nullptr;        // audit rows; none are written when null
  std::string who;               // the token's name, for the audit log
  Role role = Role::operator_;   // unlock (it mass-erases the chip) needs admin
};

struct ConsoleResult {
  std::string output;  // '\n'-terminated lines (possibly none)
  bool ok = true;      // false: usage error or the command failed
  // When !ok: the error, as the API reports errors ("usage", "probe_io", ...).
  std::string category, message, hint;
};

class Console {
 public:
  Console(ProbeSession& session, ConsoleEnv env);

  // Runs one command line. Never throws: errors are part of the output. It makes its own
  // ProbeSession::run calls, so call it from outside one (never from inside a `work`).
  ConsoleResult run(const std::string& line);
  // run(line).output.
  std::string execute(const std::string& line) { return run(line).output; }

  // The greeting a client shows before the first prompt.
  std::string banner() const;

 private:
  using Args = std::vector<std::string>;

  std::string dispatch(const Args& args);
  // Runs `work` on the session's connection; remembers the chip for the audit rows.
  void with_target(const std::function<void(ProbeConnection&)>& work);
  // Core, memory, registers, adapter (console.cpp).
  std::string cmd_halt(const Args& a);
  std::string cmd_resume(const Args& a);
  std::string cmd_step(const Args& a);
  std::string cmd_reset(const Args& a);
  std::string cmd_md(const Args& a, unsigned width);
  std::string cmd_mw(const Args& a, unsigned width);
  std::string cmd_reg(const Args& a);
  std::string cmd_adapter(const Args& a);
  // Flash and the STM32 drivers (console_flash.cpp).
  std::string cmd_flash(const Args& a);
  std::string cmd_stm32(const Args& a);
  std::string flash_write_image(const Args& a);
  std::string flash_verify_image(const Args& a);
  std::string flash_read_bank(const Args& a);
  std::string flash_erase_sector(const Args& a);
  std::string flash_erase_check(const Args& a);

  void audit(const std::string& line, bool ok, const std::string& output, const std::string& error);

  ProbeSession& session_;
  ConsoleEnv env_;
  std::string chip_;        // the chip's name once a command attached (audit rows)
  std::string target_uid_;  // likewise
  // Set by a command once it is about to change the target: the line gets an audit row.
  bool audited_ = false;
  std::string image_sha256_;     // the image a write_image used, for its audit row
  std::uint32_t speed_khz_ = 0;  // what `adapter speed` set; 0: the attach speed
};

// Helpers shared by console*.cpp.
namespace console_detail {
// "0x1f", "31": OpenOCD's numbers. Error(usage) with `usage` otherwise.
std::uint32_t parse_u32(const std::string& text, const std::string& usage);
[[noreturn]] void usage(const std::string& form);
std::string hex8(std::uint32_t v);  // "0x0800abcd"
}  // namespace console_detail

}  // namespace probefarm::server
