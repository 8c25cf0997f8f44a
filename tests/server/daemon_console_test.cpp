// The OpenOCD-style console through its WebSocket (/api/v1/probes/{serial}/console) and
// `probefarm console`, on a simulated F407 and F103: each command's output is checked
// against what the rest of the API says about the same board (probe details, the image
// store, the audit log) and against the bytes in flash.
#include <gtest/gtest.h>

#include <sstream>

#include "daemon_util.hpp"

namespace probefarm::server::test {
namespace {

using probefarm::test::run_capture;

// One console connection: the hello, then one output message per command.
class ConsoleClient {
 public:
  ConsoleClient(const Daemon& daemon, const std::string& serial, const std::string& token)
      : ws_(daemon.address(), "/api/v1/probes/" + serial + "/console", token) {
    auto text = ws_.receive(std::chrono::seconds(10));
    if (!text) throw Error(ErrorCategory::timeout, "no hello from the console");
    hello_ = json::parse(*text);
  }
  const json& hello() const { return hello_; }

  // The output message of `line`.
  json run(const std::string& line) {
    ws_.send(line);
    for (;;) {
      auto text = ws_.receive(std::chrono::seconds(60));
      if (!text) throw Error(ErrorCategory::timeout, "no answer to '" + line + "'");
      json msg = json::parse(*text);
      if (msg["type"] == "output") {
        EXPECT_EQ(msg["command"], line);
        return msg;
      }
      if (msg["type"] == "error") return msg;
    }
  }
  // The output text of a command that must succeed.
  std::string ok(const std::string& line) {
    json msg = run(line);
    EXPECT_TRUE(msg.value("ok", false)) << line << ":\n" << msg.dump(2);
    return msg.value("output", "");
  }
  // The output text of a command that must fail.
  std::string fails(const std::string& line) {
    json msg = run(line);
    EXPECT_FALSE(msg.value("ok", true)) << line << ":\n" << msg.dump(2);
    return msg.value("output", "");
  }
  void close() { ws_.close(); }

 private:
  WsClient ws_;
  json hello_;
};

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);)
    out.push_back(l);
  return out;
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The words of an `mdw` dump, in address order.
std::vector<std::uint32_t> dump_words(const std::string& text) {
  std::vector<std::uint32_t> words;
  for (const auto& line : lines_of(text)) {
    std::istringstream in(line.substr(line.find(':') + 1));
    for (std::string w; in >> w;)
      words.push_back(static_cast<std::uint32_t>(std::stoul(w, nullptr, 16)));
  }
  return words;
}

class DaemonConsole : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    sim_ = new SimProcess({"stm32f407vg:cmsis-dap-v2", "stm32f103c8:cmsis-dap-v2"},
                          {"--time-scale", "0"});
    daemon_ = new Daemon(temp_dir(*sim_, "data"));
    auto http = admin();
    ASSERT_TRUE(eventually([&] {
      auto probes = http.get("/api/v1/probes").json()["probes"];
      return probes.size() == 2 && probes[0]["target"].is_object() &&
             probes[1]["target"].is_object();
    })) << http.get("/api/v1/probes").body;
    operator_token_ = token("console-operator", "operator");
    viewer_token_ = token("console-viewer", "viewer");
  }
  static void TearDownTestSuite() {
    delete daemon_;
    delete sim_;
  }
  void TearDown() override {
    // Each test's console has closed: the probes are free again for the next one.
    auto http = admin();
    for (const auto& serial : {f407(), f103()})
      EXPECT_TRUE(eventually([&] {
        return !probe_of(http, serial).contains("session") ||
               probe_of(http, serial)["session"].is_null();
      })) << probe_of(http, serial).dump(2);
  }

  static std::string f407() { return sim_->serials()[0]; }
  static std::string f103() { return sim_->serials()[1]; }
  static HttpClient admin() { return daemon_->client(daemon_->admin_token()); }
  static std::string token(const std::string& name, const std::string& role) {
    auto http = admin();
    return create_token(http, name, role);
  }
  static json audit_rows(const std::string& serial) {
    auto http = admin();
    return http.get("/api/v1/audit?probe=" + serial + "&limit=1000").json()["rows"];
  }

  static SimProcess* sim_;
  static Daemon* daemon_;
  static std::string operator_token_, viewer_token_;
};
SimProcess* DaemonConsole::sim_ = nullptr;
Daemon* DaemonConsole::daemon_ = nullptr;
std::string DaemonConsole::operator_token_;
std::string DaemonConsole::viewer_token_;

