#include "model/model.h"

#include <gtest/gtest.h>

namespace drover::model {
namespace {

json::value J(std::string_view s) { return *ParseJson(s); }

TEST(ModelTest, BatchModelHasEveryOperationRoute) {
  // Given the embedded botocore model, every Batch operation should have its REST route.
  const auto& m = ServiceModel::Batch();
  EXPECT_GE(m.operations().size(), 45u);
  const Operation* op = m.FindOperation("CreateComputeEnvironment");
  ASSERT_NE(op, nullptr);
  EXPECT_EQ(op->method, "POST");
  EXPECT_EQ(op->uri, "/v1/createcomputeenvironment");
  EXPECT_EQ(m.FindOperation("UntagResource")->method, "DELETE");
}

TEST(ModelTest, MissingRequiredMembersAreReportedTogether) {
  // Given a request without its required members, both should be named, AWS-style.
  json::value v = J("{}");
  Status s = ServiceModel::Batch().Conform("CreateComputeEnvironmentRequest", v);
  ASSERT_EQ(s.code(), Code::kClient);
  EXPECT_EQ(s.message(),
            "2 validation errors detected: Value null at 'computeEnvironmentName' failed to "
            "satisfy constraint: Member must not be null; Value null at 'type' failed to "
            "satisfy constraint: Member must not be null");
}

TEST(ModelTest, WrongTypesEnumsAndNestedPathsAreNamed) {
  json::value v = J(R"({"computeEnvironmentName":"ce","type":"BOGUS",
      "computeResources":{"type":"EC2","maxvCpus":"four","subnets":["s"]}})");
  Status s = ServiceModel::Batch().Conform("CreateComputeEnvironmentRequest", v);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("Value 'BOGUS' at 'type' failed to satisfy constraint: Member must "
                             "satisfy enum value set: [MANAGED, UNMANAGED]"),
            std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("Value 'four' at 'computeResources.maxvCpus' failed to satisfy "
                             "constraint: Member must be an integer"),
            std::string::npos)
      << s.message();
}

TEST(ModelTest, UnknownMembersAreDroppedAndValidInputPasses) {
  json::value v = J(R"({"jobQueueName":"q","priority":1,"bogus":{"x":1}})");
  ASSERT_TRUE(ServiceModel::Batch().Conform("CreateJobQueueRequest", v).ok());
  EXPECT_FALSE(v.as_object().contains("bogus"));
  EXPECT_TRUE(v.as_object().contains("jobQueueName"));
}

TEST(ModelTest, LengthLimitsOfTagsApply) {
  json::value v = J(R"({"resourceArn":"a","tagKeys":[]})");
  Status s = ServiceModel::Batch().Conform("UntagResourceRequest", v);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("Member must have length greater than or equal to 1"),
            std::string::npos);
}

}  // namespace
}  // namespace drover::model
