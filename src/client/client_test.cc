#include "client/client.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace drover::client {
namespace {

TEST(DiscoverTest, ReadsEndpointCredentialsAndRegionFromTheDataDir) {
  // Given a server's data dir and no environment, Discover should use its files.
  auto dir = std::filesystem::temp_directory_path() / ("drover-client-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "endpoint") << "http://127.0.0.1:9999\n";
  std::ofstream(dir / "credentials") << "[default]\naws_access_key_id = AKIDTEST\n"
                                        "aws_secret_access_key = secretsecretsecret\n";
  std::ofstream(dir / "config") << "[default]\nregion = eu-west-3\n";
  for (const char* v : {"DROVER_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                        "AWS_SHARED_CREDENTIALS_FILE", "AWS_PROFILE", "AWS_REGION",
                        "AWS_DEFAULT_REGION"}) {
    unsetenv(v);
  }
  auto ep = Discover("", dir.string());
  ASSERT_TRUE(ep.ok()) << ep.status().ToString();
  EXPECT_EQ(ep->url, "http://127.0.0.1:9999");
  EXPECT_EQ(ep->access_key_id, "AKIDTEST");
  EXPECT_EQ(ep->secret_access_key, "secretsecretsecret");
  EXPECT_EQ(ep->region, "eu-west-3");
  // A flag beats the file.
  EXPECT_EQ(Discover("http://h:1/", dir.string())->url, "http://h:1");
  std::filesystem::remove_all(dir);
  EXPECT_FALSE(Discover("", dir.string()).ok());
}

}  // namespace
}  // namespace drover::client
