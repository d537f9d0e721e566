#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "service/batch_service.h"

namespace drover::service {
namespace {

json::value J(std::string_view s) { return *ParseJson(s); }

// Records what it is asked to run; the test plays the process's part.
class FakeExecutor : public exec::Executor {
 public:
  Status Start(const exec::TaskSpec& spec) override {
    if (!fail_with.empty()) return Status::Client(fail_with);
    started.push_back(spec);
    if (svc) {
      svc->OnTaskEvent({exec::TaskEvent::Kind::kRunning, spec.task_id, spec.job_id, spec.attempt,
                        1000, 0, ""});
    }
    return Status::Ok();
  }
  void Terminate(const std::string& task_id, const std::string& reason) override {
    terminated.push_back(task_id + ":" + reason);
  }
  void Shutdown() override {}
  std::string Describe() const override { return "fake"; }
  void Attach(const std::string& task_id, const std::string& job_id, int attempt) override {
    attached.push_back(task_id);
    if (svc) {
      svc->OnTaskEvent({exec::TaskEvent::Kind::kExited, task_id, job_id, attempt, 3000, -1,
                        "Host lost: gone"});
    }
  }
  std::vector<std::string> attached;
  BatchService* svc = nullptr;
  std::string fail_with;
  std::vector<exec::TaskSpec> started;
  std::vector<std::string> terminated;
};

class JobsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    scratch_ = std::filesystem::temp_directory_path() / ("drover-jobs-" + std::to_string(getpid()));
    auto s = store::OpenSqliteStore(":memory:");
    ASSERT_TRUE(s.ok());
    store_ = std::move(s).value();
    ServiceConfig cfg;
    cfg.host_capacity = {2, 4096, 0};
    cfg.scratch_root = scratch_.string();
    cfg.log_root = (scratch_ / "logs").string();
    cfg.min_attempt_seconds = 1;
    cfg.min_time_limit_seconds = 1;
    svc_ = std::make_unique<BatchService>(cfg, *store_, clock_, ids_);
    ASSERT_TRUE(svc_->Load().ok());
    exec_.svc = svc_.get();
    svc_->SetExecutor(&exec_);
    Ok("CreateComputeEnvironment",
       R"({"computeEnvironmentName":"ce","type":"MANAGED","computeResources":{"type":"EC2","maxvCpus":2,"subnets":["s"]}})");
    Ok("CreateJobQueue",
       R"({"jobQueueName":"q","priority":1,"computeEnvironmentOrder":[{"order":1,"computeEnvironment":"ce"}]})");
    Ok("RegisterJobDefinition",
       R"({"jobDefinitionName":"jd","type":"container","parameters":{"who":"world"},
           "containerProperties":{"image":"busybox","command":["echo","Ref::who"],
           "environment":[{"name":"A","value":"1"}],
           "resourceRequirements":[{"type":"VCPU","value":"1"},{"type":"MEMORY","value":"256"}]}})");
  }
  void TearDown() override { std::filesystem::remove_all(scratch_); }
  json::object Ok(std::string_view op, std::string_view body) {
    auto r = svc_->CallSync(op, J(body));
    EXPECT_TRUE(r.ok()) << op << ": " << r.status().ToString();
    return r.ok() ? r.value() : json::object();
  }
  std::string Submit(std::string extra = "") {
    return std::string(Ok("SubmitJob", R"({"jobName":"j","jobQueue":"q","jobDefinition":"jd")" +
                                           extra + "}")["jobId"]
                           .as_string());
  }
  json::object Job(const std::string& id) {
    auto d = Ok("DescribeJobs", R"({"jobs":[")" + id + R"("]})");
    return d["jobs"].as_array().at(0).as_object();
  }
  std::string Status(const std::string& id) { return std::string(Job(id)["status"].as_string()); }
  void Exit(const exec::TaskSpec& spec, int code, std::string reason = "") {
    svc_->OnTaskEvent({exec::TaskEvent::Kind::kExited, spec.task_id, spec.job_id, spec.attempt,
                       2000, code, reason});
  }

  std::filesystem::path scratch_;
  FakeClock clock_;
  FakeIds ids_;
  FakeExecutor exec_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<BatchService> svc_;
};

TEST_F(JobsTest, AJobRunsThroughEveryStateToSucceeded) {
  // Given a submitted job, a pass should start it with its command, env and parameters.
  std::string id = Submit();
  EXPECT_EQ(Status(id), "SUBMITTED");
  svc_->SchedulePass();
  ASSERT_EQ(exec_.started.size(), 1u);
  const exec::TaskSpec& spec = exec_.started[0];
  EXPECT_EQ(spec.argv, (std::vector<std::string>{"echo", "world"}));
  std::set<std::string> env(spec.env.begin(), spec.env.end());
  EXPECT_TRUE(env.count("A=1"));
  EXPECT_TRUE(env.count("AWS_BATCH_JOB_ID=" + id));
  EXPECT_TRUE(env.count("AWS_BATCH_JOB_ATTEMPT=1"));
  EXPECT_TRUE(env.count("AWS_BATCH_JQ_NAME=q"));
  EXPECT_TRUE(env.count("AWS_BATCH_CE_NAME=ce"));
  EXPECT_EQ(Status(id), "RUNNING");
  EXPECT_EQ(spec.log_stream, "jd/default/" + spec.task_id);
  Exit(spec, 0);
  json::object job = Job(id);
  EXPECT_EQ(job["status"], "SUCCEEDED");
  EXPECT_EQ(job["statusReason"], json::value("Essential container in task exited"));
  EXPECT_EQ(job["container"].at("exitCode"), 0);
  EXPECT_EQ(job["container"].at("logStreamName"), json::value(spec.log_stream));
  ASSERT_EQ(job["attempts"].as_array().size(), 1u);
  EXPECT_FALSE(job.contains("drover:ce"));
}

TEST_F(JobsTest, APassAfterAnExitLooksOnlyAtTheQueueHeadAndAFullPassBackfills) {
  // Given two running 1-vCPU jobs on the 2-vCPU CE, then 70 jobs of 2 vCPUs and a small
  // job behind them: when one attempt ends, the short pass after the exit does not reach
  // the small job (71st in line); the next full pass backfills it into the free vCPU.
  std::string r1 = Submit(), r2 = Submit();
  svc_->SchedulePass();
  ASSERT_EQ(exec_.started.size(), 2u);
  Submit(R"(,"arrayProperties":{"size":70},"containerOverrides":{"resourceRequirements":[{"type":"VCPU","value":"2"}]})");
  std::string small = Submit();
  svc_->SchedulePass();
  ASSERT_EQ(exec_.started.size(), 2u);
  Exit(exec_.started[0], 0);
  svc_->SchedulePass(/*full=*/false);
  EXPECT_EQ(exec_.started.size(), 2u) << "the short pass reached past its window";
  EXPECT_EQ(Status(small), "RUNNABLE");
  svc_->SchedulePass(/*full=*/true);
  ASSERT_EQ(exec_.started.size(), 3u);
  EXPECT_EQ(exec_.started[2].job_id, small);
}

