#pragma once
// Bearer tokens with roles viewer < operator < admin. A token is 32 random bytes as 64 hex
// characters, prefixed "pf_"; only its SHA-256 is kept (database, config file), and a
// presented token is hashed and compared with every stored hash in constant time.
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/model.hpp"

namespace probefarm::server {

class Database;

// SHA-256 of `data` as 64 lowercase hex digits.
std::string sha256_hex(std::string_view data);
// Equal length and content, in time independent of where they differ.
bool constant_time_equal(std::string_view a, std::string_view b);
// A new token: "pf_" + 64 hex digits from /dev/urandom.
std::string generate_token();

struct TokenInfo {
  std::string name;
  Role role = Role::viewer;
  std::string source;  // "database", "config", "admin-token"
  std::int64_t created_at = 0;
};

class TokenStore {
 public:
  explicit TokenStore(Database& db);

  // First start: creates an admin token named "admin", stores its hash and writes the token
  // to `file` (mode 0600). Later starts: reads `file` if it is still there and returns it
  // (so scripts/run can print it); returns "" if the file was removed.
  std::string ensure_admin_token(const std::filesystem::path& file);
  // A token from the config file, given as its SHA-256 hex (never the token itself).
  void add_configured(const std::string& name, Role role, const std::string& sha256);

  // The principal a bearer token belongs to; nullopt if none.
  std::optional<Principal> authenticate(std::string_view token) const;

  // Admin API: creates a token (returns it once), lists, revokes. Names are unique;
  // Error(usage) for an empty or duplicate name, or for revoking a config-file token.
  std::string create(const std::string& name, Role role);
  std::vector<TokenInfo> list() const;
  bool revoke(const std::string& name);

 private:
  struct Entry {
    TokenInfo info;
    std::string sha256;
  };
  Database& db_;
  mutable std::mutex mutex_;
  std::vector<Entry> entries_;
};

}  // namespace probefarm::server
