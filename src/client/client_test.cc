#include "client/client.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "auth/sigv4.h"

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

TEST(EncodeBatchRequestTest, IsAnHttpRequestWhoseSignatureTheServerAccepts) {
  // Given an endpoint's credentials, the encoded bytes should be one HTTP/1.1 POST to
  // /v1/<operation> with the JSON body and its length, signed so that Verify accepts it
  // with the secret and refuses it with another.
  Endpoint ep{"http://127.0.0.1:8080", "AKIDTEST", "secretsecretsecret", "eu-west-3"};
  const int64_t now = 1795000000000;
  std::string bytes = EncodeBatchRequest(ep, now, "SubmitJob", {{"jobName", "j"}});
  size_t end = bytes.find("\r\n\r\n");
  ASSERT_NE(end, std::string::npos);
  std::string body = bytes.substr(end + 4);
  EXPECT_EQ(body, R"({"jobName":"j"})");
  std::istringstream head(bytes.substr(0, end));
  std::string line;
  std::getline(head, line);
  EXPECT_EQ(line, "POST /v1/submitjob HTTP/1.1\r");
  std::vector<auth::Header> headers;
  while (std::getline(head, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    size_t colon = line.find(": ");
    ASSERT_NE(colon, std::string::npos) << line;
    headers.push_back({line.substr(0, colon), line.substr(colon + 2)});
  }
  auto value = [&](std::string_view name) {
    for (const auto& h : headers) {
      if (h.name == name) return h.value;
    }
    return std::string();
  };
  EXPECT_EQ(value("content-length"), std::to_string(body.size()));
  EXPECT_EQ(value("host"), "127.0.0.1:8080");
  EXPECT_EQ(value("content-type"), "application/json");
  auth::RequestView view{"POST", "/v1/submitjob", &headers, body};
  auth::VerifyOptions opts{"eu-west-3", {"batch"}, now};
  auto secret = [](std::string s) {
    return [s](std::string_view id) -> std::optional<std::string> {
      if (id == "AKIDTEST") return s;
      return std::nullopt;
    };
  };
  auto ok = auth::Verify(view, secret("secretsecretsecret"), opts);
  ASSERT_TRUE(std::holds_alternative<auth::Identity>(ok)) << std::get<auth::AuthError>(ok).message;
  EXPECT_EQ(std::get<auth::Identity>(ok).access_key_id, "AKIDTEST");
  auto bad = auth::Verify(view, secret("another-secret"), opts);
  ASSERT_TRUE(std::holds_alternative<auth::AuthError>(bad));
  EXPECT_EQ(std::get<auth::AuthError>(bad).type, "InvalidSignatureException");
}

}  // namespace
}  // namespace drover::client