TEST_F(JobsTest, CapacityLimitsConcurrencyAndWaitingJobsSayWhy) {
  // Given a 2-vCPU CE and three 1-vCPU jobs, two start and the third names the limit.
  std::string a = Submit(), b = Submit(), c = Submit();
  svc_->SchedulePass();
  EXPECT_EQ(exec_.started.size(), 2u);
  EXPECT_EQ(Status(c), "RUNNABLE");
  EXPECT_NE(std::string(Job(c)["statusReason"].as_string()).find("Waiting for capacity"),
            std::string::npos);
  Exit(exec_.started[0], 0);
  svc_->SchedulePass();
  EXPECT_EQ(exec_.started.size(), 3u);
  EXPECT_EQ(Status(c), "RUNNING");
}

TEST_F(JobsTest, NonZeroExitFailsAndRetriesFollowTheStrategy) {
  std::string id = Submit(R"(,"retryStrategy":{"attempts":2})");
  svc_->SchedulePass();
  Exit(exec_.started[0], 3);
  EXPECT_EQ(Status(id), "RUNNABLE");
  svc_->SchedulePass();
  ASSERT_EQ(exec_.started.size(), 2u);
  EXPECT_EQ(exec_.started[1].attempt, 2);
  Exit(exec_.started[1], 4);
  json::object job = Job(id);
  EXPECT_EQ(job["status"], "FAILED");
  EXPECT_EQ(job["container"].at("exitCode"), 4);
  EXPECT_EQ(job["attempts"].as_array().size(), 2u);
}

TEST_F(JobsTest, EvaluateOnExitCanStopRetries) {
  std::string id = Submit(
      R"(,"retryStrategy":{"attempts":3,"evaluateOnExit":[{"onExitCode":"3*","action":"EXIT"}]})");
  svc_->SchedulePass();
  Exit(exec_.started[0], 37);
  EXPECT_EQ(Status(id), "FAILED");
}

TEST_F(JobsTest, CancelFailsWaitingJobsAndTheirDependents) {
  std::string a = Submit();
  std::string b = Submit(R"(,"dependsOn":[{"jobId":")" + a + R"("}])");
  Ok("CancelJob", R"({"jobId":")" + a + R"(","reason":"not needed"})");
  json::object ja = Job(a);
  EXPECT_EQ(ja["status"], "FAILED");
  EXPECT_EQ(ja["statusReason"], json::value("not needed"));
  EXPECT_EQ(ja["isCancelled"], true);
  svc_->SchedulePass();
  EXPECT_EQ(Status(b), "FAILED");
  EXPECT_EQ(Job(b)["statusReason"], json::value("Dependent Job " + a + " failed"));
  EXPECT_TRUE(exec_.started.empty());
}

TEST_F(JobsTest, DependentsWaitInPendingUntilTheirDependencySucceeds) {
  std::string a = Submit();
  std::string b = Submit(R"(,"dependsOn":[{"jobId":")" + a + R"("}])");
  svc_->SchedulePass();
  EXPECT_EQ(Status(b), "PENDING");
  EXPECT_NE(std::string(Job(b)["statusReason"].as_string()).find(a), std::string::npos);
  Exit(exec_.started[0], 0);
  svc_->SchedulePass();
  svc_->SchedulePass();
  EXPECT_EQ(Status(b), "RUNNING");
}

TEST_F(JobsTest, TerminateStopsARunningAttempt) {
  std::string id = Submit();
  svc_->SchedulePass();
  Ok("TerminateJob", R"({"jobId":")" + id + R"(","reason":"stop it"})");
  ASSERT_EQ(exec_.terminated.size(), 1u);
  EXPECT_EQ(exec_.terminated[0], exec_.started[0].task_id + ":stop it");
  Exit(exec_.started[0], 143, "stop it");
  json::object job = Job(id);
  EXPECT_EQ(job["status"], "FAILED");
  EXPECT_EQ(job["statusReason"], json::value("stop it"));
  EXPECT_EQ(job["isTerminated"], true);
}

TEST_F(JobsTest, AnAttemptThatCannotStartFailsTheJob) {
  exec_.fail_with = "CannotStartContainerError: executable file not found in $PATH: nope";
  // Given 2 attempts, the job is retried once (as on AWS), then fails with the reason.
  std::string id = Submit(R"(,"retryStrategy":{"attempts":2})");
  svc_->SchedulePass();
  EXPECT_EQ(Status(id), "RUNNABLE");
  svc_->SchedulePass();
  json::object job = Job(id);
  EXPECT_EQ(job["attempts"].as_array().size(), 2u);
  EXPECT_EQ(job["status"], "FAILED");
  EXPECT_EQ(job["statusReason"], json::value(exec_.fail_with));
}

TEST_F(JobsTest, BadSubmissionsAreRefusedAndCreateNothing) {
  for (const char* body : {
           R"({"jobName":"j","jobQueue":"nope","jobDefinition":"jd"})",
           R"({"jobName":"j","jobQueue":"q","jobDefinition":"nope"})",
           R"({"jobName":"-j","jobQueue":"q","jobDefinition":"jd"})",
           R"({"jobName":"j","jobQueue":"q","jobDefinition":"jd","dependsOn":[{"jobId":"x"}]})",
           R"({"jobName":"j","jobQueue":"q","jobDefinition":"jd","arrayProperties":{"size":1}})",
           R"({"jobName":"j","jobQueue":"q","jobDefinition":"jd","arrayProperties":{"size":10001}})",
           R"({"jobName":"j","jobQueue":"q","jobDefinition":"jd","dependsOn":[{"type":"SEQUENTIAL"}]})",
           R"({"jobName":"j","jobQueue":"q","jobDefinition":"jd","containerOverrides":{"environment":[{"name":"AWS_BATCH_X","value":"1"}]}})",
       }) {
    auto r = svc_->CallSync("SubmitJob", J(body));
    EXPECT_FALSE(r.ok()) << body;
  }
  auto l = Ok("ListJobs", R"({"jobQueue":"q","filters":[{"name":"JOB_NAME","values":["*"]}]})");
  EXPECT_TRUE(l["jobSummaryList"].as_array().empty());
}

TEST_F(JobsTest, ListJobsDefaultsToRunningAndFiltersByName) {
  std::string a = Submit();
  Ok("SubmitJob", R"({"jobName":"other","jobQueue":"q","jobDefinition":"jd"})");
  auto l = Ok("ListJobs", R"({"jobQueue":"q"})");
  EXPECT_TRUE(l["jobSummaryList"].as_array().empty());  // nothing RUNNING yet
  l = Ok("ListJobs", R"({"jobQueue":"q","jobStatus":"SUBMITTED"})");
  EXPECT_EQ(l["jobSummaryList"].as_array().size(), 2u);
  l = Ok("ListJobs", R"({"jobQueue":"q","filters":[{"name":"JOB_NAME","values":["oth*"]}]})");
  ASSERT_EQ(l["jobSummaryList"].as_array().size(), 1u);
  EXPECT_EQ(l["jobSummaryList"].as_array()[0].at("jobName"), "other");
}