TEST_F(DaemonConsole, FlashBanksInfoAndProbeAgreeWithTheProbeDetails) {
  auto http = admin();
  for (const auto& serial : {f407(), f103()}) {
    const json target = probe_of(http, serial)["target"];
    const std::uint32_t base = target["flash_base"], size = target["flash_size"];
    const unsigned sectors = target["sectors"];
    ConsoleClient console(*daemon_, serial, operator_token_);
    EXPECT_EQ(console.hello()["type"], "hello");
    EXPECT_EQ(console.hello()["probe"], serial);

    const std::string driver = serial == f407() ? "stm32f2x" : "stm32f1x";
    char bank[128];
    std::snprintf(bank, sizeof bank, "#0 : %s at 0x%08x, size 0x%08x, buswidth 0, chipwidth 0\n",
                  driver.c_str(), base, size);
    EXPECT_EQ(console.ok("flash banks"), bank);

    const auto info = lines_of(console.ok("flash info 0"));
    ASSERT_EQ(info.size(), sectors + 2u) << console.ok("flash info 0");
    EXPECT_EQ(info[0] + "\n", bank);
    std::uint64_t total = 0;
    for (unsigned i = 0; i < sectors; ++i) {
      const std::string& l = info[1 + i];
      EXPECT_TRUE(has(l, "not protected")) << l;
      // "\t#  3: 0x0000c000 (0x4000 16kB) not protected": the sizes add up to the flash.
      total += std::stoul(l.substr(l.find("(0x") + 1), nullptr, 16);
    }
    EXPECT_EQ(total, size);
    EXPECT_TRUE(has(info.back(), target["chip"].get<std::string>())) << info.back();

    const std::string probe = console.ok("flash probe 0");
    char id[32];
    std::snprintf(id, sizeof id, "%04x\n", target["dev_id"].get<unsigned>());
    EXPECT_TRUE(has(probe, id)) << probe;
    EXPECT_TRUE(has(probe, "flash size = " + std::to_string(size / 1024) + " KiB")) << probe;
  }
}

