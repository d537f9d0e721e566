#include "sched/schedule.h"

#include <gtest/gtest.h>

namespace drover::sched {
namespace {

// A harness: a host with 4 vCPU / 8192 MiB, CEs "a" (max 4) and "b" (max 2).
class ScheduleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    snap_.host.capacity = {4, 8192, 0};
    snap_.ces["a"] = CeView{"a", "a", true, true, 4, {}};
    snap_.ces["b"] = CeView{"b", "b", true, true, 2, {}};
    snap_.queues.push_back(QueueView{"q1", "q1", true, 1, 1, {"a"}});
    snap_.queues.push_back(QueueView{"q2", "q2", true, 10, 2, {"b", "a"}});
  }
  void Job(std::string id, std::string queue, double vcpus, int64_t mem = 256) {
    snap_.runnable.push_back(JobView{id, queue, {vcpus, mem, 0}, seq_++});
  }
  std::string Run() { return PlanToString(Schedule(snap_)); }
  Snapshot snap_;
  int64_t seq_ = 1;
};

TEST_F(ScheduleTest, FifoWithinAQueue) {
  // Given three 2-vCPU jobs in one queue on a 4-vCPU CE, the first two should start.
  Job("j1", "q1", 2);
  Job("j2", "q1", 2);
  Job("j3", "q1", 2);
  std::string plan = Run();
  EXPECT_EQ(plan.substr(0, plan.find("; wait")), "start j1@a; start j2@a");
  EXPECT_NE(plan.find("wait j3(Waiting for capacity: the job needs 2 vCPU, 256 MiB; compute "
                      "environment a is at its maxvCpus (4))"),
            std::string::npos)
      << plan;
}

TEST_F(ScheduleTest, HigherPriorityQueueGoesFirstAndSpillsToItsNextCe) {
  // Given q2 (priority 10) before q1, q2's jobs fill b, then spill into a.
  snap_.host.capacity.vcpus = 8;
  Job("low", "q1", 2);
  Job("h1", "q2", 2);
  Job("h2", "q2", 2);
  EXPECT_EQ(Run(), "start h1@b; start h2@a; start low@a");
}

TEST_F(ScheduleTest, SmallJobsBackfillBehindABigOne) {
  // Given a 3-vCPU job that can't start while 2 vCPU are used, a 1-vCPU job behind it should.
  snap_.ces["a"].used = {2, 0, 0};
  snap_.host.used = {2, 0, 0};
  Job("big", "q1", 3);
  Job("small", "q1", 1);
  std::string plan = Run();
  EXPECT_EQ(plan.substr(0, plan.find(';')), "start small@a") << plan;
  EXPECT_NE(plan.find("wait big(Waiting for capacity"), std::string::npos) << plan;
}

TEST_F(ScheduleTest, ADeepQueueOfLikeJobsWaitsAlikeAndStillBackfills) {
  // Given a full CE and 50 like 3-vCPU jobs, then 1-vCPU jobs behind them: each
  // big one waits with the same reason, the small ones start, and the
  // first small one's placement does not stop the second from being tried.
  snap_.ces["a"].used = {2, 0, 0};
  snap_.host.used = {2, 0, 0};
  for (int i = 0; i < 50; ++i) Job("big" + std::to_string(i), "q1", 3);
  Job("small1", "q1", 1);
  Job("big50", "q1", 3);
  Job("small2", "q1", 1);
  Job("small3", "q1", 1);
  Plan plan = Schedule(snap_);
  ASSERT_EQ(plan.start.size(), 2u) << PlanToString(plan);
  EXPECT_EQ(plan.start[0].job_id, "small1");
  EXPECT_EQ(plan.start[1].job_id, "small2");
  ASSERT_EQ(plan.wait.size(), 52u);
  for (const auto& w : plan.wait) {
    if (w.job_id == "small3") {
      EXPECT_EQ(w.reason, "Waiting for capacity: the job needs 1 vCPU, 256 MiB; compute "
                          "environment a is at its maxvCpus (4)");
    } else {
      EXPECT_EQ(w.reason, "Waiting for capacity: the job needs 3 vCPU, 256 MiB; compute "
                          "environment a is at its maxvCpus (4)")
          << w.job_id;
    }
  }
}