TEST_F(JobsTest, LostAttemptsAreRetriedOrFailedOnRecovery) {
  std::string a = Submit(R"(,"retryStrategy":{"attempts":2})");
  std::string b = Submit();
  svc_->SchedulePass();
  ASSERT_EQ(exec_.started.size(), 2u);
  BatchService again(ServiceConfig{}, *store_, clock_, ids_);
  ASSERT_TRUE(again.Load().ok());
  ASSERT_TRUE(again.RecoverJobs().ok());
  auto d = again.CallSync("DescribeJobs", J(R"({"jobs":[")" + a + R"(",")" + b + R"("]})"));
  ASSERT_TRUE(d.ok());
  const auto& jobs = d.value()["jobs"].as_array();
  EXPECT_EQ(jobs[0].at("status"), "RUNNABLE");
  EXPECT_EQ(jobs[1].at("status"), "FAILED");
  EXPECT_NE(std::string(jobs[1].at("statusReason").as_string()).find("Host lost"),
            std::string::npos);
}

TEST_F(JobsTest, AnArrayRunsItsChildrenAndSummarisesThem) {
  // Given an array of 3, each child gets its index and the parent follows them.
  std::string p = Submit(R"(,"arrayProperties":{"size":3})");
  json::object parent = Job(p);
  EXPECT_EQ(parent["arrayProperties"].at("size"), 3);
  EXPECT_EQ(parent["arrayProperties"].at("statusSummary").at("SUBMITTED"), 3);
  EXPECT_EQ(Job(p + ":2")["arrayProperties"].at("index"), 2);
  svc_->SchedulePass();
  ASSERT_EQ(exec_.started.size(), 2u);  // 2 vCPU
  EXPECT_EQ(Status(p), "PENDING");
  std::set<std::string> env(exec_.started[1].env.begin(), exec_.started[1].env.end());
  EXPECT_TRUE(env.count("AWS_BATCH_JOB_ARRAY_INDEX=1"));
  EXPECT_TRUE(env.count("AWS_BATCH_JOB_ID=" + p + ":1"));
  Exit(exec_.started[0], 0);
  Exit(exec_.started[1], 0);
  svc_->SchedulePass();
  ASSERT_EQ(exec_.started.size(), 3u);
  Exit(exec_.started[2], 1);
  parent = Job(p);
  EXPECT_EQ(parent["status"], "FAILED");
  EXPECT_EQ(parent["arrayProperties"].at("statusSummary").at("SUCCEEDED"), 2);
  EXPECT_EQ(parent["arrayProperties"].at("statusSummary").at("FAILED"), 1);
  auto l = Ok("ListJobs", R"({"arrayJobId":")" + p + R"(","jobStatus":"SUCCEEDED"})");
  EXPECT_EQ(l["jobSummaryList"].as_array().size(), 2u);
  l = Ok("ListJobs", R"({"jobQueue":"q","jobStatus":"FAILED"})");  // children aren't listed
  ASSERT_EQ(l["jobSummaryList"].as_array().size(), 1u);
  EXPECT_EQ(l["jobSummaryList"].as_array()[0].at("jobId"), json::value(p));
}

// The job records the store holds (their ids), in no particular order.
std::set<std::string> StoredJobs(store::Store& store) {
  std::set<std::string> ids;
  auto all = store.LoadAll();
  EXPECT_TRUE(all.ok());
  for (const auto& r : all.value()) {
    if (r.kind == "job") ids.insert(r.name);
  }
  return ids;
}

json::object WithoutStatus(json::object doc) {
  doc.erase("status");
  doc.erase("statusReason");
  return doc;
}

TEST_F(JobsTest, ArrayChildrenAreStoredOnceTheyStartAndMadeAgainFromTheirParentAfterARestart) {
  // Given a 3-child SEQUENTIAL array with tags: only the parent is stored, and a
  // child's document is whole (its own id, index, dependency, the parent's container).
  std::string p = Submit(R"(,"arrayProperties":{"size":3},"dependsOn":[{"type":"SEQUENTIAL"}],
                            "tags":{"team":"a"})");
  EXPECT_EQ(StoredJobs(*store_), (std::set<std::string>{p}));
  json::object c2 = Job(p + ":2");
  EXPECT_EQ(c2["jobId"], json::value(p + ":2"));
  EXPECT_TRUE(std::string(c2["jobArn"].as_string()).ends_with("job/" + p + ":2"));
  EXPECT_EQ(c2["status"], "SUBMITTED");
  EXPECT_EQ(c2["arrayProperties"], J(R"({"index":2})"));
  EXPECT_EQ(c2["dependsOn"], J(R"([{"jobId":")" + p + R"(:1"}])"));
  EXPECT_EQ(c2["container"].at("command"), J(R"(["echo","world"])"));
  EXPECT_EQ(c2["tags"], J(R"({"team":"a"})"));
  EXPECT_EQ(c2["isCancelled"], false);
  // When the first child starts, it is stored; the others, still waiting, are not.
  svc_->SchedulePass();
  ASSERT_EQ(exec_.started.size(), 1u);
  EXPECT_EQ(Status(p + ":1"), "PENDING");
  std::set<std::string> stored = StoredJobs(*store_);
  EXPECT_TRUE(stored.contains(p + ":0"));
  EXPECT_FALSE(stored.contains(p + ":1"));
  // After a restart every child is back: the started one as it was (its RUNNING is
  // stored with the next pass), the others made again from the parent, in the same
  // order and with the same documents.
  svc_->SchedulePass();
  json::object c1 = Job(p + ":1");
  auto children = Ok("ListJobs", R"({"arrayJobId":")" + p + R"(","jobStatus":"PENDING"})");
  BatchService again(ServiceConfig{}, *store_, clock_, ids_);
  ASSERT_TRUE(again.Load().ok());
  auto d = again.CallSync("DescribeJobs", J(R"({"jobs":[")" + p + R"(:0",")" + p + R"(:1",")" +
                                             p + R"(:2"]})"));
  ASSERT_TRUE(d.ok());
  const auto& jobs = d.value()["jobs"].as_array();
  ASSERT_EQ(jobs.size(), 3u);
  EXPECT_EQ(jobs[0].at("status"), "RUNNING");
  EXPECT_EQ(jobs[1].at("status"), "SUBMITTED");  // (until the new server's first pass)
  EXPECT_EQ(WithoutStatus(jobs[1].as_object()), WithoutStatus(c1));
  EXPECT_EQ(jobs[2].at("tags"), J(R"({"team":"a"})"));
  EXPECT_EQ(jobs[2].at("dependsOn"), J(R"([{"jobId":")" + p + R"(:1"}])"));
  auto l = again.CallSync("ListJobs", J(R"({"arrayJobId":")" + p + R"(","jobStatus":"SUBMITTED"})"));
  ASSERT_TRUE(l.ok());
  ASSERT_EQ(l.value()["jobSummaryList"].as_array().size(), 2u);
  EXPECT_EQ(l.value()["jobSummaryList"].as_array()[0].at("jobId"), json::value(p + ":1"));
  EXPECT_EQ(children["jobSummaryList"].as_array().size(), 2u);
  // A new job's sequence number comes after every child's: it lists last.
  auto sub = again.CallSync("SubmitJob", J(R"({"jobName":"later","jobQueue":"q","jobDefinition":"jd"})"));
  ASSERT_TRUE(sub.ok());
  auto all = again.CallSync("ListJobs", J(R"({"jobQueue":"q","jobStatus":"SUBMITTED"})"));
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all.value()["jobSummaryList"].as_array().back().at("jobName"), "later");
}

