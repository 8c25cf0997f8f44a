// Remote GDB per probe, end to end: Debian's gdb-multiarch against probefarmd's GDB port on
// a simulated STM32F407 board. The session loads the demo ELF (vFlash* through the
// engine's programmer), breaks at main, reads a variable, steps, hits a DWT watchpoint and
// detaches; afterwards a verify job finds the ELF in flash and the audit log has the row.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <regex>

#include "daemon_util.hpp"
#include "protocol/gdb_rsp.hpp"

namespace probefarm::server::test {
namespace {

constexpr const char* kGdb = "/usr/bin/gdb-multiarch";

struct GdbRun {
  int status = -1;
  std::string output;  // stdout and stderr together, as a person would see them
};

// Runs gdb-multiarch in batch mode with the given commands; killed after `limit`.
GdbRun run_gdb(const std::string& dir, const std::string& elf,
               const std::vector<std::string>& commands,
               std::chrono::seconds limit = std::chrono::seconds(25)) {
  std::vector<std::string> args = {kGdb, "-nx", "-batch"};
  for (const auto& c : commands) {
    args.push_back("-ex");
    args.push_back(c);
  }
  args.push_back(elf);
  const std::string out = dir + "/gdb.out";
  const int fd = ::open(out.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
  const pid_t pid = probefarm::test::spawn_child(args, fd, fd);
  ::close(fd);
  GdbRun run;
  if (pid <= 0) return run;
  int status = 0;
  const bool ended = eventually([&] { return ::waitpid(pid, &status, WNOHANG) == pid; },
                                std::chrono::duration_cast<std::chrono::milliseconds>(limit));
  if (!ended) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    run.output = "(gdb-multiarch killed after " + std::to_string(limit.count()) + " s)\n";
  }
  run.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  run.output += read_file(out);
  return run;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1))
    ++n;
  return n;
}

// A minimal RSP client for what gdb-multiarch cannot be made to do in batch mode (Ctrl-C)
// and for exact packet replies.
class RspClient {
 public:
  explicit RspClient(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~RspClient() { ::close(fd_); }
  bool connected() const { return connected_; }
  void raw(std::string_view bytes) { ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL); }
  void send(std::string_view payload) { raw(protocol::rsp::frame(payload)); }
  // The next packet (acks skipped); "(timeout)" or "(closed)" otherwise.
  std::string reply(std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    const auto deadline = Clock::now() + limit;
    for (;;) {
      while (auto in = decoder_.next())
        if (in->kind == protocol::rsp::Input::Kind::packet) return in->payload;
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return "(timeout)";
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[8192];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return "(closed)";
      decoder_.feed(std::string_view(buf, static_cast<std::size_t>(n)));
    }
  }
  std::string ask(std::string_view payload) {
    send(payload);
    return reply();
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  protocol::rsp::Decoder decoder_;
};

class DaemonGdb : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    sim_ = new SimProcess({"stm32f407vg:cmsis-dap-v2"}, {"--time-scale", "0"});
    daemon_ = new Daemon(temp_dir(*sim_, "data"));
    auto http = admin();
    ASSERT_TRUE(eventually([&] {
      auto probes = http.get("/api/v1/probes").json()["probes"];
      return probes.size() == 1 && probes[0]["target"].is_object();
    })) << http.get("/api/v1/probes").body;
  }
  static void TearDownTestSuite() {
    delete daemon_;
    delete sim_;
  }
  static HttpClient admin() { return daemon_->client(daemon_->admin_token()); }
  static std::string serial() { return sim_->serials()[0]; }
  static std::string demo_elf() { return test::demo_elf("stm32f407vg"); }
  static std::string token(const std::string& name, const std::string& role) {
    auto http = admin();
    return create_token(http, name, role);
  }

  static SimProcess* sim_;
  static Daemon* daemon_;
};
SimProcess* DaemonGdb::sim_ = nullptr;
Daemon* DaemonGdb::daemon_ = nullptr;

// A blank chip, so that only GDB's load can put the demo ELF there; returns its sha256.
std::string erase_chip_and_upload_demo(HttpClient& http, const std::string& serial,
                                       const std::string& elf) {
  json erase =
      wait_job(http, submit(http, {{"operation", "erase"}, {"probe", {{"serial", serial}}}})["id"]);
  EXPECT_EQ(erase["state"], "succeeded") << erase.dump(2);
  const std::string sha = upload(http, elf, "name=demo.elf");
  json before = wait_job(http, submit(http, {{"operation", "verify"},
                                             {"probe", {{"serial", serial}}},
                                             {"image", sha}})["id"]);
  EXPECT_EQ(before["state"], "failed") << "the erased chip already holds the ELF?";
  return sha;
}

