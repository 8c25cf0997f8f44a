// The dashboard: the static files of web/ at `/`, without a token (the page itself asks for
// one and sends it with every API call). Any GET no API route takes falls back to a file of
// the web directory; nothing outside it is ever served.
#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "server/api.hpp"
#include "server/config.hpp"
#include "server/http_server.hpp"
#include "server/log.hpp"

#ifndef PROBEFARM_WEB_DIR
#define PROBEFARM_WEB_DIR "web"
#endif

namespace probefarm::server {

namespace fs = std::filesystem;

namespace {

// Only the kinds of file web/ holds; anything else is not served, so a stray file (an
// editor's backup, a dotfile) never leaves the host with a guessed type.
std::string_view content_type(const fs::path& file) {
  const std::string ext = file.extension().string();
  if (ext == ".html") return "text/html; charset=utf-8";
  if (ext == ".js" || ext == ".mjs") return "text/javascript; charset=utf-8";  // RFC 9239
  if (ext == ".css") return "text/css; charset=utf-8";
  if (ext == ".svg") return "image/svg+xml";
  if (ext == ".png") return "image/png";
  if (ext == ".ico") return "image/x-icon";
  if (ext == ".json") return "application/json";
  if (ext == ".txt") return "text/plain; charset=utf-8";
  return {};
}

Response not_found(const std::string& path) {
  return Response::error(404, "not_found", "no file " + path + " in the dashboard",
                         "the dashboard is at /; the API is under /api/v1 (see openapi.yaml)");
}

// The file a request path names inside `root`, or nothing. Refuses "..", ".", dotfiles,
// backslashes and NULs in any segment (the path is already percent-decoded, so %2e%2e is
// caught here too), then checks that the resolved file, symlinks followed, is still under
// the root.
std::optional<fs::path> resolve(const fs::path& root, const std::string& path) {
  if (path.empty() || path.front() != '/') return std::nullopt;
  fs::path rel;
  std::size_t i = 1;
  while (i <= path.size()) {
    std::size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    const std::string_view seg(path.data() + i, j - i);
    if (!seg.empty()) {
      if (seg.front() == '.' || seg.find('\\') != std::string_view::npos ||
          seg.find('\0') != std::string_view::npos)
        return std::nullopt;
      rel /= std::string(seg);
    }
    i = j + 1;
  }
  if (rel.empty()) rel = "index.html";
  std::error_code ec;
  const fs::path file = fs::canonical(root / rel, ec);
  if (ec || !fs::is_regular_file(file, ec)) return std::nullopt;
  const auto [root_end, file_it] =
      std::mismatch(root.begin(), root.end(), file.begin(), file.end());
  if (root_end != root.end()) return std::nullopt;
  return file;
}

}  // namespace

void web_routes(HttpServer& http, Services& s) {
  fs::path dir = s.config.web_dir.empty() ? fs::path(PROBEFARM_WEB_DIR) : s.config.web_dir;
  std::error_code ec;
  fs::path root = fs::canonical(dir, ec);
  if (ec || !fs::is_regular_file(root / "index.html", ec)) {
    // The API works without the dashboard; say why / answers 404.
    log_event(LogLevel::warn, "web.missing",
              {{"web_dir", dir.string()}, {"hint", "set --web-dir or web_dir in the config file"}});
    root = dir;
  }
  auto serve = [root](Request& r, Respond respond) {
    // Unknown API paths stay JSON errors for API clients rather than turning into pages.
    if (r.path == "/api" || r.path.rfind("/api/", 0) == 0) {
      respond(Response::error(404, "not_found", "no route for GET " + r.path,
                              "see openapi.yaml for the API's routes"));
      return;
    }
    const auto file = resolve(root, r.path);
    const std::string_view type = file ? content_type(*file) : std::string_view();
    if (!file || type.empty()) {
      respond(not_found(r.path));
      return;
    }
    Response res;
    res.status = 200;
    res.content_type = std::string(type);
    res.file = *file;
    // The page only talks to its own origin and loads nothing from elsewhere (production-line
    // machines are often offline, and a token lives in the page).
    res.headers["Content-Security-Policy"] =
        "default-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
    res.headers["X-Content-Type-Options"] = "nosniff";
    res.headers["Referrer-Policy"] = "no-referrer";
    // Revalidate every load: an upgraded daemon must not run yesterday's app.js.
    res.headers["Cache-Control"] = "no-cache";
    respond(std::move(res));
  };
  Route index{"GET", "/"};
  index.authenticated = false;
  http.add(index, serve);
  Route rest{"GET", "/{file}"};
  rest.authenticated = false;
  http.set_fallback(rest, serve);
}

}  // namespace probefarm::server