TEST_F(ScheduleTest, AJobLikeOneThatWaitedSaysWhyAfreshOnceAnotherWasPlaced) {
  // Given a host half used elsewhere: big1 (3 vCPU) waits for the host; mid (2) is
  // placed and fills CE a to its maxvCpus; big2, like big1, now waits for that.
  snap_.host.used = {2, 0, 0};
  Job("big1", "q1", 3);
  Job("mid", "q1", 2);
  Job("big2", "q1", 3);
  Plan plan = Schedule(snap_);
  ASSERT_EQ(plan.start.size(), 1u) << PlanToString(plan);
  EXPECT_EQ(plan.start[0].job_id, "mid");
  ASSERT_EQ(plan.wait.size(), 2u);
  EXPECT_NE(plan.wait[0].reason.find("the host of compute environment a"), std::string::npos)
      << plan.wait[0].reason;
  EXPECT_NE(plan.wait[1].reason.find("compute environment a is at its maxvCpus (4)"),
            std::string::npos)
      << plan.wait[1].reason;
}

TEST_F(ScheduleTest, JobsThatCanNeverFitSaySo) {
  Job("huge", "q1", 8);
  Job("fat", "q1", 1, 100000);
  std::string plan = Run();
  EXPECT_NE(plan.find("wait huge(MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE - the job "
                      "needs 8 vCPU but compute environment a allows at most 4 (maxvCpus))"),
            std::string::npos)
      << plan;
  EXPECT_NE(plan.find("wait fat(MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - the job needs 1 "
                      "vCPU, 100000 MiB but the largest host of compute environment a has 4 "
                      "vCPU, 8192 MiB)"),
            std::string::npos)
      << plan;
}

TEST_F(ScheduleTest, DisabledQueuesAndComputeEnvironmentsHoldJobsWithAReason) {
  snap_.queues[0].enabled = false;
  snap_.ces["a"].enabled = false;
  snap_.ces["b"].enabled = false;
  Job("j1", "q1", 1);
  Job("j2", "q2", 1);
  EXPECT_EQ(Run(),
            "wait j2(Waiting: no compute environment of job queue q2 is ENABLED); "
            "wait j1(Waiting: job queue q1 is DISABLED)");
}

TEST_F(ScheduleTest, TheHostIsSharedByItsComputeEnvironments) {
  // Given two CEs on one 4-vCPU host, their jobs together can't exceed the host.
  Job("h1", "q2", 2);
  Job("h2", "q2", 2);
  Job("low", "q1", 2);
  std::string plan = Run();
  EXPECT_EQ(plan.substr(0, plan.find("; wait")), "start h1@b; start h2@a");
  EXPECT_NE(plan.find("wait low(Waiting for capacity: the job needs 2 vCPU, 256 MiB; the host "
                      "of compute environment a (4 vCPU, 8192 MiB) is busy with other jobs)"),
            std::string::npos)
      << plan;
}

TEST_F(ScheduleTest, RetriedJobsGoToTheFrontOfTheirQueue) {
  // Given a full CE slot for one job, a retried job submitted last should get it.
  snap_.ces["a"].max_vcpus = 1;
  Job("first", "q1", 1);
  Job("retry", "q1", 1);
  snap_.runnable.back().front = true;
  std::string plan = Run();
  EXPECT_EQ(plan.substr(0, plan.find(';')), "start retry@a") << plan;
}

TEST_F(ScheduleTest, GpuJobsNeverFitAHostWithoutGpus) {
  snap_.runnable.push_back(JobView{"g", "q1", {1, 256, 1}, 1});
  EXPECT_NE(Run().find("wait g(MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT"), std::string::npos);
}

// Fair share: one queue with a policy on a 12-vCPU CE and a big host.
class FairShareTest : public ::testing::Test {
 protected:
  void SetUp() override {
    snap_.host.capacity = {1000, 1 << 20, 0};
    snap_.ces["ce"] = CeView{"ce", "ce", true, true, 12, {}};
    QueueView q{"fq", "fq", true, 1, 1, {"ce"}};
    q.fair_share = true;
    snap_.queues.push_back(q);
  }
  void Jobs(const std::string& share, double weight, int n) {
    for (int i = 0; i < n; ++i) {
      JobView j{share + std::to_string(i), "fq", {1, 1, 0}, seq_++};
      j.share = share;
      j.weight = weight;
      snap_.runnable.push_back(j);
    }
  }
  std::map<std::string, int> Started(const Plan& plan) {
    std::map<std::string, int> n;
    for (const auto& p : plan.start) ++n[p.job_id.substr(0, 1)];
    return n;
  }
  Snapshot snap_;
  int64_t seq_ = 1;
};