// The stored document of a job (empty when it is not stored).
json::object StoredDoc(store::Store& store, const std::string& id) {
  auto all = store.LoadAll();
  EXPECT_TRUE(all.ok());
  for (const auto& r : all.value()) {
    if (r.kind == "job" && r.name == id) return ParseJson(r.doc)->as_object();
  }
  return json::object();
}

TEST_F(JobsTest, AnAttemptInFlightIsStoredAsItIsNowThoughAReadCameBetween) {
  // Given a started job whose RUNNING (with its start time) waits for the next
  // write, and a read in between (which puts open documents away), the next write
  // stores the document as it is now, and so does the one after its exit.
  std::string id = Submit();
  svc_->SchedulePass();
  EXPECT_EQ(StoredDoc(*store_, id)["status"], "STARTING");
  json::object running = Job(id);
  EXPECT_EQ(running["status"], "RUNNING");
  Submit();  // (a write: the RUNNING job goes with it)
  json::object stored = StoredDoc(*store_, id);
  EXPECT_EQ(stored["status"], "RUNNING");
  EXPECT_EQ(stored["startedAt"], 1000);
  EXPECT_EQ(stored["container"].at("logStreamName"), running["container"].at("logStreamName"));
  Exit(exec_.started.at(0), 0);
  EXPECT_EQ(Status(id), "SUCCEEDED");
  Submit();
  stored = StoredDoc(*store_, id);
  EXPECT_EQ(stored["status"], "SUCCEEDED");
  EXPECT_EQ(stored["attempts"], Job(id)["attempts"]);
  // And a server started from the store shows it so.
  BatchService again(ServiceConfig{}, *store_, clock_, ids_);
  ASSERT_TRUE(again.Load().ok());
  auto d = again.CallSync("DescribeJobs", J(R"({"jobs":[")" + id + R"("]})"));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d.value()["jobs"].as_array().at(0).at("status"), "SUCCEEDED");
}

TEST_F(JobsTest, MovesBetweenWaitingStatesAreNotStoredAndAreWorkedOutAgain) {
  // Given three 1-vCPU jobs on 2 vCPUs, the third waits RUNNABLE: the store still
  // has it as submitted, and a restart works its state out again.
  std::string a = Submit(), b = Submit(), c = Submit();
  svc_->SchedulePass();
  EXPECT_EQ(Status(c), "RUNNABLE");
  EXPECT_EQ(StoredDoc(*store_, c)["status"], "SUBMITTED");
  EXPECT_EQ(StoredDoc(*store_, a)["status"], "STARTING");  // RUNNING goes with the next write
  svc_->SchedulePass();
  EXPECT_EQ(StoredDoc(*store_, a)["status"], "RUNNING");
  EXPECT_EQ(StoredDoc(*store_, c)["status"], "SUBMITTED");
  // A change of another kind stores the document with the status as it is.
  std::string arn(Job(c)["jobArn"].as_string());
  Ok("TagResource", R"({"resourceArn":")" + arn + R"(","tags":{"k":"v"}})");
  EXPECT_EQ(StoredDoc(*store_, c)["status"], "RUNNABLE");
  EXPECT_EQ(Status(c), "RUNNABLE");
  std::string d = Submit();
  svc_->SchedulePass();
  EXPECT_EQ(Status(d), "RUNNABLE");
  BatchService again(ServiceConfig{}, *store_, clock_, ids_);
  ASSERT_TRUE(again.Load().ok());
  auto r = again.CallSync("DescribeJobs", J(R"({"jobs":[")" + d + R"("]})"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value()["jobs"].as_array()[0].at("status"), "SUBMITTED");
  again.SchedulePass();  // (no executor: nothing starts, the waiting move is made again)
  r = again.CallSync("DescribeJobs", J(R"({"jobs":[")" + d + R"("]})"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value()["jobs"].as_array()[0].at("status"), "RUNNABLE");
  (void)b;
}

TEST_F(JobsTest, PassesWorkOutWaitingJobsASliceAtATimeRoundRobin) {
  // Given slices of 2 and, in creation order, X, three jobs A1-A3 waiting for X,
  // then B1 and B2: each pass moves on the next two, and the jobs that keep waiting
  // for X do not hold B1 and B2 back.
  ServiceConfig cfg;
  cfg.host_capacity = {2, 4096, 0};
  cfg.resolve_slice = 2;
  BatchService sliced(cfg, *store_, clock_, ids_);  // (no executor: nothing starts)
  ASSERT_TRUE(sliced.Load().ok());
  auto submit = [&](std::string extra) {
    auto r = sliced.CallSync("SubmitJob", J(R"({"jobName":"j","jobQueue":"q","jobDefinition":"jd")" +
                                             extra + "}"));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return std::string(r.value()["jobId"].as_string());
  };
  auto status = [&](const std::string& id) {
    auto r = sliced.CallSync("DescribeJobs", J(R"({"jobs":[")" + id + R"("]})"));
    return std::string(r.value()["jobs"].as_array()[0].at("status").as_string());
  };
  std::string x = submit("");
  std::string after_x = R"(,"dependsOn":[{"jobId":")" + x + R"("}])";
  std::string a1 = submit(after_x), a2 = submit(after_x), a3 = submit(after_x);
  std::string b1 = submit(""), b2 = submit("");
  sliced.SchedulePass();
  EXPECT_EQ(status(x), "RUNNABLE");
  EXPECT_EQ(status(a1), "PENDING");
  EXPECT_EQ(status(a2), "SUBMITTED");
  EXPECT_EQ(status(b1), "SUBMITTED");
  sliced.SchedulePass();
  EXPECT_EQ(status(a3), "PENDING");
  EXPECT_EQ(status(b1), "SUBMITTED");
  sliced.SchedulePass();
  EXPECT_EQ(status(b1), "RUNNABLE");
  EXPECT_EQ(status(b2), "RUNNABLE");
  EXPECT_EQ(status(a2), "PENDING");
}

TEST_F(JobsTest, TaggingAnArrayParentLeavesItsChildrensTagsAsTheyWere) {
  std::string p = Submit(R"(,"arrayProperties":{"size":2},"tags":{"team":"a"})");
  Ok("TagResource", R"({"resourceArn":")" + std::string(Job(p)["jobArn"].as_string()) +
                        R"(","tags":{"team":"b"}})");
  EXPECT_EQ(Job(p)["tags"], J(R"({"team":"b"})"));
  EXPECT_EQ(Job(p + ":1")["tags"], J(R"({"team":"a"})"));
  BatchService again(ServiceConfig{}, *store_, clock_, ids_);
  ASSERT_TRUE(again.Load().ok());
  auto d = again.CallSync("DescribeJobs", J(R"({"jobs":[")" + p + R"(:1"]})"));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d.value()["jobs"].as_array().at(0).at("tags"), J(R"({"team":"a"})"));
}

