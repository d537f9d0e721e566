// Two servers over one shared store, as with PostgreSQL: each service has its
// own store here, and what one writes reaches the other through ApplyChanges,
// the way Store::PollChanges delivers it.
#include <gtest/gtest.h>

#include <mutex>

#include "service/batch_service.h"

namespace drover::service {
namespace {

json::value J(std::string_view s) { return *ParseJson(s); }

// A store that also keeps what was written, for the other server to apply.
class Tap final : public store::Store {
 public:
  Tap() : inner_(std::move(store::OpenSqliteStore(":memory:")).value()) {}
  Result<std::vector<store::Record>> LoadAll() override { return inner_->LoadAll(); }
  void Write(store::WriteBatch batch, std::function<void(Status)> done) override {
    {
      std::lock_guard<std::mutex> l(mu_);
      for (const auto& r : batch.puts) written_.puts.push_back(r);
      for (const auto& k : batch.deletes) written_.deletes.push_back(k);
    }
    inner_->Write(std::move(batch), std::move(done));
  }
  size_t Pending() const override { return inner_->Pending(); }
  store::Changes Take() {
    std::lock_guard<std::mutex> l(mu_);
    return std::exchange(written_, {});
  }

 private:
  std::unique_ptr<store::Store> inner_;
  std::mutex mu_;
  store::Changes written_;
};

class NoopExecutor : public exec::Executor {
 public:
  Status Start(const exec::TaskSpec& spec) override {
    started.push_back(spec.job_id);
    tasks.push_back(spec.task_id);
    return Status::Ok();
  }
  void Terminate(const std::string& task_id, const std::string& reason) override {}
  void Shutdown() override {}
  std::string Describe() const override { return "noop"; }
  void Attach(const std::string&, const std::string&, int) override {}
  std::vector<std::string> started, tasks;
};

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 2; ++i) {
      ServiceConfig cfg;
      cfg.shared_store = true;
      cfg.seq_nonce = static_cast<uint16_t>(i + 1);
      cfg.host_capacity = {2, 4096, 0};
      svc_[i] = std::make_unique<BatchService>(cfg, tap_[i], clock_, ids_);
      ASSERT_TRUE(svc_[i]->Load().ok());
    }
    leader().SetExecutor(&exec_);
    follower().SetLeading(false);
    Ok(leader(), "CreateComputeEnvironment",
       R"({"computeEnvironmentName":"ce","type":"MANAGED","computeResources":{"type":"EC2","maxvCpus":1,"subnets":["s"]}})");
    Ok(leader(), "CreateJobQueue",
       R"({"jobQueueName":"q","priority":1,"computeEnvironmentOrder":[{"order":1,"computeEnvironment":"ce"}]})");
    Ok(leader(), "RegisterJobDefinition",
       R"({"jobDefinitionName":"jd","type":"container","containerProperties":{"image":"busybox",
           "command":["true"],"resourceRequirements":[{"type":"VCPU","value":"1"},{"type":"MEMORY","value":"16"}]}})");
    Sync();
  }
  BatchService& leader() { return *svc_[0]; }
  BatchService& follower() { return *svc_[1]; }
  // Each server applies what the other stored.
  void Sync() {
    svc_[1]->ApplyChanges(tap_[0].Take());
    svc_[0]->ApplyChanges(tap_[1].Take());
  }
  json::object Ok(BatchService& s, std::string_view op, std::string_view body) {
    auto r = s.CallSync(op, J(body));
    EXPECT_TRUE(r.ok()) << op << ": " << r.status().ToString();
    return r.ok() ? r.value() : json::object();
  }
  std::string Submit(BatchService& s) {
    return std::string(
        Ok(s, "SubmitJob", R"({"jobName":"j","jobQueue":"q","jobDefinition":"jd"})")["jobId"]
            .as_string());
  }
  std::string Status(BatchService& s, const std::string& id) {
    auto d = Ok(s, "DescribeJobs", R"({"jobs":[")" + id + R"("]})");
    const auto& jobs = d["jobs"].as_array();
    return jobs.empty() ? "(none)" : std::string(jobs[0].as_object().at("status").as_string());
  }

  FakeClock clock_;
  RandomIds ids_;
  Tap tap_[2];
  NoopExecutor exec_;
  std::unique_ptr<BatchService> svc_[2];
};

