// openapi.yaml is the contract: the routes the daemon registers and the paths and methods
// the document describes must be the same set, both ways.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "server/api.hpp"
#include "server/auth.hpp"
#include "server/config.hpp"
#include "server/database.hpp"
#include "server/event_bus.hpp"
#include "server/http_server.hpp"
#include "server/image_store.hpp"
#include "server/metrics.hpp"
#include "server/probe_manager.hpp"
#include "server/scheduler.hpp"

namespace probefarm::server {
namespace {

// "GET /api/v1/jobs/{id}" for every operation under `paths:`; WebSocket operations (marked
// x-websocket) as "WS …". The document is written with two-space indentation: paths at
// two spaces, methods at four, operation keys at six.
std::set<std::string> documented_routes() {
  std::ifstream f(PROBEFARM_OPENAPI);
  EXPECT_TRUE(f) << "cannot read " << PROBEFARM_OPENAPI;
  std::set<std::string> out;
  bool in_paths = false;
  std::string path, method;
  for (std::string line; std::getline(f, line);) {
    if (line.empty() || line[0] == '#') continue;
    if (line[0] != ' ') {
      in_paths = line == "paths:";
      continue;
    }
    if (!in_paths) continue;
    const auto indent = line.find_first_not_of(' ');
    const std::string text = line.substr(indent);
    if (indent == 2 && text.back() == ':') {
      path = text.substr(0, text.size() - 1);
    } else if (indent == 4) {
      for (const char* m : {"get", "post", "patch", "put", "delete"})
        if (text == std::string(m) + ":") {
          method = m;
          for (auto& c : method)
            c = static_cast<char>(std::toupper(c));
          out.insert(method + " " + path);
        }
    } else if (indent == 6 && text == "x-websocket: true") {
      out.erase(method + " " + path);
      out.insert("WS " + path);
    }
  }
  return out;
}

TEST(OpenApi, DocumentAndServerAgreeOnEveryRoute) {
  const auto dir = std::filesystem::temp_directory_path() / "probefarm_openapi_test";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  Config config;
  config.data_dir = dir;
  Database db(dir / "probefarm.db");
  ImageStore images(dir / "images", db);
  TokenStore tokens(db);
  Metrics metrics;
  EventBus bus;
  Scheduler scheduler(db, bus, metrics);
  ProbeManager probes(config, db, images, scheduler, bus, metrics);
  boost::asio::io_context io;
  HttpOptions options;
  options.port = 0;
  options.upload_dir = dir / "images" / "tmp";
  HttpServer http(io, options, tokens, metrics);
  Services services{config, db, images, tokens, scheduler, probes, bus, metrics, now_ms()};
  register_routes(http, services);

  std::set<std::string> served;
  for (const auto& r : http.routes())
    served.insert(r.method + " " + r.path);
  const std::set<std::string> documented = documented_routes();
  ASSERT_GT(documented.size(), 20u) << "the document parser found too little";
  for (const auto& r : served)
    EXPECT_TRUE(documented.count(r)) << r << " is served but not in openapi.yaml";
  for (const auto& r : documented)
    EXPECT_TRUE(served.count(r)) << r << " is in openapi.yaml but not served";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace probefarm::server