TEST_F(JobsTest, FinishedChildrenOfAnUnfinishedArrayOutliveTheRetentionPeriod) {
  // Given an array of 3 on 2 vCPUs: child 0 succeeds, child 1 still runs.
  std::string p = Submit(R"(,"arrayProperties":{"size":3})");
  svc_->SchedulePass();
  ASSERT_EQ(exec_.started.size(), 2u);
  Exit(exec_.started[0], 0);
  EXPECT_EQ(Status(p + ":0"), "SUCCEEDED");
  // Past the retention period the finished child stays while its array goes on,
  // and a restart does not bring it back as a new child.
  clock_.Advance(7LL * 24 * 3600 * 1000 + 61 * 1000);
  svc_->SchedulePass();
  EXPECT_EQ(Status(p + ":0"), "SUCCEEDED");
  BatchService again(ServiceConfig{}, *store_, clock_, ids_);
  ASSERT_TRUE(again.Load().ok());
  auto d = again.CallSync("DescribeJobs", J(R"({"jobs":[")" + p + R"(:0"]})"));
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d.value()["jobs"].as_array().size(), 1u);
  EXPECT_EQ(d.value()["jobs"].as_array()[0].at("status"), "SUCCEEDED");
}

TEST_F(JobsTest, SequentialArraysRunOneChildAfterAnother) {
  std::string p = Submit(R"(,"arrayProperties":{"size":3},"dependsOn":[{"type":"SEQUENTIAL"}])");
  svc_->SchedulePass();
  ASSERT_EQ(exec_.started.size(), 1u);
  EXPECT_EQ(exec_.started[0].job_id, p + ":0");
  EXPECT_EQ(Status(p + ":1"), "PENDING");
  Exit(exec_.started[0], 0);
  svc_->SchedulePass();
  ASSERT_EQ(exec_.started.size(), 2u);
  EXPECT_EQ(exec_.started[1].job_id, p + ":1");
}

TEST_F(JobsTest, NToNChildrenWaitForTheirPeer) {
  std::string a = Submit(R"(,"arrayProperties":{"size":2})");
  std::string b = Submit(R"(,"arrayProperties":{"size":2},"dependsOn":[{"jobId":")" + a +
                         R"(","type":"N_TO_N"}])");
  svc_->SchedulePass();
  ASSERT_EQ(exec_.started.size(), 2u);  // a:0 and a:1
  const exec::TaskSpec a1 = exec_.started[1];
  ASSERT_EQ(a1.job_id, a + ":1");
  Exit(a1, 0);
  svc_->SchedulePass();
  svc_->SchedulePass();
  EXPECT_EQ(Status(b + ":1"), "RUNNING");
  EXPECT_EQ(Status(b + ":0"), "PENDING");
  // Mismatched sizes are refused.
  auto r = svc_->CallSync("SubmitJob", J(R"({"jobName":"j","jobQueue":"q","jobDefinition":"jd",
      "arrayProperties":{"size":3},"dependsOn":[{"jobId":")" + a + R"(","type":"N_TO_N"}]})"));
  EXPECT_FALSE(r.ok());
}

TEST_F(JobsTest, CancellingAnArrayParentCancelsItsWaitingChildren) {
  std::string p = Submit(R"(,"arrayProperties":{"size":4})");
  svc_->SchedulePass();  // two children start
  Ok("CancelJob", R"({"jobId":")" + p + R"(","reason":"enough"})");
  json::object parent = Job(p);
  EXPECT_EQ(parent["arrayProperties"].at("statusSummary").at("FAILED"), 2);
  EXPECT_EQ(parent["arrayProperties"].at("statusSummary").at("RUNNING"), 2);
  Ok("TerminateJob", R"({"jobId":")" + p + R"(","reason":"stop"})");
  EXPECT_EQ(exec_.terminated.size(), 2u);
}

TEST_F(JobsTest, TimeoutsKillTheAttemptAndTheRetryStrategyApplies) {
  std::string id = Submit(R"(,"timeout":{"attemptDurationSeconds":5},"retryStrategy":{"attempts":2})");
  svc_->SchedulePass();
  clock_.Advance(6000);
  svc_->SchedulePass();
  ASSERT_EQ(exec_.terminated.size(), 1u);
  EXPECT_EQ(exec_.terminated[0],
            exec_.started[0].task_id + ":Job attempt duration exceeded timeout");
  Exit(exec_.started[0], 143, "Job attempt duration exceeded timeout");
  EXPECT_EQ(Status(id), "RUNNABLE");  // retried
  svc_->SchedulePass();
  ASSERT_EQ(exec_.started.size(), 2u);
  clock_.Advance(6000);
  svc_->SchedulePass();
  Exit(exec_.started[1], 0, "Job attempt duration exceeded timeout");  // exited 0 too late
  json::object job = Job(id);
  EXPECT_EQ(job["status"], "FAILED");
  EXPECT_EQ(job["statusReason"], json::value("Job attempt duration exceeded timeout"));
}

TEST_F(JobsTest, TimeLimitActionsCancelJobsBlockedForTooLong) {
  Ok("CreateJobQueue", R"({"jobQueueName":"limited","priority":1,
      "computeEnvironmentOrder":[{"order":1,"computeEnvironment":"ce"}],
      "jobStateTimeLimitActions":[{"reason":"MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
        "state":"RUNNABLE","maxTimeSeconds":10,"action":"CANCEL"}]})");
  std::string id(Ok("SubmitJob", R"({"jobName":"big","jobQueue":"limited","jobDefinition":"jd",
      "containerOverrides":{"resourceRequirements":[{"type":"VCPU","value":"8"}]}})")["jobId"]
                     .as_string());
  svc_->SchedulePass();
  EXPECT_EQ(Status(id), "RUNNABLE");
  EXPECT_NE(std::string(Job(id)["statusReason"].as_string())
                .find("MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE"),
            std::string::npos);
  clock_.Advance(11000);
  svc_->SchedulePass();
  json::object job = Job(id);
  EXPECT_EQ(job["status"], "FAILED");
  EXPECT_EQ(job["isCancelled"], true);
}

