#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>

#include "probe/error.hpp"
#include "server/auth.hpp"
#include "server/database.hpp"
#include "temp_dir.hpp"

namespace probefarm::server {
namespace {

using test::TempDir;

namespace fs = std::filesystem;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string usage_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::usage) << e.what();
    EXPECT_FALSE(e.hint().empty());
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return {};
}

TEST(StoreAuth, ConstantTimeEqualComparesLengthAndEveryByte) {
  EXPECT_TRUE(constant_time_equal("", ""));
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("xbc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abcd"));
  EXPECT_FALSE(constant_time_equal("abc", std::string_view("abc\0", 4)));
  EXPECT_FALSE(constant_time_equal("", "a"));
}

TEST(StoreAuth, GeneratedTokensArePrefixedRandomHex) {
  std::set<std::string> seen;
  for (int i = 0; i < 50; ++i) {
    const std::string t = generate_token();
    ASSERT_EQ(t.size(), 67u);
    EXPECT_EQ(t.substr(0, 3), "pf_");
    EXPECT_EQ(t.find_first_not_of("0123456789abcdef", 3), std::string::npos) << t;
    seen.insert(t);
  }
  EXPECT_EQ(seen.size(), 50u);
}

TEST(StoreAuth, CreatedTokensAuthenticateWithTheirRoleAndOnlyTheHashIsStored) {
  TempDir dir;
  const fs::path db_path = dir.path() / "probefarm.db";
  Database db(db_path);
  TokenStore store(db);
  const std::string viewer = store.create("dashboard", Role::viewer);
  const std::string op = store.create("ci", Role::operator_);

  auto who = store.authenticate(op);
  ASSERT_TRUE(who.has_value());
  EXPECT_EQ(who->name, "ci");
  EXPECT_EQ(who->role, Role::operator_);
  ASSERT_TRUE(store.authenticate(viewer).has_value());
  EXPECT_EQ(store.authenticate(viewer)->role, Role::viewer);
  EXPECT_FALSE(store.authenticate("").has_value());
  EXPECT_FALSE(store.authenticate(op + "x").has_value());
  EXPECT_FALSE(store.authenticate(sha256_hex(op)).has_value());  // the hash is no password

  const auto records = db.tokens();
  ASSERT_EQ(records.size(), 2u);
  for (const TokenRecord& r : records) {
    EXPECT_EQ(r.sha256, sha256_hex(r.name == "ci" ? op : viewer));
    EXPECT_GT(r.created_at, 0);
  }
  // Not in any column, nor anywhere in the database files.
  const std::string raw = read_file(db_path) + read_file(db_path.string() + "-wal");
  EXPECT_EQ(raw.find(op.substr(3)), std::string::npos);
  EXPECT_EQ(raw.find(viewer.substr(3)), std::string::npos);
  EXPECT_NE(raw.find(sha256_hex(op)), std::string::npos);

  // A restart reads the tokens back.
  TokenStore again(db);
  ASSERT_TRUE(again.authenticate(op).has_value());
  EXPECT_EQ(again.authenticate(op)->name, "ci");
  const auto listed = again.list();
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].source, "database");
}

TEST(StoreAuth, NamesAreUniqueAndNonEmpty) {
  TempDir dir;
  Database db(dir.path() / "p.db");
  TokenStore store(db);
  store.create("ci", Role::operator_);
  EXPECT_NE(usage_error([&] { store.create("ci", Role::admin); }).find("already exists"),
            std::string::npos);
  EXPECT_NE(usage_error([&] { store.create("", Role::admin); }).find("needs a name"),
            std::string::npos);
  EXPECT_NE(usage_error([&] { store.create("a b", Role::admin); }).find("not allowed"),
            std::string::npos);
  EXPECT_NE(usage_error([&] { store.create("admin", Role::admin); }).find("reserved"),
            std::string::npos);
  EXPECT_NE(usage_error([&] {
              store.add_configured("admin", Role::admin, std::string(64, 'c'));
            }).find("reserved"),
            std::string::npos);
  store.add_configured("line-1", Role::operator_, std::string(64, 'a'));
  EXPECT_NE(usage_error([&] { store.create("line-1", Role::viewer); }).find("already exists"),
            std::string::npos);
  EXPECT_NE(usage_error([&] {
              store.add_configured("ci", Role::viewer, std::string(64, 'b'));
            }).find("used twice"),
            std::string::npos);
  EXPECT_NE(usage_error([&] { store.add_configured("x", Role::viewer, "abc"); }).find("64 hex"),
            std::string::npos);
  EXPECT_EQ(db.tokens().size(), 1u);
}

TEST(StoreAuth, RevokeRemovesTheTokenForGoodButNotConfiguredOnes) {
  TempDir dir;
  Database db(dir.path() / "p.db");
  TokenStore store(db);
  const std::string token = store.create("ci", Role::operator_);
  const std::string configured = generate_token();
  store.add_configured("line", Role::operator_, sha256_hex(configured));
  ASSERT_TRUE(store.authenticate(configured).has_value());
  EXPECT_EQ(store.authenticate(configured)->name, "line");

  EXPECT_TRUE(store.revoke("ci"));
  EXPECT_FALSE(store.authenticate(token).has_value());
  EXPECT_FALSE(store.revoke("ci"));
  EXPECT_FALSE(store.revoke("nobody"));
  EXPECT_NE(usage_error([&] { store.revoke("line"); }).find("config file"), std::string::npos);
  EXPECT_TRUE(store.authenticate(configured).has_value());

  TokenStore restarted(db);
  EXPECT_FALSE(restarted.authenticate(token).has_value());
  // Configured tokens live in memory only: a restart re-reads them from the config file.
  EXPECT_FALSE(restarted.authenticate(configured).has_value());
  EXPECT_TRUE(db.tokens().empty());
}

TEST(StoreAuth, AdminTokenFileIsPrivateAndCreatedOnce) {
  TempDir dir;
  Database db(dir.path() / "p.db");
  const fs::path file = dir.path() / "admin-token";
  std::string token;
  {
    TokenStore store(db);
    token = store.ensure_admin_token(file);
    ASSERT_EQ(token.size(), 67u);
    const auto who = store.authenticate(token);
    ASSERT_TRUE(who.has_value());
    EXPECT_EQ(who->name, "admin");
    EXPECT_EQ(who->role, Role::admin);
    ASSERT_EQ(store.list().size(), 1u);
    EXPECT_EQ(store.list()[0].source, "admin-token");
  }
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(read_file(file), token + "\n");
  EXPECT_FALSE(fs::exists(file.string() + ".tmp"));
  ASSERT_EQ(db.tokens().size(), 1u);
  EXPECT_EQ(db.tokens()[0].sha256, sha256_hex(token));

  // Later starts: the same token, read back from the file; nothing new is created.
  {
    TokenStore store(db);
    EXPECT_EQ(store.ensure_admin_token(file), token);
    EXPECT_TRUE(store.authenticate(token).has_value());
  }
  EXPECT_EQ(db.tokens().size(), 1u);
  EXPECT_EQ(read_file(file), token + "\n");

  // The operator removed the file after noting the token: it still works, nothing is
  // printed, and no second admin token appears.
  fs::remove(file);
  {
    TokenStore store(db);
    EXPECT_EQ(store.ensure_admin_token(file), "");
    EXPECT_TRUE(store.authenticate(token).has_value());
  }
  EXPECT_FALSE(fs::exists(file));
  EXPECT_EQ(db.tokens().size(), 1u);
}

}  // namespace
}  // namespace probefarm::server
