#include <gtest/gtest.h>

#include "service/batch_service.h"

namespace drover::service {
namespace {

json::value J(std::string_view s) { return *ParseJson(s); }

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::OpenSqliteStore(":memory:");
    ASSERT_TRUE(s.ok());
    store_ = std::move(s).value();
    svc_ = std::make_unique<BatchService>(ServiceConfig{}, *store_, clock_, ids_);
    ASSERT_TRUE(svc_->Load().ok());
  }
  json::object Ok(std::string_view op, std::string_view body) {
    auto r = svc_->CallSync(op, J(body));
    EXPECT_TRUE(r.ok()) << op << ": " << r.status().ToString();
    return r.ok() ? r.value() : json::object();
  }
  // The call is refused; returns why.
  Status Refused(std::string_view op, std::string_view body) {
    auto r = svc_->CallSync(op, J(body));
    EXPECT_FALSE(r.ok()) << op << " unexpectedly succeeded";
    return r.status();
  }
  void Err(std::string_view op, std::string_view body) { (void)Refused(op, body); }
  void MakeCe(std::string name) {
    Ok("CreateComputeEnvironment",
       R"({"computeEnvironmentName":")" + name +
           R"(","type":"MANAGED","computeResources":{"type":"EC2","maxvCpus":8,"subnets":["s"]}})");
  }
  FakeClock clock_;
  FakeIds ids_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<BatchService> svc_;
};

TEST_F(ServiceTest, CreatedComputeEnvironmentIsValidWithDefaults) {
  // Given a new MANAGED compute environment, Describe should show AWS's defaults.
  MakeCe("ce1");
  auto d = Ok("DescribeComputeEnvironments", R"({"computeEnvironments":["ce1"]})");
  const auto& ce = d["computeEnvironments"].as_array().at(0).as_object();
  EXPECT_EQ(ce.at("computeEnvironmentArn"),
            "arn:aws:batch:us-east-1:123456789012:compute-environment/ce1");
  EXPECT_EQ(ce.at("state"), "ENABLED");
  EXPECT_EQ(ce.at("status"), "VALID");
  EXPECT_EQ(ce.at("computeResources").at("minvCpus"), 0);
  EXPECT_EQ(ce.at("computeResources").at("allocationStrategy"), "BEST_FIT");
}

TEST_F(ServiceTest, DuplicateNamesAndBadNamesAreRefused) {
  MakeCe("ce1");
  Status s = Refused("CreateComputeEnvironment",
                 R"({"computeEnvironmentName":"ce1","type":"UNMANAGED"})");
  EXPECT_NE(s.message().find("already exists"), std::string::npos);
  s = Refused("CreateComputeEnvironment", R"({"computeEnvironmentName":"bad name","type":"UNMANAGED"})");
  EXPECT_NE(s.message().find("invalid"), std::string::npos);
}

TEST_F(ServiceTest, RefusedUpdateChangesNothing) {
  // Given an update whose minvCpus exceeds maxvCpus, the stored CE should be unchanged.
  MakeCe("ce1");
  Err("UpdateComputeEnvironment",
      R"({"computeEnvironment":"ce1","state":"DISABLED","computeResources":{"minvCpus":20}})");
  auto d = Ok("DescribeComputeEnvironments", R"({"computeEnvironments":["ce1"]})");
  const auto& ce = d["computeEnvironments"].as_array().at(0).as_object();
  EXPECT_EQ(ce.at("state"), "ENABLED");
  EXPECT_EQ(ce.at("computeResources").at("minvCpus"), 0);
}

TEST_F(ServiceTest, QueueKeepsItsComputeEnvironmentUntilDeleted) {
  MakeCe("ce1");
  Ok("CreateJobQueue",
     R"({"jobQueueName":"q1","priority":10,"computeEnvironmentOrder":[{"order":1,"computeEnvironment":"ce1"}]})");
  Ok("UpdateComputeEnvironment", R"({"computeEnvironment":"ce1","state":"DISABLED"})");
  Status s = Refused("DeleteComputeEnvironment", R"({"computeEnvironment":"ce1"})");
  EXPECT_NE(s.message().find("JobQueue relationship"), std::string::npos);
  Err("DeleteJobQueue", R"({"jobQueue":"q1"})");  // still ENABLED
  Ok("UpdateJobQueue", R"({"jobQueue":"q1","state":"DISABLED"})");
  Ok("DeleteJobQueue", R"({"jobQueue":"q1"})");
  Ok("DeleteComputeEnvironment", R"({"computeEnvironment":"ce1"})");
  auto d = Ok("DescribeComputeEnvironments", "{}");
  EXPECT_TRUE(d["computeEnvironments"].as_array().empty());
}

TEST_F(ServiceTest, JobDefinitionRevisionsCountUpAndLatestActiveIsUsed) {
  const char* body =
      R"({"jobDefinitionName":"jd","type":"container","containerProperties":{"image":"busybox"}})";
  EXPECT_EQ(Ok("RegisterJobDefinition", body)["revision"], 1);
  EXPECT_EQ(Ok("RegisterJobDefinition", body)["revision"], 2);
  Ok("DeregisterJobDefinition", R"({"jobDefinition":"jd:2"})");
  EXPECT_EQ(Ok("RegisterJobDefinition", body)["revision"], 3);
  auto d = Ok("DescribeJobDefinitions", R"({"jobDefinitionName":"jd","status":"ACTIVE"})");
  ASSERT_EQ(d["jobDefinitions"].as_array().size(), 2u);
  Ok("DeregisterJobDefinition", R"({"jobDefinition":"jd"})");  // latest ACTIVE: 3
  d = Ok("DescribeJobDefinitions", R"({"jobDefinitions":["jd:3"]})");
  EXPECT_EQ(d["jobDefinitions"].as_array().at(0).at("status"), "INACTIVE");
}