TEST_F(JobsTest, FairShareQueuesRequireAShareIdentifier) {
  Ok("CreateSchedulingPolicy", R"({"name":"fs","fairsharePolicy":{"shareDistribution":[
      {"shareIdentifier":"gold","weightFactor":0.5}]}})");
  Ok("CreateJobQueue", R"({"jobQueueName":"fq","priority":1,
      "schedulingPolicyArn":"arn:aws:batch:us-east-1:123456789012:scheduling-policy/fs",
      "computeEnvironmentOrder":[{"order":1,"computeEnvironment":"ce"}]})");
  auto r = svc_->CallSync("SubmitJob", J(R"({"jobName":"j","jobQueue":"fq","jobDefinition":"jd"})"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("shareIdentifier must be specified"), std::string::npos);
  r = svc_->CallSync("SubmitJob", J(R"({"jobName":"j","jobQueue":"q","jobDefinition":"jd",
                                      "shareIdentifier":"gold"})"));
  EXPECT_FALSE(r.ok());
  // Given gold (weight 0.5) and silver (1) each submitting 4 jobs on 2 vCPU, gold runs first
  // only as much as its share allows: the first two placements are one each (no usage yet).
  std::vector<std::string> gold, silver;
  for (int i = 0; i < 4; ++i) {
    gold.emplace_back(Ok("SubmitJob", R"({"jobName":"g","jobQueue":"fq","jobDefinition":"jd",
        "shareIdentifier":"gold"})")["jobId"].as_string());
    silver.emplace_back(Ok("SubmitJob", R"({"jobName":"s","jobQueue":"fq","jobDefinition":"jd",
        "shareIdentifier":"silver"})")["jobId"].as_string());
  }
  svc_->SchedulePass();
  ASSERT_EQ(exec_.started.size(), 2u);
  std::set<std::string> started{exec_.started[0].job_id, exec_.started[1].job_id};
  EXPECT_TRUE(started.count(gold[0]) && started.count(silver[0]));
  auto snap = Ok("GetJobQueueSnapshot", R"({"jobQueue":"fq"})");
  EXPECT_EQ(snap["queueUtilization"].at("fairshareUtilization").at("activeShareCount"), 2);
}

TEST_F(JobsTest, ConsumableResourcesAreHeldWhileJobsRunAndReturnedAfter) {
  Ok("CreateConsumableResource", R"({"consumableResourceName":"lic","totalQuantity":3})");
  Ok("CreateConsumableResource",
     R"({"consumableResourceName":"once","totalQuantity":5,"resourceType":"NON_REPLENISHABLE"})");
  std::string body = R"(,"consumableResourcePropertiesOverride":{"consumableResourceList":[
      {"consumableResource":"lic","quantity":2},{"consumableResource":"once","quantity":1}]})";
  std::string a = Submit(body), b = Submit(body);
  svc_->SchedulePass();
  ASSERT_EQ(exec_.started.size(), 1u);  // only 3 licenses: one job of 2 at a time
  auto d = Ok("DescribeConsumableResource", R"({"consumableResource":"lic"})");
  EXPECT_EQ(d["inUseQuantity"], 2);
  EXPECT_EQ(d["availableQuantity"], 1);
  EXPECT_NE(std::string(Job(b)["statusReason"].as_string()).find("consumable resource lic"),
            std::string::npos);
  auto l = Ok("ListJobsByConsumableResource", R"({"consumableResource":"lic",
      "filters":[{"name":"JOB_STATUS","values":["RUNNING"]}]})");
  ASSERT_EQ(l["jobs"].as_array().size(), 1u);
  EXPECT_EQ(l["jobs"].as_array()[0].at("quantity"), 2);
  EXPECT_FALSE(svc_->CallSync("DeleteConsumableResource", J(R"({"consumableResource":"lic"})")).ok());
  Exit(exec_.started[0], 0);
  d = Ok("DescribeConsumableResource", R"({"consumableResource":"lic"})");
  EXPECT_EQ(d["inUseQuantity"], 0);
  EXPECT_EQ(d["totalQuantity"], 3);
  d = Ok("DescribeConsumableResource", R"({"consumableResource":"once"})");
  EXPECT_EQ(d["totalQuantity"], 4);  // used up
  svc_->SchedulePass();
  EXPECT_EQ(exec_.started.size(), 2u);
  // Unknown resources are refused at submission.
  EXPECT_FALSE(svc_->CallSync("SubmitJob", J(R"({"jobName":"j","jobQueue":"q","jobDefinition":"jd",
      "consumableResourcePropertiesOverride":{"consumableResourceList":[
      {"consumableResource":"nope","quantity":1}]}})")).ok());
}

TEST_F(JobsTest, GpuJobsGetExactlyTheirDevices) {
  // Given a host with GPUs a and b, two 1-GPU jobs get one each; a third waits; ids come back.
  ServiceConfig cfg;
  cfg.host_capacity = {8, 4096, 2};
  cfg.gpu_ids = {"a", "b"};
  cfg.scratch_root = scratch_.string();
  cfg.log_root = (scratch_ / "logs").string();
  BatchService gsvc(cfg, *store_, clock_, ids_);
  ASSERT_TRUE(gsvc.Load().ok());
  FakeExecutor gexec;
  gexec.svc = &gsvc;
  gsvc.SetExecutor(&gexec);
  std::vector<std::string> jobs;
  for (int i = 0; i < 3; ++i) {
    auto r = gsvc.CallSync("SubmitJob", J(R"({"jobName":"g","jobQueue":"q","jobDefinition":"jd",
        "containerOverrides":{"resourceRequirements":[{"type":"GPU","value":"1"}]}})"));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    jobs.emplace_back(r.value()["jobId"].as_string());
  }
  gsvc.SchedulePass();
  ASSERT_EQ(gexec.started.size(), 2u);
  auto gpu_env = [](const exec::TaskSpec& s) {
    for (const auto& e : s.env) {
      if (e.rfind("CUDA_VISIBLE_DEVICES=", 0) == 0) return e.substr(21);
    }
    return std::string();
  };
  std::set<std::string> given{gpu_env(gexec.started[0]), gpu_env(gexec.started[1])};
  EXPECT_EQ(given, (std::set<std::string>{"a", "b"}));
  gsvc.OnTaskEvent({exec::TaskEvent::Kind::kExited, gexec.started[0].task_id,
                    gexec.started[0].job_id, 1, 2000, 0, ""});
  gsvc.SchedulePass();
  ASSERT_EQ(gexec.started.size(), 3u);
  EXPECT_EQ(gpu_env(gexec.started[2]), gpu_env(gexec.started[0]));
  gsvc.SetExecutor(nullptr);
}

}  // namespace
}  // namespace drover::service

