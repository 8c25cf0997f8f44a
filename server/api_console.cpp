// the WebSocket /api/v1/probes/{serial}/console: the OpenOCD-style console.
#include "server/api.hpp"

namespace probefarm::server {

void console_routes(HttpServer&, Services&) {}

}  // namespace probefarm::server