TEST_F(ServiceTest, PaginationWalksEveryItemOnce) {
  for (int i = 0; i < 7; ++i) MakeCe("ce" + std::to_string(i));
  std::vector<std::string> seen;
  std::string token;
  for (int page = 0; page < 10; ++page) {
    std::string req = R"({"maxResults":3)" +
                      (token.empty() ? std::string() : R"(,"nextToken":")" + token + "\"") + "}";
    auto d = Ok("DescribeComputeEnvironments", req);
    for (const auto& ce : d["computeEnvironments"].as_array()) {
      seen.emplace_back(ce.at("computeEnvironmentName").as_string());
    }
    if (!d.contains("nextToken")) break;
    token = d["nextToken"].as_string();
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"ce0", "ce1", "ce2", "ce3", "ce4", "ce5", "ce6"}));
  Err("DescribeComputeEnvironments", R"({"nextToken":"garbage"})");
  Err("DescribeComputeEnvironments", R"({"maxResults":0})");
}

TEST_F(ServiceTest, StateSurvivesReload) {
  // Given resources written through the service, a fresh load should see them.
  MakeCe("ce1");
  Ok("TagResource", R"({"resourceArn":"arn:aws:batch:us-east-1:123456789012:compute-environment/ce1","tags":{"team":"x"}})");
  BatchService again(ServiceConfig{}, *store_, clock_, ids_);
  ASSERT_TRUE(again.Load().ok());
  auto r = again.CallSync("ListTagsForResource",
                          J(R"({"resourceArn":"arn:aws:batch:us-east-1:123456789012:compute-environment/ce1"})"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value()["tags"].at("team"), "x");
}

TEST_F(ServiceTest, UnsupportedOperationsSayWhy) {
  Status s = Refused("CreateServiceEnvironment", R"({})");
  EXPECT_NE(s.message().find("SageMaker"), std::string::npos);
}

TEST_F(ServiceTest, AccessKeysAreStoredAndLookedUp) {
  auto key = svc_->CreateAccessKey();
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(svc_->SecretFor(key->id), key->secret);
  EXPECT_EQ(svc_->SecretFor("AKIDNOPE"), std::nullopt);
  // Access keys are not Batch resources: they can't be tagged.
  Err("TagResource", R"({"resourceArn":")" + key->id + R"(","tags":{"a":"b"}})");
}

// A store whose writes never complete until released: a queue that backs up.
class StuckStore : public store::Store {
 public:
  Result<std::vector<store::Record>> LoadAll() override { return std::vector<store::Record>{}; }
  void Write(store::WriteBatch, std::function<void(Status)> done) override {
    waiting.push_back(std::move(done));
  }
  size_t Pending() const override { return waiting.size(); }
  std::vector<std::function<void(Status)>> waiting;
};

TEST(BackPressureTest, AFullWriteQueueAnswersTooManyRequestsAndReadsGoOn) {
  // Given a store with max_pending_writes batches waiting, the next write should be refused
  // with a throttling error (429 at the API) while reads still answer.
  StuckStore store;
  FakeClock clock;
  FakeIds ids;
  ServiceConfig cfg;
  cfg.max_pending_writes = 2;
  BatchService svc(cfg, store, clock, ids);
  ASSERT_TRUE(svc.Load().ok());
  std::vector<Result<json::object>> replies;
  for (int i = 0; i < 3; ++i) {
    svc.Call("CreateSchedulingPolicy", J(R"({"name":"p)" + std::to_string(i) + R"("})"),
             [&](Result<json::object> r) { replies.push_back(std::move(r)); });
  }
  ASSERT_EQ(replies.size(), 1u);  // two wait for the store, the third is refused at once
  EXPECT_EQ(replies[0].status().code(), Code::kThrottled);
  auto list = svc.CallSync("ListSchedulingPolicies", J("{}"));
  EXPECT_TRUE(list.ok());
  for (auto& done : store.waiting) done(Status::Ok());
  EXPECT_EQ(replies.size(), 3u);
}

TEST_F(ServiceTest, SubmitJobRequestsOverThirtyKibAreRefused) {
  MakeCe("ce1");
  Ok("CreateJobQueue", R"({"jobQueueName":"q","priority":1,"computeEnvironmentOrder":[{"order":1,"computeEnvironment":"ce1"}]})");
  Ok("RegisterJobDefinition", R"({"jobDefinitionName":"jd","type":"container","containerProperties":{"command":["true"]}})");
  std::string big(31 * 1024, 'x');
  Status s = Refused("SubmitJob", R"({"jobName":"j","jobQueue":"q","jobDefinition":"jd","parameters":{"p":")" + big + R"("}})");
  EXPECT_NE(s.message().find("30 KiB"), std::string::npos);
  auto l = Ok("ListJobs", R"({"jobQueue":"q","jobStatus":"SUBMITTED"})");
  EXPECT_TRUE(l["jobSummaryList"].as_array().empty());
}

}  // namespace
}  // namespace drover::service
