#include <gtest/gtest.h>

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
