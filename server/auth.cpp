#include "server/auth.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>

#include "probe/error.hpp"
#include "server/database.hpp"

namespace probefarm::server {

namespace {

constexpr const char* kAdminName = "admin";

bool is_sha256_hex(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
         });
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

void validate_name(const std::string& name) {
  if (name == kAdminName)
    throw Error(ErrorCategory::usage, "token name 'admin' is reserved for the admin token",
                "choose another name");
  if (name.empty())
    throw Error(ErrorCategory::usage, "a token needs a name", "give the token a name, e.g. \"ci\"");
  if (name.size() > 64 || !std::all_of(name.begin(), name.end(), [](unsigned char c) {
        return std::isalnum(c) || c == '-' || c == '_' || c == '.';
      }))
    throw Error(ErrorCategory::usage, "token name '" + name + "' is not allowed",
                "use up to 64 letters, digits, '-', '_' or '.'");
}

[[noreturn]] void io_error(const std::string& what, const std::filesystem::path& path) {
  throw Error(ErrorCategory::internal, what + " " + path.string() + ": " + std::strerror(errno),
              "check that the data directory is writable");
}

// Writes `text` to `file` with mode 0600 so that it never exists half-written or readable by
// others: a private temporary file in the same directory, fsync, rename, fsync the directory.
void write_private_file(const std::filesystem::path& file, const std::string& text) {
  std::filesystem::path temp = file;
  temp += ".tmp";
  ::unlink(temp.c_str());
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) io_error("cannot create", temp);
  std::size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      ::unlink(temp.c_str());
      io_error("cannot write", temp);
    }
    written += static_cast<std::size_t>(n);
  }
  // The umask may have narrowed the mode further but never widened it; make it exact.
  ::fchmod(fd, 0600);
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(temp.c_str());
    io_error("cannot write", temp);
  }
  if (::rename(temp.c_str(), file.c_str()) != 0) {
    ::unlink(temp.c_str());
    io_error("cannot rename to", file);
  }
  const auto dir = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace

bool constant_time_equal(std::string_view a, std::string_view b) {
  // Every byte of the longer input is visited whatever differs, so the time depends on the
  // lengths only (equal for two SHA-256 hex strings).
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  const std::size_t n = std::max(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned>(x ^ y);
  }
  return diff == 0;
}

std::string generate_token() {
  std::uint8_t random[32];
  std::size_t got = 0;
  while (got < sizeof random) {
    const ssize_t n = ::getrandom(random + got, sizeof random - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      throw Error(ErrorCategory::internal, std::string("getrandom failed: ") + std::strerror(errno),
                  "check the system's entropy source");
    got += static_cast<std::size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string token = "pf_";
  for (std::uint8_t b : random) {
    token += kHex[b >> 4];
    token += kHex[b & 0xF];
  }
  return token;
}

TokenStore::TokenStore(Database& db) : db_(db) {
  for (const TokenRecord& r : db_.tokens())
    entries_.push_back(
        {{r.name, r.role, r.name == kAdminName ? "admin-token" : "database", r.created_at},
         lower(r.sha256)});
}

std::string TokenStore::ensure_admin_token(const std::filesystem::path& file) {
  std::lock_guard lock(mutex_);
  auto admin = std::find_if(entries_.begin(), entries_.end(),
                            [](const Entry& e) { return e.info.source == "admin-token"; });
  if (admin != entries_.end()) {
    std::ifstream in(file);
    if (!in) return "";
    std::string token;
    std::getline(in, token);
    // A stale file (the admin token was revoked and re-created) must not be printed as if
    // it still worked.
    return constant_time_equal(sha256_hex(token), admin->sha256) ? token : "";
  }
  const std::string token = generate_token();
  // The file first: if the database write then fails, the next start simply tries again,
  // whereas a stored hash whose token nobody can read would lock the admin out.
  write_private_file(file, token + "\n");
  const TokenRecord record{kAdminName, Role::admin, sha256_hex(token), now_ms()};
  db_.put_token(record);
  entries_.erase(std::remove_if(entries_.begin(), entries_.end(),
                                [](const Entry& e) { return e.info.name == kAdminName; }),
                 entries_.end());
  entries_.push_back({{record.name, record.role, "admin-token", record.created_at}, record.sha256});
  return token;
}

void TokenStore::add_configured(const std::string& name, Role role, const std::string& sha256) {
  validate_name(name);
  if (!is_sha256_hex(sha256))
    throw Error(ErrorCategory::usage,
                "token '" + name + "': sha256 must be 64 hex digits (the SHA-256 of the token)",
                "compute it with: printf %s \"$TOKEN\" | sha256sum");
  std::lock_guard lock(mutex_);
  if (std::any_of(entries_.begin(), entries_.end(),
                  [&](const Entry& e) { return e.info.name == name; }))
    throw Error(ErrorCategory::usage, "token name '" + name + "' is used twice",
                "give every token a unique name");
  entries_.push_back({{name, role, "config", 0}, lower(sha256)});
}

std::optional<Principal> TokenStore::authenticate(std::string_view token) const {
  const std::string presented = sha256_hex(token);
  std::lock_guard lock(mutex_);
  // Every entry is compared, matched or not, so the time taken says nothing about which
  // (or whether any) entry matched.
  const Entry* found = nullptr;
  for (const Entry& e : entries_) {
    const bool equal = constant_time_equal(presented, e.sha256);
    if (equal && !found) found = &e;
  }
  if (!found) return std::nullopt;
  return Principal{found->info.name, found->info.role};
}

std::string TokenStore::create(const std::string& name, Role role) {
  validate_name(name);
  std::lock_guard lock(mutex_);
  if (std::any_of(entries_.begin(), entries_.end(),
                  [&](const Entry& e) { return e.info.name == name; }))
    throw Error(ErrorCategory::usage, "a token named '" + name + "' already exists",
                "choose another name, or revoke the old token first");
  const std::string token = generate_token();
  const TokenRecord record{name, role, sha256_hex(token), now_ms()};
  db_.put_token(record);
  entries_.push_back({{name, role, "database", record.created_at}, record.sha256});
  return token;
}

std::vector<TokenInfo> TokenStore::list() const {
  std::lock_guard lock(mutex_);
  std::vector<TokenInfo> out;
  for (const Entry& e : entries_)
    out.push_back(e.info);
  return out;
}

bool TokenStore::revoke(const std::string& name) {
  std::lock_guard lock(mutex_);
  auto it = std::find_if(entries_.begin(), entries_.end(),
                         [&](const Entry& e) { return e.info.name == name; });
  if (it == entries_.end()) return false;
  if (it->info.source == "config")
    throw Error(ErrorCategory::usage, "token '" + name + "' comes from the config file",
                "remove it from the config file and restart probefarmd");
  db_.delete_token(name);
  entries_.erase(it);
  return true;
}

}  // namespace probefarm::server
