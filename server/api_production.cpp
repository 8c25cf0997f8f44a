// production serial-number counters, backups and guarded operations.
#include "server/api.hpp"

namespace probefarm::server {

void production_routes(HttpServer&, Services&) {}

}  // namespace probefarm::server