TEST_F(FairShareTest, ALowerWeightGetsProportionallyMore) {
  // Given shares A (weight 1) and B (weight 0.5) contending for 12 vCPU, B should get twice A.
  Jobs("A", 1.0, 20);
  Jobs("B", 0.5, 20);
  auto n = Started(Schedule(snap_));
  EXPECT_EQ(n["A"], 4);
  EXPECT_EQ(n["B"], 8);
}

TEST_F(FairShareTest, UsageConvergesToTheInverseWeightsOverManyRounds) {
  // Given 100 rounds in which every running job finishes and the queue refills, with each
  // share's past usage in the snapshot (as the service's decayed usage), the cumulative
  // vCPU-rounds of A (weight 1), B (0.25) and C (0.5) should be 1 : 4 : 2 — rounding in one
  // round is paid back in the next ones.
  std::map<std::string, double> total;
  for (int round = 0; round < 100; ++round) {
    snap_.runnable.clear();
    for (const auto& [share, v] : total) snap_.share_usage["fq"][share] = v;
    Jobs("A", 1.0, 12);
    Jobs("B", 0.25, 12);
    Jobs("C", 0.5, 12);
    for (auto& [share, v] : Started(Schedule(snap_))) total[share] += v;
  }
  double sum = total["A"] + total["B"] + total["C"];
  EXPECT_NEAR(total["A"] / sum, 1.0 / 7, 0.01) << total["A"];
  EXPECT_NEAR(total["B"] / sum, 4.0 / 7, 0.01) << total["B"];
  EXPECT_NEAR(total["C"] / sum, 2.0 / 7, 0.01) << total["C"];
}

TEST_F(FairShareTest, RunningUsageCountsAgainstAShare) {
  // Given A already running 6 vCPU, the 6 free vCPU should all go to B (equal weights).
  snap_.share_usage["fq"]["A"] = 6;
  snap_.ces["ce"].used = {6, 6, 0};
  Jobs("A", 1.0, 10);
  Jobs("B", 1.0, 10);
  auto n = Started(Schedule(snap_));
  EXPECT_EQ(n["A"], 0);
  EXPECT_EQ(n["B"], 6);
}

TEST_F(FairShareTest, ComputeReservationKeepsCapacityForSharesNotRunning) {
  // Given computeReservation 50 and only share A running, A may use half of the 12 vCPU.
  snap_.queues[0].compute_reservation = 0.5;
  snap_.share_usage["fq"]["A"] = 1;
  snap_.ces["ce"].used = {1, 1, 0};
  Jobs("A", 1.0, 20);
  Plan plan = Schedule(snap_);
  EXPECT_EQ(Started(plan)["A"], 5);  // 1 + 5 = 6 = 12 * (1 - 0.5^1)
  EXPECT_NE(PlanToString(plan).find("computeReservation keeps part of compute environment ce"),
            std::string::npos);
  // A new share may use the reserve.
  snap_.runnable.clear();
  snap_.ces["ce"].used = {6, 6, 0};
  snap_.share_usage["fq"]["A"] = 6;
  Jobs("B", 1.0, 1);
  EXPECT_EQ(Started(Schedule(snap_))["B"], 1);
}

TEST_F(ScheduleTest, ConsumableResourcesGateJobs) {
  // Given 3 licenses, jobs needing 2 each: one starts, the next waits naming the resource.
  snap_.consumables["license"] = Consumable{3, 3};
  Job("j1", "q1", 1);
  Job("j2", "q1", 1);
  Job("j3", "q1", 1);
  for (auto& j : snap_.runnable) j.consumables = {{"license", 2}};
  snap_.runnable[2].consumables = {{"license", 5}};
  std::string plan = Run();
  EXPECT_NE(plan.find("start j1@a"), std::string::npos) << plan;
  EXPECT_NE(plan.find("wait j2(Waiting for consumable resource license: the job needs 2, of a "
                      "total quantity of 3)"),
            std::string::npos)
      << plan;
  EXPECT_NE(plan.find("wait j3(Waiting for consumable resource license: the job needs 5 but its "
                      "total quantity is only 3)"),
            std::string::npos)
      << plan;
}

}  // namespace
}  // namespace drover::sched