TEST_F(DaemonConsole, WriteImagePutsItsBytesInFlashAndReadBankGivesTheirSha) {
  auto http = admin();
  const std::string data = random_bytes(4096, 77);
  const std::string path = sim_->dir() + "/console-random.bin";
  write_file(path, data);
  const std::string sha = upload(http, path, "name=console-random.bin&address=0x08000000");
  ASSERT_EQ(sha.size(), 64u);

  ConsoleClient console(*daemon_, f103(), operator_token_);
  const std::string halt = console.ok("halt");
  EXPECT_EQ(halt.rfind("target halted due to debug-request, current mode: ", 0), 0u) << halt;
  const std::string wrote = console.ok("flash write_image erase " + sha.substr(0, 12));
  EXPECT_TRUE(has(wrote, "auto erase enabled\n")) << wrote;
  EXPECT_TRUE(has(wrote, "wrote 4096 bytes from image console-random.bin")) << wrote;

  // mdw of the flash shows the image's bytes, little-endian words.
  const auto words = dump_words(console.ok("mdw 0x08000000 1024"));
  ASSERT_EQ(words.size(), 1024u);
  for (std::size_t i = 0; i < words.size(); ++i) {
    std::uint32_t expected = 0;
    for (unsigned b = 0; b < 4; ++b)
      expected |= std::uint32_t{static_cast<std::uint8_t>(data[4 * i + b])} << (8 * b);
    ASSERT_EQ(words[i], expected) << "word " << i;
  }
  const std::string mdb = console.ok("mdb 0x08000001 2");
  char bytes[64];
  std::snprintf(bytes, sizeof bytes, "0x08000001: %02x %02x\n", static_cast<std::uint8_t>(data[1]),
                static_cast<std::uint8_t>(data[2]));
  EXPECT_EQ(mdb, bytes);
  EXPECT_TRUE(has(console.ok("flash verify_image console-random.bin"), "verified 4096 bytes"));

  // The first four 1 KiB pages hold the image, the rest of the 64 pages were left blank.
  const auto check = lines_of(console.ok("flash erase_check 0"));
  ASSERT_EQ(check.size(), 64u);
  EXPECT_TRUE(has(check[0], "not erased")) << check[0];
  EXPECT_TRUE(has(check[3], "not erased")) << check[3];

  // The backup of those 4 KiB is the image's bytes again: same sha256 as the upload.
  const std::string read = console.ok("flash read_bank 0 console-backup.bin 0 4096");
  const auto read_lines = lines_of(read);
  ASSERT_EQ(read_lines.size(), 2u) << read;
  ASSERT_EQ(read_lines[1].rfind("sha256 ", 0), 0u) << read;
  const std::string backup = read_lines[1].substr(7);
  EXPECT_EQ(backup, sha);
  json meta = http.get("/api/v1/images/" + backup).json();
  EXPECT_EQ(meta["data_bytes"], 4096);
  EXPECT_EQ(meta["segments"][0]["address"], 0x08000000u);

  // Erasing page 0 shows in erase_check and in memory; a verify now fails.
  EXPECT_TRUE(has(console.ok("flash erase_sector 0 0 0"), "erased sectors 0 through 0"));
  EXPECT_TRUE(
      has(lines_of(console.ok("flash erase_check 0"))[0], "#  0: 0x00000000 (0x400 1kB) erased"));
  EXPECT_EQ(console.ok("mdw 0x08000000"), "0x08000000: ffffffff\n");
  const std::string bad = console.fails("flash verify_image " + sha);
  EXPECT_EQ(bad.rfind("Error: verify failed in page 0", 0), 0u) << bad;
  console.close();

  // The writes are in the audit log with the image; the reads are not.
  bool write_row = false, erase_row = false;
  for (const auto& row : audit_rows(f103())) {
    if (row["operation"] != "console") continue;
    const std::string detail = row["detail"];
    EXPECT_TRUE(row["job_id"].is_null()) << row.dump();
    EXPECT_EQ(row["who"], "console-operator");
    EXPECT_FALSE(detail.rfind("mdw", 0) == 0 || detail.rfind("flash verify", 0) == 0) << detail;
    if (detail.rfind("flash write_image erase", 0) == 0) {
      write_row = true;
      EXPECT_EQ(row["image_sha256"], sha);
      EXPECT_EQ(row["result"], "succeeded");
      EXPECT_EQ(row["chip"], "STM32F10x medium-density");
      EXPECT_TRUE(has(detail, "wrote 4096 bytes")) << detail;
    }
    if (detail.rfind("flash erase_sector 0 0 0", 0) == 0) erase_row = true;
  }
  EXPECT_TRUE(write_row && erase_row) << audit_rows(f103()).dump(2);
}