// The session, step by step, against `address`: load the demo ELF, break at a
// function, continue to it, read a variable, step, watch a variable and hit it, detach.
// Then the probe is free again, its flash holds the ELF, and the audit log has the session.
void expect_full_session(HttpClient& http, const std::string& dir, const std::string& serial,
                         const std::string& elf, const std::string& sha,
                         const std::string& address) {
  const GdbRun gdb =
      run_gdb(dir, elf,
              {"set pagination off", "set confirm off", "set remotetimeout 20",
               "target extended-remote " + address, "load", "monitor reset halt",
               "maintenance flush register-cache", "break main", "continue", "print demo_counter",
               "next", "info registers pc", "watch demo_counter", "continue", "print demo_counter",
               "delete", "detach"});
  const std::string& out = gdb.output;
  SCOPED_TRACE("gdb-multiarch said:\n" + out);
  if (std::getenv("PROBEFARM_TEST_VERBOSE")) std::cout << out;
  EXPECT_EQ(gdb.status, 0);
  // 1. load, through vFlashErase/Write/Done.
  EXPECT_NE(out.find("Start address 0x"), std::string::npos);
  EXPECT_NE(out.find("Transfer rate"), std::string::npos);
  EXPECT_EQ(out.find("Load failed"), std::string::npos);
  // `monitor reset halt` (the console's): halted at the reset vector.
  EXPECT_TRUE(std::regex_search(out, std::regex("pc:? 0x08000044")));
  // 2./3. a (hardware) breakpoint at main, hit.
  EXPECT_TRUE(std::regex_search(out, std::regex("Breakpoint 1 at 0x8[0-9a-f]+: file .*main\\.c")));
  EXPECT_TRUE(std::regex_search(out, std::regex("Breakpoint 1, main \\(\\) at .*main\\.c:[0-9]+")));
  // 4. a variable.
  EXPECT_TRUE(std::regex_search(out, std::regex("\\$1 = [0-9]+")));
  // 5. a step: `next` stops on the next source line, still in main.
  EXPECT_TRUE(std::regex_search(out, std::regex("pc +0x8[0-9a-f]+ +0x8[0-9a-f]+ <main\\+[0-9]+>")));
  // 6. a hardware watchpoint (DWT), hit with the value changing by one.
  EXPECT_EQ(count(out, "Hardware watchpoint 2: demo_counter"), 2u);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex("Old value = ([0-9]+)\nNew value = ([0-9]+)")));
  EXPECT_EQ(std::stoull(m[2]), std::stoull(m[1]) + 1);
  EXPECT_TRUE(std::regex_search(out, std::regex("\\$2 = " + m[2].str())));
  // 7. detached.
  EXPECT_NE(out.find("detached"), std::string::npos);
  EXPECT_EQ(out.find("Remote communication error"), std::string::npos);
  EXPECT_EQ(out.find("Remote failure"), std::string::npos);

  // The session ends with the client; the probe takes jobs again, and the flash holds
  // the ELF GDB loaded.
  ASSERT_TRUE(eventually([&] { return probe_of(http, serial)["session"].is_null(); }));
  json after = wait_job(http, submit(http, {{"operation", "verify"},
                                            {"probe", {{"serial", serial}}},
                                            {"image", sha}})["id"]);
  EXPECT_EQ(after["state"], "succeeded") << after.dump(2);

  json rows = http.get("/api/v1/audit?probe=" + serial + "&limit=1").json()["rows"];
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["operation"], "verify") << "the verify job above is the newest row";
  rows = http.get("/api/v1/audit?probe=" + serial + "&limit=3").json()["rows"];
  bool found = false;
  for (const auto& row : rows)
    if (row["operation"] == "gdb") {
      found = true;
      EXPECT_EQ(row["who"], "admin");
      EXPECT_EQ(row["result"], "succeeded");
      EXPECT_EQ(row["chip"], "STM32F405/407/415/417");
      const std::string detail = row["detail"];
      EXPECT_NE(detail.find("ended: detached"), std::string::npos) << detail;
      EXPECT_NE(detail.find("1 watchpoint hits"), std::string::npos) << detail;
      EXPECT_GT(row["bytes_programmed"].get<std::uint64_t>(), 0u);
    }
  EXPECT_TRUE(found) << rows.dump(2);
}

