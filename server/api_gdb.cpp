// POST /api/v1/probes/{serial}/gdb (a TCP port for one GDB client) and the WebSocket /api/v1/probes/{serial}/gdb.
#include "server/api.hpp"

namespace probefarm::server {

void gdb_routes(HttpServer&, Services&) {}

}  // namespace probefarm::server