TEST_F(DaemonConsole, ResetHaltStopsAtTheResetVectorAndRegistersFollow) {
  auto http = admin();
  const std::string sha = upload(http, demo_elf("stm32f407vg"), "name=demo-f407.elf");
  ConsoleClient console(*daemon_, f407(), operator_token_);
  ASSERT_TRUE(has(console.ok("flash write_image " + sha), "wrote "));

  const std::string reset = console.ok("reset halt");
  EXPECT_TRUE(has(reset, "target halted due to")) << reset;
  const auto vector = dump_words(console.ok("mdw 0x08000000 2"));
  ASSERT_EQ(vector.size(), 2u);
  char pc[64], sp[64];
  std::snprintf(pc, sizeof pc, "pc (/32): 0x%08x\n", vector[1] & ~1u);
  std::snprintf(sp, sizeof sp, "msp (/32): 0x%08x\n", vector[0]);
  EXPECT_EQ(console.ok("reg pc"), pc);
  EXPECT_EQ(console.ok("reg msp"), sp);
  const std::string all = console.ok("reg");
  EXPECT_TRUE(has(all, "(15) ") && has(all, pc)) << all;
  EXPECT_TRUE(has(all, "fpscr (/32)")) << all;  // the M4F has an FPU

  // A register write reads back, and is audited.
  EXPECT_EQ(console.ok("reg r3 0x1234abcd"), "r3 (/32): 0x1234abcd\n");
  EXPECT_EQ(console.ok("reg r3"), "r3 (/32): 0x1234abcd\n");
  // step moves on from the reset vector and says where it stopped.
  const std::string step = console.ok("step");
  const auto at = step.find(" pc: 0x");
  ASSERT_NE(at, std::string::npos) << step;
  EXPECT_NE(std::stoul(step.substr(at + 5, 10), nullptr, 16), vector[1] & ~1u) << step;

  // RAM writes of each width, read back.
  console.ok("mww 0x20000000 0x12345678");
  EXPECT_EQ(console.ok("mdw 0x20000000"), "0x20000000: 12345678\n");
  console.ok("mwh 0x20000004 0xbeef 2");
  EXPECT_EQ(console.ok("mdh 0x20000004 2"), "0x20000004: beef beef\n");
  console.ok("mwb 0x20000003 0xaa");
  EXPECT_EQ(console.ok("mdw 0x20000000"), "0x20000000: aa345678\n");

  EXPECT_EQ(console.ok("resume"), "");
  EXPECT_EQ(console.fails("reg pc").rfind("Error: target not halted\n", 0), 0u);
  EXPECT_TRUE(has(console.ok("halt"), "target halted due to debug-request"));
  EXPECT_TRUE(has(console.ok("adapter speed"), "adapter speed: ")) << console.ok("adapter speed");
  EXPECT_TRUE(has(console.ok("adapter speed 1000"), "adapter speed: "));
  console.close();

  bool reg_row = false, mww_row = false, reset_row = false;
  for (const auto& row : audit_rows(f407())) {
    const std::string detail = row.value("detail", "");
    if (detail.rfind("reg r3 0x1234abcd", 0) == 0) reg_row = true;
    if (detail.rfind("mww 0x20000000 0x12345678", 0) == 0) mww_row = true;
    if (detail.rfind("reset halt", 0) == 0) reset_row = true;
    EXPECT_NE(detail, "reg r3") << "a register read was audited";
  }
  EXPECT_TRUE(reg_row && mww_row && reset_row) << audit_rows(f407()).dump(2);
}

TEST_F(DaemonConsole, MistakesGetOpenOcdLikeErrors) {
  ConsoleClient console(*daemon_, f407(), operator_token_);
  json msg = console.run("foo bar");
  EXPECT_FALSE(msg["ok"].get<bool>());
  EXPECT_EQ(lines_of(msg["output"])[0], "invalid command name \"foo\"");
  EXPECT_EQ(msg["error"]["category"], "usage");
  EXPECT_EQ(lines_of(console.fails("mdw"))[0], "usage: mdw address [count]");
  EXPECT_EQ(lines_of(console.fails("mww 0x20000000"))[0], "usage: mww address value [count]");
  EXPECT_EQ(lines_of(console.fails("reset later"))[0], "usage: reset [run|halt|init]");
  EXPECT_EQ(lines_of(console.fails("flash info 1"))[0], "Error: flash bank 1 does not exist");
  EXPECT_EQ(lines_of(console.fails("mdw 0x20000002"))[0],
            "Error: mdw: address 0x20000002 is not aligned to 4 bytes");
  EXPECT_EQ(lines_of(console.fails("flash write_image nosuchimage"))[0],
            "Error: no image \"nosuchimage\" in the image store");
  // The driver must match the chip, and the error says which one to use.
  EXPECT_EQ(lines_of(console.fails("stm32f1x options_read 0"))[0],
            "Error: stm32f1x does not drive this chip (STM32F405/407/415/417): use 'stm32f2x "
            "options_read 0'");
  const std::string options = console.ok("stm32f2x options_read 0");
  EXPECT_TRUE(has(options, "RDP = ")) << options;
  // Unlock mass-erases: an operator may not.
  json unlock = console.run("stm32f2x unlock 0");
  EXPECT_FALSE(unlock["ok"].get<bool>());
  EXPECT_EQ(unlock["error"]["category"], "protection");
  EXPECT_TRUE(has(console.ok("help"), "flash write_image [erase] image [offset]"));
  EXPECT_EQ(console.ok(""), "");
}