namespace drover::service {
namespace {

TEST_F(JobsTest, FinishedJobsAreForgottenAfterTheRetentionPeriodAndNoOthers) {
  // Given a cancelled job and one still running, a pass within the retention period
  // keeps both; once the cancelled one finished more than 7 days ago, a pass removes it
  // from memory and from the store, and the running one stays.
  std::string done = Submit(), running = Submit();
  Ok("CancelJob", R"({"jobId":")" + done + R"(","reason":"no"})");
  svc_->SchedulePass();
  EXPECT_EQ(Status(done), "FAILED");
  EXPECT_EQ(Status(running), "RUNNING");
  clock_.Advance(7LL * 24 * 3600 * 1000 + 61 * 1000);
  svc_->SchedulePass();
  auto d = Ok("DescribeJobs", R"({"jobs":[")" + done + R"(",")" + running + R"("]})");
  ASSERT_EQ(d["jobs"].as_array().size(), 1u);
  EXPECT_EQ(d["jobs"].as_array()[0].at("jobId"), json::value(running));
  BatchService again(ServiceConfig{}, *store_, clock_, ids_);
  ASSERT_TRUE(again.Load().ok());
  auto d2 = again.CallSync("DescribeJobs", J(R"({"jobs":[")" + done + R"(",")" + running + R"("]})"));
  ASSERT_TRUE(d2.ok());
  ASSERT_EQ(d2.value()["jobs"].as_array().size(), 1u);
  EXPECT_EQ(d2.value()["jobs"].as_array()[0].at("jobId"), json::value(running));
}

// A store that holds its writes back while `hold` is set, until Release().
class HeldStore final : public store::Store {
 public:
  explicit HeldStore(store::Store& real) : real_(real) {}
  Result<std::vector<store::Record>> LoadAll() override {
    if (away_) return Status::Server("the store is away");
    return real_.LoadAll();
  }
  void Away(bool away) { away_ = away; }  // LoadAll fails meanwhile
  void Write(store::WriteBatch b, std::function<void(Status)> done) override {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (hold_) {
        held_.push_back({std::move(b), std::move(done)});
        return;
      }
    }
    real_.Write(std::move(b), std::move(done));
  }
  size_t Pending() const override { return real_.Pending() + Held(); }
  size_t Held() const {
    std::lock_guard<std::mutex> l(mu_);
    return held_.size();
  }
  std::vector<store::Record> HeldRecords(size_t i) const {
    std::lock_guard<std::mutex> l(mu_);
    return i < held_.size() ? held_[i].first.puts : std::vector<store::Record>{};
  }
  void Hold() {
    std::lock_guard<std::mutex> l(mu_);
    hold_ = true;
  }
  void Release() {  // the held writes, in their order, then no more holding
    std::vector<std::pair<store::WriteBatch, std::function<void(Status)>>> held;
    {
      std::lock_guard<std::mutex> l(mu_);
      hold_ = false;
      held.swap(held_);
    }
    for (auto& [b, done] : held) real_.Write(std::move(b), std::move(done));
  }
  void FailHeld(const Status& s) {  // the held writes fail with `s`, then no more holding
    std::vector<std::pair<store::WriteBatch, std::function<void(Status)>>> held;
    {
      std::lock_guard<std::mutex> l(mu_);
      hold_ = false;
      held.swap(held_);
    }
    for (auto& [b, done] : held) done(s);
  }

 private:
  store::Store& real_;
  mutable std::mutex mu_;
  std::atomic<bool> away_{false};
  bool hold_ = false;
  std::vector<std::pair<store::WriteBatch, std::function<void(Status)>>> held_;
};

// Counts starts from any thread (the scheduler's commits call Start).
class CountingExecutor : public exec::Executor {
 public:
  Status Start(const exec::TaskSpec& spec) override {
    std::lock_guard<std::mutex> l(mu_);
    started_.push_back(spec);
    return Status::Ok();
  }
  void Terminate(const std::string&, const std::string&) override {}
  void Shutdown() override {}
  std::string Describe() const override { return "counting"; }
  void Attach(const std::string&, const std::string&, int) override {}
  void Acknowledge(const std::string& task_id) override {
    std::lock_guard<std::mutex> l(mu_);
    acked_.push_back(task_id);
  }
  std::vector<exec::TaskSpec> Started() {
    std::lock_guard<std::mutex> l(mu_);
    return started_;
  }
  std::vector<std::string> Acked() {
    std::lock_guard<std::mutex> l(mu_);
    return acked_;
  }

