#include <gtest/gtest.h>

#include "service/arn.h"

namespace drover::service {
namespace {

TEST(ArnTest, MakeAndParseRoundTrip) {
  Arns arns("eu-west-1", "111122223333");
  std::string a = arns.Make("job-definition", "sleep:3");
  EXPECT_EQ(a, "arn:aws:batch:eu-west-1:111122223333:job-definition/sleep:3");
  auto p = Arns::Parse(a);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->region, "eu-west-1");
  EXPECT_EQ(p->account, "111122223333");
  EXPECT_EQ(p->kind, "job-definition");
  EXPECT_EQ(p->resource, "sleep:3");
}

TEST(ArnTest, RejectsNonBatchArns) {
  EXPECT_FALSE(Arns::Parse("queue1"));
  EXPECT_FALSE(Arns::Parse("arn:aws:ecs:us-east-1:1:cluster/x"));
  EXPECT_FALSE(Arns::Parse("arn:aws:batch:us-east-1:1:job-queue/"));
  EXPECT_FALSE(Arns::Parse("arn:aws:batch:us-east-1:1:job-queue"));
}

}  // namespace
}  // namespace drover::service
