#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "server/server.h"

namespace drover::server {
namespace {

TEST(CredentialsTest, ParsesProfilesAndRoundTrips) {
  auto r = ParseCredentials(RenderCredentials("AKIDEXAMPLE12345678", "secretsecretsecret"));
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].profile, "default");
  EXPECT_EQ((*r)[0].access_key_id, "AKIDEXAMPLE12345678");
  EXPECT_EQ((*r)[0].secret_access_key, "secretsecretsecret");

  r = ParseCredentials("# c\n[a]\naws_access_key_id=K1\naws_secret_access_key = S1\n"
                       "region=x\n[b]\n[c]\naws_access_key_id = K3\naws_secret_access_key=S3");
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[1].profile, "c");
  EXPECT_EQ((*r)[1].secret_access_key, "S3");
}

TEST(CredentialsTest, HalfAKeyIsAnError) {
  EXPECT_FALSE(ParseCredentials("[a]\naws_access_key_id=K1\n").ok());
  EXPECT_FALSE(ParseCredentials("[a\n").ok());
  EXPECT_FALSE(ParseCredentials("[a]\njunk\n").ok());
}

TEST(StoreFlagTest, NoURLIsTheSqliteFileInTheDataDir) {
  // Given no --store, the state should live in DATA/state.db.
  auto dir = std::filesystem::temp_directory_path() /
             ("drover-server-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    auto s = OpenStore("", dir.string());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
  }
  EXPECT_TRUE(std::filesystem::exists(dir / "state.db"));
  std::filesystem::remove_all(dir);
}

TEST(StoreFlagTest, OnlyPostgresURLsAreAccepted) {
  // Given a --store that is not a postgres:// or postgresql:// URL, opening should fail as
  // a usage error; a PostgreSQL URL where nothing listens should fail as a server error.
  auto s = OpenStore("mysql://localhost/db", "/nonexistent");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kClient);
  EXPECT_NE(s.status().message().find("--store"), std::string::npos);
  for (const char* url : {"postgres://127.0.0.1:1/x?connect_timeout=2",
                          "postgresql://127.0.0.1:1/x?connect_timeout=2"}) {
    s = OpenStore(url, "/nonexistent");
    ASSERT_FALSE(s.ok()) << url;
    EXPECT_EQ(s.status().code(), Code::kServer) << url;
    EXPECT_NE(s.status().message().find("PostgreSQL"), std::string::npos) << url;
  }
}

TEST(ListenTest, ParsesHostAndPort) {
  auto r = ParseListen("127.0.0.1:0");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->first, "127.0.0.1");
  EXPECT_EQ(r->second, 0);
  EXPECT_EQ(ParseListen("[::1]:8080")->first, "::1");
  EXPECT_FALSE(ParseListen("localhost").ok());
  EXPECT_FALSE(ParseListen("h:99999").ok());
  EXPECT_FALSE(ParseListen("h:8x").ok());
}

}  // namespace
}  // namespace drover::server
