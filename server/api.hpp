#pragma once
// The REST and WebSocket API of probefarmd: every route of openapi.yaml, registered on the
// HTTP server. Handlers validate, then hand work to the scheduler, the probe manager or the
// stores; nothing here touches a probe or blocks on one.
#include <cstdint>
#include <string>

namespace probefarm::server {

struct Config;
class Database;
class EventBus;
class HttpServer;
class ImageStore;
class Metrics;
class ProbeManager;
class Scheduler;
class TokenStore;

struct Services {
  const Config& config;
  Database& db;
  ImageStore& images;
  TokenStore& tokens;
  Scheduler& scheduler;
  ProbeManager& probes;
  EventBus& bus;
  Metrics& metrics;
  std::int64_t started_at = 0;  // ms, for GET /api/v1/status
};

void register_routes(HttpServer& http, Services& services);

// Route groups of their own files, called by register_routes.
void gdb_routes(HttpServer& http, Services& services);         // api_gdb.cpp
void console_routes(HttpServer& http, Services& services);     // api_console.cpp
void production_routes(HttpServer& http, Services& services);  // api_production.cpp
void web_routes(HttpServer& http, Services& services);         // api_web.cpp

}  // namespace probefarm::server