TEST_F(ClusterTest, AJobSubmittedToAFollowerRunsOnTheLeaderAndBothSeeItsState) {
  std::string id = Submit(follower());
  EXPECT_EQ(Status(leader(), id), "(none)");  // not yet applied
  Sync();
  leader().SchedulePass();  // SUBMITTED -> RUNNABLE
  leader().SchedulePass();  // placed and started
  ASSERT_EQ(exec_.started, std::vector<std::string>{id});
  Sync();
  EXPECT_EQ(Status(follower(), id), "STARTING");
  leader().OnTaskEvent({exec::TaskEvent::Kind::kRunning, exec_.tasks[0], id, 1, 1000, 0, ""});
  EXPECT_EQ(Status(leader(), id), "RUNNING");
  leader().SchedulePass();  // RUNNING is stored with the next write (at the latest, a pass)
  Sync();
  EXPECT_EQ(Status(follower(), id), "RUNNING");
}

TEST_F(ClusterTest, AFollowerDoesNotRunTheScheduler) {
  std::string id = Submit(follower());
  follower().SchedulePass();
  follower().SchedulePass();
  EXPECT_TRUE(exec_.started.empty());
  Sync();
  EXPECT_EQ(Status(leader(), id), "SUBMITTED");
}

TEST_F(ClusterTest, CancelJobOnAFollowerIsAppliedByTheLeader) {
  // The CE has 1 vCPU: the first job runs, the second waits and is cancelled.
  std::string first = Submit(leader());
  std::string second = Submit(leader());
  leader().SchedulePass();
  leader().SchedulePass();
  Sync();
  EXPECT_EQ(Status(follower(), second), "RUNNABLE");
  Ok(follower(), "CancelJob", R"({"jobId":")" + second + R"(","reason":"not needed"})");
  EXPECT_EQ(Status(follower(), second), "RUNNABLE");  // the leader decides
  Sync();
  leader().SchedulePass();
  EXPECT_EQ(Status(leader(), second), "FAILED");
  Sync();
  EXPECT_EQ(Status(follower(), second), "FAILED");
  // The request was consumed: another pass changes nothing.
  leader().SchedulePass();
  EXPECT_EQ(Status(leader(), first), "STARTING");
}

TEST_F(ClusterTest, ListingsOnBothServersHaveEveryJobOnceInCreationOrder) {
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) {
    ids.push_back(Submit(i % 2 ? follower() : leader()));
    clock_.Advance(1);
  }
  Sync();
  for (BatchService* s : {&leader(), &follower()}) {
    // (by name: a follower has moved them on to RUNNABLE itself, the leader not yet)
    auto page = Ok(*s, "ListJobs", R"({"jobQueue":"q","filters":[{"name":"JOB_NAME","values":["j"]}]})");
    std::vector<std::string> listed;
    for (const auto& j : page["jobSummaryList"].as_array()) {
      listed.emplace_back(j.as_object().at("jobId").as_string());
    }
    EXPECT_EQ(listed, ids);
  }
}

TEST_F(ClusterTest, AFollowerSeesAnArraysUnstoredChildrenAsTheLeaderDoes) {
  // An array submitted to the follower: the leader makes its children RUNNABLE and
  // starts one (1 vCPU) without storing the others; the follower shows them RUNNABLE
  // too, and the started one as the leader stored it.
  std::string p(Ok(follower(), "SubmitJob",
                   R"({"jobName":"a","jobQueue":"q","jobDefinition":"jd","arrayProperties":{"size":3}})")
                    ["jobId"].as_string());
  EXPECT_EQ(Status(follower(), p + ":2"), "SUBMITTED");
  Sync();
  leader().SchedulePass();  // SUBMITTED -> RUNNABLE, and one placed
  leader().SchedulePass();
  ASSERT_EQ(exec_.started.size(), 1u);
  std::string started = exec_.started[0];
  Sync();
  EXPECT_EQ(Status(follower(), started), "STARTING");
  for (int i = 0; i < 3; ++i) {
    std::string c = p + ":" + std::to_string(i);
    if (c != started) {
      EXPECT_EQ(Status(follower(), c), "RUNNABLE") << c;
    }
    EXPECT_EQ(Status(leader(), c), Status(follower(), c)) << c;
  }
  auto l = Ok(follower(), "ListJobs", R"({"arrayJobId":")" + p + R"(","jobStatus":"RUNNABLE"})");
  EXPECT_EQ(l["jobSummaryList"].as_array().size(), 2u);
}

}  // namespace
}  // namespace drover::service
