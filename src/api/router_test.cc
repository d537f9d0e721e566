#include "api/router.h"

#include <gtest/gtest.h>

namespace drover::api {
namespace {

HttpRequest Req(std::string method, std::string target, std::string body = "") {
  return HttpRequest{std::move(method), std::move(target), {}, std::move(body)};
}

TEST(RouterTest, OperationsRouteByMethodAndPath) {
  auto r = RouteBatch(Req("POST", "/v1/createjobqueue", R"({"jobQueueName":"q"})"));
  ASSERT_TRUE(std::holds_alternative<Route>(r));
  EXPECT_EQ(std::get<Route>(r).operation, "CreateJobQueue");
  EXPECT_EQ(std::get<Route>(r).input.at("jobQueueName"), "q");
}

TEST(RouterTest, TagRoutesDecodeTheArnAndTagKeys) {
  // Given botocore's encoding of an ARN in the path and tag keys in the query.
  auto r = RouteBatch(Req("DELETE",
                          "/v1/tags/arn%3Aaws%3Abatch%3Aus-east-1%3A1%3Ajob-queue%2Fq1"
                          "?tagKeys=a&tagKeys=b%20c"));
  ASSERT_TRUE(std::holds_alternative<Route>(r));
  const Route& route = std::get<Route>(r);
  EXPECT_EQ(route.operation, "UntagResource");
  EXPECT_EQ(route.input.at("resourceArn"), "arn:aws:batch:us-east-1:1:job-queue/q1");
  EXPECT_EQ(ToJson(route.input.at("tagKeys")), R"(["a","b c"])");
  EXPECT_EQ(std::get<Route>(RouteBatch(Req("GET", "/v1/tags/x"))).operation,
            "ListTagsForResource");
}

TEST(RouterTest, UnknownRoutesAndBadBodiesAreAwsErrors) {
  auto r = RouteBatch(Req("POST", "/v1/nosuchthing"));
  ASSERT_TRUE(std::holds_alternative<RouteError>(r));
  EXPECT_EQ(std::get<RouteError>(r).status, 404);
  EXPECT_EQ(std::get<RouteError>(r).type, "UnknownOperationException");
  r = RouteBatch(Req("POST", "/v1/createjobqueue", "[1,2]"));
  ASSERT_TRUE(std::holds_alternative<RouteError>(r));
  EXPECT_EQ(std::get<RouteError>(r).type, "ClientException");
  r = RouteBatch(Req("POST", "/v1/createjobqueue", "{nope"));
  EXPECT_EQ(std::get<RouteError>(r).status, 400);
}

TEST(RouterTest, ANumberPastADoublesRangeIsRefused) {
  // Given a number that parses as infinity (which would be written back as `Infinity`,
  // not JSON), the request should be refused; a large finite one is fine.
  auto r = RouteBatch(Req("POST", "/v1/submitjob", R"({"jobName":"j","x":[{"y":1E005000}]})"));
  ASSERT_TRUE(std::holds_alternative<RouteError>(r));
  EXPECT_EQ(std::get<RouteError>(r).status, 400);
  EXPECT_EQ(std::get<RouteError>(r).type, "ClientException");
  EXPECT_NE(std::get<RouteError>(r).message.find("out of range"), std::string::npos);
  r = RouteBatch(Req("POST", "/v1/submitjob", R"({"jobName":"j","x":-1e999})"));
  EXPECT_TRUE(std::holds_alternative<RouteError>(r));
  r = RouteBatch(Req("POST", "/v1/submitjob", R"({"jobName":"j","x":1.5e300,"y":1e-999})"));
  EXPECT_TRUE(std::holds_alternative<Route>(r));
}

TEST(RouterTest, StatusesMapOntoAwsExceptions) {
  HttpResponse r = StatusResponse(Status::Client("bad"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body, R"({"__type":"ClientException","message":"bad"})");
  EXPECT_EQ(StatusResponse(Status::Server("disk")).status, 500);
  EXPECT_EQ(StatusResponse(Status::Throttled("slow down")).status, 429);
}

TEST(RouterTest, ErrorsQuotingRawBytesAreStillJson) {
  // Given a request path that is not UTF-8 (found by fuzz_http), the 404's
  // message quotes it: the reply should still be JSON, with U+FFFD for the byte.
  auto r = RouteBatch(Req("POST", "/v1/submi\xF4job"));
  ASSERT_TRUE(std::holds_alternative<RouteError>(r));
  const RouteError& e = std::get<RouteError>(r);
  HttpResponse resp = ErrorResponse(e.status, e.type, e.message);
  auto body = ParseJson(resp.body);
  ASSERT_TRUE(body.ok()) << resp.body;
  EXPECT_EQ(body->at("message"), "No AWS Batch operation matches POST /v1/submi\xEF\xBF\xBDjob");
}

}  // namespace
}  // namespace drover::api