TEST_F(DaemonConsole, TheConsoleHoldsTheProbeAndNeedsAnOperator) {
  auto http = admin();
  {
    ConsoleClient console(*daemon_, f103(), operator_token_);
    ASSERT_TRUE(eventually([&] { return probe_of(http, f103())["session"].is_object(); }));
    EXPECT_EQ(probe_of(http, f103())["session"]["kind"], "console");
    // A second console is refused with the API's busy error, and the socket closes.
    ConsoleClient second(*daemon_, f103(), daemon_->admin_token());
    EXPECT_EQ(second.hello()["type"], "error");
    EXPECT_EQ(second.hello()["error"]["category"], "busy");
    EXPECT_TRUE(
        has(second.hello()["error"]["message"], "held by a console session of console-operator"));
    console.close();
  }
  // A viewer may not open it; the token also works as ?access_token=.
  try {
    WsClient ws(daemon_->address(), "/api/v1/probes/" + f103() + "/console", viewer_token_);
    ADD_FAILURE() << "a viewer opened the console";
  } catch (const Error& e) {
    EXPECT_TRUE(has(e.what(), "HTTP 403")) << e.what();
  }
  ASSERT_TRUE(eventually([&] { return probe_of(http, f103())["session"].is_null(); }));
  WsClient ws(daemon_->address(),
              "/api/v1/probes/" + f103() + "/console?access_token=" + operator_token_);
  auto hello = ws.receive(std::chrono::seconds(10));
  ASSERT_TRUE(hello);
  EXPECT_EQ(json::parse(*hello)["type"], "hello");
  ws.close();
  // Unknown probes are refused.
  ASSERT_TRUE(eventually([&] { return probe_of(http, f103())["session"].is_null(); }));
  ConsoleClient none(*daemon_, "no-such-probe", operator_token_);
  EXPECT_EQ(none.hello()["type"], "error");
  EXPECT_EQ(none.hello()["error"]["category"], "probe_not_found");
}

TEST_F(DaemonConsole, CliConsoleRunsAScriptFromStdin) {
  const std::string script = sim_->dir() + "/console-script.txt";
  write_file(script, "halt\nflash banks\nmdw 0x08000000 2\nfoo\nflash banks\n");
  const std::string cmd = std::string(PROBEFARM_CLI_EXE) + " --server " + daemon_->url() +
                          " --token " + operator_token_ + " --probe " + f407() + " console < " +
                          script;
  auto r = run_capture({"/bin/sh", "-c", cmd});
  // The failed "foo" gives the usage exit code; the commands after it still ran.
  EXPECT_EQ(r.status, 2) << r.out << r.err;
  const auto out = lines_of(r.out);
  ASSERT_GE(out.size(), 6u) << r.out;
  EXPECT_EQ(out[0].rfind("target halted due to", 0), 0u) << r.out;
  EXPECT_EQ(out[2], "#0 : stm32f2x at 0x08000000, size 0x00100000, buswidth 0, chipwidth 0");
  EXPECT_EQ(out[3].rfind("0x08000000: ", 0), 0u) << r.out;
  EXPECT_EQ(out[4], "invalid command name \"foo\"");
  EXPECT_EQ(out.back(), out[2]);
}

}  // namespace
}  // namespace probefarm::server::test