// A free TCP port on the loopback (the kernel's choice, released again).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

TEST_F(DaemonGdb, GdbMultiarchLoadsBreaksStepsWatchesAndDetaches) {
  ASSERT_EQ(::access(kGdb, X_OK), 0) << kGdb << " is missing (scripts/setup installs it)";
  auto http = admin();
  const std::string sha = erase_chip_and_upload_demo(http, serial(), demo_elf());
  auto r = http.post_json("/api/v1/probes/" + serial() + "/gdb", json::object());
  ASSERT_EQ(r.status, 201u) << r.body;
  const int port = r.json()["port"];
  EXPECT_EQ(r.json()["host"], "127.0.0.1");
  ASSERT_GT(port, 0);
  EXPECT_EQ(probe_of(http, serial())["session"]["kind"], "gdb");
  expect_full_session(http, sim_->dir(), serial(), demo_elf(), sha,
                      "127.0.0.1:" + std::to_string(port));
}

TEST_F(DaemonGdb, TheSameSessionThroughTheCliTunnel) {
  ASSERT_EQ(::access(kGdb, X_OK), 0) << kGdb << " is missing (scripts/setup installs it)";
  auto http = admin();
  const std::string sha = erase_chip_and_upload_demo(http, serial(), demo_elf());
  const int port = free_port();
  const std::string log = sim_->dir() + "/tunnel.log";
  const int fd = ::open(log.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
  const pid_t tunnel = probefarm::test::spawn_child(
      {PROBEFARM_CLI_EXE, "--server", daemon_->url(), "--token", daemon_->admin_token(), "gdb",
       "--probe", serial(), "--port", std::to_string(port)},
      fd, fd);
  ::close(fd);
  ASSERT_GT(tunnel, 0);
  // It prints its line once it listens.
  ASSERT_TRUE(eventually([&] {
    return read_file(log).find("target extended-remote :" + std::to_string(port)) !=
           std::string::npos;
  })) << read_file(log);
  expect_full_session(http, sim_->dir(), serial(), demo_elf(), sha,
                      "127.0.0.1:" + std::to_string(port));
  ::kill(tunnel, SIGTERM);
  int status = 0;
  ASSERT_TRUE(eventually([&] { return ::waitpid(tunnel, &status, WNOHANG) == tunnel; }));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read_file(log);
  EXPECT_NE(read_file(log).find("client connected"), std::string::npos) << read_file(log);
}

TEST_F(DaemonGdb, WebSocketRefusesAHeldProbeWithOneErrorMessage) {
  // The probe is held through a GDB port: the WebSocket (what the tunnel uses) gets one text
  // frame with the refusal, which `probefarm gdb` turns into its error.
  auto http = admin();
  ASSERT_TRUE(eventually([&] { return probe_of(http, serial())["session"].is_null(); }));
  auto held = http.post_json("/api/v1/probes/" + serial() + "/gdb", json::object());
  ASSERT_EQ(held.status, 201u) << held.body;
  try {
    WsClient ws(ServerAddress::parse(daemon_->url()), "/api/v1/probes/" + serial() + "/gdb",
                daemon_->admin_token());
    auto first = ws.receive(std::chrono::seconds(10));
    ASSERT_TRUE(first);
    json msg = json::parse(*first);
    EXPECT_EQ(msg["type"], "error");
    EXPECT_EQ(msg["error"]["category"], "busy");
    EXPECT_EQ(msg["error"]["message"], "probe " + serial() + " is held by a gdb session of admin");
  } catch (const Error& e) {
    ADD_FAILURE() << e.what();
  }
  // Free the probe: connect to the port and leave.
  RspClient bye(held.json()["port"]);
}

TEST_F(DaemonGdb, RefusesViewersUnknownProbesAndASecondSession) {
  auto http = admin();
  auto viewer = daemon_->client(token("gdb-viewer", "viewer"));
  auto r = viewer.post_json("/api/v1/probes/" + serial() + "/gdb", json::object());
  EXPECT_EQ(r.status, 403u) << r.body;
  r = http.post_json("/api/v1/probes/NOSUCHPROBE/gdb", json::object());
  EXPECT_EQ(r.status, 404u) << r.body;
  EXPECT_EQ(r.json()["error"]["category"], "probe_not_found");

  ASSERT_TRUE(eventually([&] { return probe_of(http, serial())["session"].is_null(); }));
  r = http.post_json("/api/v1/probes/" + serial() + "/gdb", json::object());
  ASSERT_EQ(r.status, 201u) << r.body;
  const int port = r.json()["port"];
  auto second = http.post_json("/api/v1/probes/" + serial() + "/gdb", json::object());
  EXPECT_EQ(second.status, 409u) << second.body;
  EXPECT_EQ(second.json()["error"]["message"],
            "probe " + serial() + " is held by a gdb session of admin");

  // A client that connects and leaves without a word ends the session: the probe is free
  // and the audit row says why.
  const GdbRun gdb = run_gdb(
      sim_->dir(), demo_elf(),
      {"target extended-remote 127.0.0.1:" + std::to_string(port), "print $pc", "disconnect"});
  EXPECT_EQ(gdb.status, 0) << gdb.output;
  EXPECT_TRUE(std::regex_search(gdb.output, std::regex("\\$1 = \\(void \\(\\*\\)\\(\\)\\) 0x")))
      << gdb.output;
  ASSERT_TRUE(eventually([&] { return probe_of(http, serial())["session"].is_null(); }));
  json rows = http.get("/api/v1/audit?probe=" + serial() + "&limit=1000").json()["rows"];
  bool found = false;
  for (const auto& row : rows)
    if (row["operation"] == "gdb" &&
        row["detail"].get<std::string>().find("client closed the connection") != std::string::npos)
      found = true;
  EXPECT_TRUE(found) << rows.dump(2);
}

TEST_F(DaemonGdb, RawClientSeesTheTargetDescriptionMemoryMapAndInterruptsARunningCore) {
  auto http = admin();
  // The demo in flash, so that the core has something to run.
  const std::string sha = upload(http, demo_elf(), "name=demo.elf");
  json flash =
      wait_job(http, submit(http, {{"probe", {{"serial", serial()}}}, {"image", sha}})["id"]);
  ASSERT_EQ(flash["state"], "succeeded") << flash.dump(2);
  ASSERT_TRUE(eventually([&] { return probe_of(http, serial())["session"].is_null(); }));
  auto r = http.post_json("/api/v1/probes/" + serial() + "/gdb", json::object());
  ASSERT_EQ(r.status, 201u) << r.body;
  RspClient gdb(r.json()["port"]);
  ASSERT_TRUE(gdb.connected());

  const std::string features = gdb.ask("qSupported:multiprocess+;xmlRegisters=arm");
  EXPECT_NE(features.find("PacketSize=4000"), std::string::npos) << features;
  EXPECT_NE(features.find("QStartNoAckMode+"), std::string::npos) << features;
  EXPECT_NE(features.find("qXfer:features:read+"), std::string::npos) << features;
  EXPECT_NE(features.find("qXfer:memory-map:read+"), std::string::npos) << features;
  EXPECT_EQ(gdb.ask("QStartNoAckMode"), "OK");
  EXPECT_EQ(gdb.ask("qAttached"), "1");
  EXPECT_EQ(gdb.ask("?"), "S05");

  // The F407 is a Cortex-M4F: core registers and the VFP bank.
  const std::string tdesc = gdb.ask("qXfer:features:read:target.xml:0,3fff");
  ASSERT_EQ(tdesc.substr(0, 1), "l") << tdesc;  // all of it in one reply
  EXPECT_NE(tdesc.find("<feature name=\"org.gnu.gdb.arm.m-profile\">"), std::string::npos);
  EXPECT_NE(tdesc.find("<reg name=\"xpsr\""), std::string::npos);
  EXPECT_NE(tdesc.find("<feature name=\"org.gnu.gdb.arm.vfp\">"), std::string::npos);
  EXPECT_NE(tdesc.find("<reg name=\"d15\" bitsize=\"64\""), std::string::npos);
  // A slice of it: 'm' while more follows.
  EXPECT_EQ(gdb.ask("qXfer:features:read:target.xml:0,10").substr(0, 17),
            "m" + tdesc.substr(1, 16));
  // RM0090 3.3 Table 5: 4 x 16 KiB, 64 KiB, 7 x 128 KiB sectors.
  const std::string map = gdb.ask("qXfer:memory-map:read::0,3fff");
  EXPECT_NE(map.find("<memory type=\"flash\" start=\"0x8000000\" length=\"0x10000\">"
                     "<property name=\"blocksize\">0x4000</property>"),
            std::string::npos)
      << map;
  EXPECT_NE(map.find("<memory type=\"flash\" start=\"0x8010000\" length=\"0x10000\">"
                     "<property name=\"blocksize\">0x10000</property>"),
            std::string::npos)
      << map;
  EXPECT_NE(map.find("<memory type=\"flash\" start=\"0x8020000\" length=\"0xe0000\">"
                     "<property name=\"blocksize\">0x20000</property>"),
            std::string::npos)
      << map;

  // Registers: 17 core words and 16 doubles plus FPSCR in 'g'; one at a time with 'p'.
  EXPECT_EQ(gdb.ask("g").size(), 17u * 8 + 16 * 16 + 8);
  EXPECT_EQ(gdb.ask("p11").size(), 16u);  // d0
  EXPECT_EQ(gdb.ask("P0=efbeadde"), "OK");
  EXPECT_EQ(gdb.ask("p0"), "efbeadde");
  EXPECT_EQ(gdb.ask("m8000000,8").size(), 16u);
  EXPECT_EQ(gdb.ask("Z2,20002001,3"), "E01") << "a DWT comparator needs an aligned power of 2";
  EXPECT_EQ(gdb.ask("vFlashWrite:20000000:abc"), "E.memtype");
  EXPECT_EQ(gdb.ask("vFlashErase:8000100,100"), "E01") << "not a sector boundary";
  // Monitor output comes as O packets, then OK.
  const std::string out = gdb.ask("qRcmd," + protocol::rsp::to_hex(std::string_view("frobnicate")));
  ASSERT_EQ(out.substr(0, 1), "O") << out;
  const auto text = protocol::rsp::from_hex(out.substr(1));
  ASSERT_TRUE(text);
  EXPECT_NE(std::string(text->begin(), text->end()).find("invalid command name \"frobnicate\""),
            std::string::npos);
  EXPECT_EQ(gdb.reply(), "OK");

  // Run, then Ctrl-C: the core halts and the stop reply says SIGINT.
  EXPECT_EQ(gdb.ask("qRcmd," + protocol::rsp::to_hex(std::string_view("reset halt"))).substr(0, 1),
            "O");
  EXPECT_EQ(gdb.reply(), "OK");
  gdb.send("vCont;c");
  EXPECT_EQ(gdb.reply(std::chrono::milliseconds(300)), "(timeout)") << "running: no reply yet";
  EXPECT_EQ(probe_of(http, serial())["session"]["kind"], "gdb");
  gdb.raw("\x03");
  EXPECT_EQ(gdb.reply(), "T02");
  const auto pc = protocol::rsp::parse_le32_hex(gdb.ask("pf"));
  ASSERT_TRUE(pc);
  EXPECT_GE(*pc, 0x08000000u);
  EXPECT_LT(*pc, 0x08100000u);

  EXPECT_EQ(gdb.ask("D"), "OK");
  EXPECT_EQ(gdb.reply(std::chrono::seconds(5)), "(closed)");
  ASSERT_TRUE(eventually([&] { return probe_of(http, serial())["session"].is_null(); }));
}

// Declared last: it stops the suite's daemon (and starts it again).
TEST_F(DaemonGdb, DaemonStopsCleanlyWithAClientConnected) {
  auto http = admin();
  ASSERT_TRUE(eventually([&] { return probe_of(http, serial())["session"].is_null(); }));
  auto r = http.post_json("/api/v1/probes/" + serial() + "/gdb", json::object());
  ASSERT_EQ(r.status, 201u) << r.body;
  RspClient gdb(r.json()["port"]);
  ASSERT_TRUE(gdb.connected());
  EXPECT_EQ(gdb.ask("?"), "S05");
  // SIGTERM: the GDB thread is told to stop and joined before the database closes.
  const auto started = Clock::now();
  EXPECT_EQ(daemon_->stop(SIGTERM), 0);
  EXPECT_LT(Clock::now() - started, std::chrono::seconds(20));
  EXPECT_EQ(gdb.reply(std::chrono::seconds(5)), "(closed)");
  const std::string log = daemon_->log();
  EXPECT_NE(log.find("probefarmd.stopped"), std::string::npos) << log;
  EXPECT_NE(log.find("gdb.closed"), std::string::npos) << log;
  daemon_->start();
}

}  // namespace
}  // namespace probefarm::server::test