 private:
  std::mutex mu_;
  std::vector<exec::TaskSpec> started_;
  std::vector<std::string> acked_;
};

// Polls `done` for up to 10 s.
template <typename F>
bool Eventually(F done) {
  for (int i = 0; i < 1000; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

// The scheduler thread over a service whose store's writes can be held back: a
// host of `vcpus` (2 unless said), a queue and a definition of 1-vCPU jobs;
// `submitted` jobs are submitted before the thread starts (its first pass then
// decides them all, and no other pass is due until its 1 s tick).
class SchedulerLoopTest : public ::testing::Test {
 protected:
  void Start(int64_t capacity_pass_interval_us, int vcpus = 2, int submitted = 0,
             bool hold = false) {
    auto real = store::OpenSqliteStore(":memory:");
    ASSERT_TRUE(real.ok());
    real_ = std::move(*real);
    store_ = std::make_unique<HeldStore>(*real_);
    ServiceConfig cfg;
    cfg.host_capacity = {static_cast<double>(vcpus), 4096, 0};
    cfg.scratch_root = scratch_.string();
    cfg.capacity_pass_interval_us = capacity_pass_interval_us;
    svc_ = std::make_unique<BatchService>(cfg, *store_, clock_, ids_);
    ASSERT_TRUE(svc_->Load().ok());
    svc_->SetExecutor(&exec_);
    for (const auto& [op, body] : std::vector<std::pair<std::string, std::string>>{
             {"CreateComputeEnvironment",
              R"({"computeEnvironmentName":"ce","type":"MANAGED","computeResources":{"type":"EC2","maxvCpus":)" +
                  std::to_string(vcpus) + R"(,"subnets":["s"]}})"},
             {"CreateJobQueue",
              R"({"jobQueueName":"q","priority":1,"computeEnvironmentOrder":[{"order":1,"computeEnvironment":"ce"}]})"},
             {"RegisterJobDefinition",
              R"({"jobDefinitionName":"jd","type":"container","containerProperties":{"command":["true"],
                  "resourceRequirements":[{"type":"VCPU","value":"1"},{"type":"MEMORY","value":"16"}]}})"}}) {
      ASSERT_TRUE(svc_->CallSync(op, J(body)).ok()) << op;
    }
    for (int i = 0; i < submitted; ++i) Submit();
    if (hold) store_->Hold();  // (the writes of the first pass on)
    svc_->StartScheduler();
  }
  void TearDown() override {
    if (svc_) svc_->StopScheduler();
    svc_.reset();
    std::filesystem::remove_all(scratch_);
  }
  void Submit() {
    ASSERT_TRUE(svc_->CallSync("SubmitJob", J(R"({"jobName":"j","jobQueue":"q","jobDefinition":"jd"})")).ok());
  }
  // A 4-vCPU host, a capacity interval of 400 ms, four 1-vCPU jobs running and
  // `waiting` more; long after that pass, the first one exits and its pass starts
  // a fifth at once. Returns the first four.
  std::vector<exec::TaskSpec> FourRunningOneReplaced(int waiting) {
    Start(/*capacity_pass_interval_us=*/400000, /*vcpus=*/4);
    for (int i = 0; i < 4 + waiting; ++i) Submit();
    EXPECT_TRUE(Eventually([&] { return exec_.Started().size() == 4; }));
    auto first = exec_.Started();
    std::this_thread::sleep_for(std::chrono::milliseconds(450));
    Exit(first.at(0));
    EXPECT_TRUE(Eventually([&] { return exec_.Started().size() == 5; }));
    return first;
  }
  void Exit(const exec::TaskSpec& t) {
    svc_->OnTaskEvent({exec::TaskEvent::Kind::kExited, t.task_id, t.job_id, t.attempt,
                       clock_.NowMillis(), 0, ""});
  }

  std::filesystem::path scratch_ =
      std::filesystem::temp_directory_path() / ("drover-loop-" + std::to_string(getpid()));
  FakeClock clock_;
  FakeIds ids_;
  CountingExecutor exec_;  // (declared before the service: it outlives it)
  std::unique_ptr<store::Store> real_;
  std::unique_ptr<HeldStore> store_;
  std::unique_ptr<BatchService> svc_;
};

TEST_F(SchedulerLoopTest, AnExitIsStoredWithThePassItWakesAndAcknowledgedOnceThatCommitIsDurable) {
  // Given the scheduler thread, two running 1-vCPU jobs on 2 vCPUs and two waiting: when
  // one attempt ends, the pass it wakes places a waiting job, and one write carries both
  // the exit (SUCCEEDED) and the start (STARTING); it is held back, and neither is
  // acknowledged nor started. The second exit meanwhile gets no write and no pass of its
  // own until that commit is durable; then the first exit is acknowledged, the third job
  // starts, and the next pass stores the second exit with the last job's start.
  // (Submitted before the thread starts: a pass woken by a later submission could
  // be under way when the exit comes, find no capacity and store the exit alone.)
  Start(/*capacity_pass_interval_us=*/0, /*vcpus=*/2, /*submitted=*/4);
  ASSERT_TRUE(Eventually([&] { return exec_.Started().size() == 2; }));
  auto first = exec_.Started();
  store_->Hold();
  Exit(first[0]);  // the pass it wakes: one write with its SUCCEEDED and a STARTING
  ASSERT_TRUE(Eventually([&] { return store_->Held() == 1; }));
  std::vector<std::string> keys;
  for (const auto& r : store_->HeldRecords(0)) keys.push_back(r.key);
  EXPECT_EQ(keys.size(), 2u) << ::testing::PrintToString(keys);
  EXPECT_NE(std::find_if(keys.begin(), keys.end(),
                         [&](const std::string& k) { return k.ends_with(first[0].job_id); }),
            keys.end())
      << "the exit is not in the pass's write";
  Exit(first[1]);  // nothing of its own; no pass until the STARTING commit is durable
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(store_->Held(), 1u) << "a write or a pass while the previous pass's commit was in flight";
  EXPECT_EQ(exec_.Started().size(), 2u);
  EXPECT_TRUE(exec_.Acked().empty()) << "an exit acknowledged before it was durable";
  store_->Release();
  EXPECT_TRUE(Eventually([&] { return exec_.Started().size() == 4; }))
      << exec_.Started().size() << " started";
  EXPECT_TRUE(Eventually([&] { return exec_.Acked().size() == 2; }));
  EXPECT_EQ(exec_.Acked(), (std::vector<std::string>{first[0].task_id, first[1].task_id}));
  for (int i = 0; i < 2; ++i) {
    auto d = svc_->CallSync("DescribeJobs", J(R"({"jobs":[")" + first[i].job_id + R"("]})"));
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d->at("jobs").as_array()[0].at("status").as_string(), "SUCCEEDED");
  }
}

TEST_F(SchedulerLoopTest, AnAttemptWhoseStartingRecordTheStoreRefusedIsNotStarted) {
  // Given a waiting job whose pass's STARTING write fails while the store is away
  // (so that the view cannot be reloaded either), its attempt is not started; once the
  // store is back, a pass (within the 1 s tick) reloads the view, where the job still
  // waits, places it again and starts it, once.
  Start(/*capacity_pass_interval_us=*/0, /*vcpus=*/2, /*submitted=*/1, /*hold=*/true);
  ASSERT_TRUE(Eventually([&] { return store_->Held() == 1; }));
  store_->Away(true);
  store_->FailHeld(Status::Server("the store went away"));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_TRUE(exec_.Started().empty()) << "started though its STARTING record was not stored";
  store_->Away(false);
  ASSERT_TRUE(Eventually([&] { return exec_.Started().size() == 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));  // (a tick's pass more)
  EXPECT_EQ(exec_.Started().size(), 1u);
  auto d = svc_->CallSync("DescribeJobs", J(R"({"jobs":[")" + exec_.Started()[0].job_id + R"("]})"));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->at("jobs").as_array()[0].at("status").as_string(), "STARTING");
}

TEST_F(SchedulerLoopTest, APassWokenByExitsWaitsForTheCapacityIntervalOneWokenByASubmissionDoesNot) {
  // Given a capacity interval of 400 ms, a 4-vCPU host with four running 1-vCPU jobs
  // and three waiting: the first exit (long after the last pass) starts a waiting job
  // at once; a second exit right after (a quarter of the host) gets no pass for the
  // interval; a submission meanwhile wakes a pass at once, which fills the second
  // exit's capacity too.
  auto first = FourRunningOneReplaced(/*waiting=*/3);
  ASSERT_EQ(exec_.Started().size(), 5u);
  auto t0 = std::chrono::steady_clock::now();
  Exit(first[1]);
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  EXPECT_EQ(exec_.Started().size(), 5u) << "a pass woken by an exit within the capacity interval";
  Submit();
  ASSERT_TRUE(Eventually([&] { return exec_.Started().size() == 6; }));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(350))
      << "the submission's pass waited for the capacity interval";
}

TEST_F(SchedulerLoopTest, ExitsThatFreeHalfTheHostDoNotWaitForTheCapacityInterval) {
  // Given a capacity interval of 400 ms and a 4-vCPU host with four running 1-vCPU jobs
  // and four waiting: right after a pass, one exit (a quarter of the host) waits, and a
  // second one (half of it, together) wakes a pass at once that fills both.
  auto first = FourRunningOneReplaced(/*waiting=*/4);
  ASSERT_EQ(exec_.Started().size(), 5u);
  auto t0 = std::chrono::steady_clock::now();
  Exit(first[1]);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(exec_.Started().size(), 5u) << "a quarter of the host did not wait";
  Exit(first[2]);
  ASSERT_TRUE(Eventually([&] { return exec_.Started().size() == 7; }));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(300))
      << "exits that freed half the host waited for the capacity interval";
}

TEST(SchedulerNotifyTest, OnlyAWakeThatChangesTheLoopsDecisionNotifiesIt) {
  // (wake pending, full pending, this wake full, freed before, after, host vCPUs)
  EXPECT_TRUE(SchedulerNeedsNotify(false, false, false, 0, 0.125, 2));  // asleep until its tick
  EXPECT_TRUE(SchedulerNeedsNotify(false, true, true, 0, 0, 2));
  EXPECT_FALSE(SchedulerNeedsNotify(true, false, false, 0.125, 0.25, 2));  // waits for the interval
  EXPECT_TRUE(SchedulerNeedsNotify(true, false, false, 0.875, 1, 2));     // half the host: now
  EXPECT_FALSE(SchedulerNeedsNotify(true, false, false, 1, 1.125, 2));    // (notified at half)
  EXPECT_TRUE(SchedulerNeedsNotify(true, false, true, 0.25, 0.25, 2));    // a submission: now
  EXPECT_FALSE(SchedulerNeedsNotify(true, true, true, 0, 0, 2));          // one is pending
  EXPECT_FALSE(SchedulerNeedsNotify(true, true, false, 0.875, 1, 2));     // (it passes at once)
}

}  // namespace
}  // namespace drover::service
