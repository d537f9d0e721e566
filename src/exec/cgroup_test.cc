#include "exec/cgroup.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace drover::exec {
namespace {

namespace fs = std::filesystem;

std::string Read(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void Write(const fs::path& p, const std::string& s) { std::ofstream(p) << s; }

class FakeCgroupfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("drover-cgfs-" + std::to_string(getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  fs::path root_;
};

TEST_F(FakeCgroupfsTest, PureV2LimitsUsageAndKillUseTheV2Files) {
  // Given a cgroupfs root that looks like cgroup v2, limits go to memory.max, cpu.weight,
  // cpu.max and pids.max, and usage comes from memory.peak, cpu.stat and memory.events.
  Write(root_ / "cgroup.controllers", "cpuset cpu io memory pids\n");
  Write(root_ / "cgroup.subtree_control", "");
  auto cg = Cgroups::Detect(root_.string(), "drover");
  ASSERT_EQ(cg->mode(), Cgroups::Mode::kV2) << cg->Describe();
  auto g = cg->Create("t1", CgroupLimits{256 << 20, 0.5, true, 100});
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  fs::path d = root_ / "drover" / "t1";
  EXPECT_EQ(Read(d / "memory.max"), "268435456");
  EXPECT_EQ(Read(d / "cpu.weight"), "20");  // 512 shares
  EXPECT_EQ(Read(d / "cpu.max"), "50000 100000");
  EXPECT_EQ(Read(d / "pids.max"), "100");
  EXPECT_EQ(Read(root_ / "drover" / "cgroup.subtree_control"), "+pids");  // last one written
  EXPECT_EQ(cg->ProcsFiles(*g), std::vector<std::string>{(d / "cgroup.procs").string()});
  Write(d / "memory.peak", "12345\n");
  Write(d / "cpu.stat", "usage_usec 2000\nuser_usec 1500\n");
  Write(d / "memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n");
  CgroupUsage u = cg->Usage(*g);
  EXPECT_EQ(u.peak_memory_bytes, 12345);
  EXPECT_EQ(u.cpu_time_ns, 2000000);
  EXPECT_TRUE(u.oom_killed);
  cg->Kill(*g);
  EXPECT_EQ(Read(d / "cgroup.kill"), "1");
}

TEST_F(FakeCgroupfsTest, ApplyWritesOnlyWhatChangedAndLiftsLimits) {
  // Given a reused v2 group, Apply() rewrites only the limits that differ, and a
  // limit no longer wanted goes back to the kernel's "none".
  Write(root_ / "cgroup.controllers", "cpuset cpu io memory pids\n");
  Write(root_ / "cgroup.subtree_control", "");
  auto cg = Cgroups::Detect(root_.string(), "drover");
  CgroupLimits before{256 << 20, 0.5, true, 100};
  auto g = cg->Create("p1-1", before);
  ASSERT_TRUE(g.ok());
  fs::path d = root_ / "drover" / "p1-1";
  fs::remove(d / "cpu.weight");
  ASSERT_TRUE(cg->Apply(*g, before, before).ok());
  EXPECT_FALSE(fs::exists(d / "cpu.weight")) << "nothing differs: nothing is written";
  ASSERT_TRUE(cg->Apply(*g, before, CgroupLimits{0, 1, false, 0}).ok());
  EXPECT_EQ(Read(d / "memory.max"), "max");
  EXPECT_EQ(Read(d / "cpu.weight"), "39");  // 1,024 shares
  EXPECT_EQ(Read(d / "cpu.max"), "max 100000");
  EXPECT_EQ(Read(d / "pids.max"), "max");
  // Counters held open read the same files; the peak restarts through them.
  Write(d / "memory.peak", "999999\n");
  Write(d / "cpu.stat", "usage_usec 7\n");
  Write(d / "memory.events", "oom_kill 2\n");
  Write(d / "cgroup.procs", "");
  CgroupCounters counters(*g);
  CgroupUsage u = counters.Read();
  EXPECT_EQ(u.peak_memory_bytes, 999999);
  EXPECT_EQ(u.cpu_time_ns, 7000);
  EXPECT_EQ(u.oom_kills, 2);
  EXPECT_FALSE(counters.Populated());
  Write(d / "cgroup.procs", "42\n");
  EXPECT_TRUE(counters.Populated());
  ASSERT_TRUE(counters.ResetPeak());
  EXPECT_EQ(Read(d / "memory.peak").substr(0, 5), "reset");
}

TEST_F(FakeCgroupfsTest, HybridUsesV1ControllersAndTheUnifiedKill) {
  for (const char* c : {"memory", "cpu", "cpuacct", "pids", "freezer", "unified"}) {
    fs::create_directories(root_ / c);
    Write(root_ / c / "cgroup.procs", "");
  }
  auto cg = Cgroups::Detect(root_.string(), "drover");
  ASSERT_EQ(cg->mode(), Cgroups::Mode::kHybrid) << cg->Describe();
  auto g = cg->Create("t2", CgroupLimits{64 << 20, 2, false, 0});
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(Read(root_ / "memory/drover/t2/memory.limit_in_bytes"), "67108864");
  EXPECT_EQ(Read(root_ / "cpu/drover/t2/cpu.shares"), "2048");
  EXPECT_FALSE(fs::exists(root_ / "cpu/drover/t2/cpu.cfs_quota_us"));  // no hard quota
  // memory, cpu, pids + unified (whose cgroup.kill and cpu.stat make the freezer and
  // cpuacct unneeded)
  EXPECT_EQ(cg->ProcsFiles(*g),
            (std::vector<std::string>{(root_ / "memory/drover/t2/cgroup.procs").string(),
                                      (root_ / "cpu/drover/t2/cgroup.procs").string(),
                                      (root_ / "pids/drover/t2/cgroup.procs").string(),
                                      (root_ / "unified/drover/t2/cgroup.procs").string()}));
  EXPECT_FALSE(fs::exists(root_ / "freezer/drover/t2"));
  EXPECT_FALSE(fs::exists(root_ / "cpuacct/drover/t2"));
  Write(root_ / "memory/drover/t2/memory.max_usage_in_bytes", "777\n");
  Write(root_ / "unified/drover/t2/cpu.stat", "usage_usec 12\nuser_usec 10\nsystem_usec 2\n");
  Write(root_ / "memory/drover/t2/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n");
  CgroupUsage u = cg->Usage(*g);
  EXPECT_EQ(u.peak_memory_bytes, 777);
  EXPECT_EQ(u.cpu_time_ns, 12000);
  EXPECT_FALSE(u.oom_killed);
  CgroupCounters counters(*g);
  EXPECT_EQ(counters.Read().cpu_time_ns, 12000);
  cg->Kill(*g);
  EXPECT_EQ(Read(root_ / "unified/drover/t2/cgroup.kill"), "1");
}

TEST_F(FakeCgroupfsTest, HybridWithoutTheUnifiedHierarchyCountsCpuInCpuacctAndKillsWithTheFreezer) {
  for (const char* c : {"memory", "cpu", "cpuacct", "pids", "freezer"}) {
    fs::create_directories(root_ / c);
    Write(root_ / c / "cgroup.procs", "");
  }
  auto cg = Cgroups::Detect(root_.string(), "drover");
  ASSERT_EQ(cg->mode(), Cgroups::Mode::kHybrid) << cg->Describe();
  auto g = cg->Create("t4", CgroupLimits{64 << 20, 1, false, 0});
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(cg->ProcsFiles(*g).size(), 5u);  // memory, cpu, cpuacct, pids, freezer
  Write(root_ / "cpuacct/drover/t4/cpuacct.usage", "999\n");
  EXPECT_EQ(cg->Usage(*g).cpu_time_ns, 999);
  CgroupCounters counters(*g);
  EXPECT_EQ(counters.Read().cpu_time_ns, 999);
  cg->Kill(*g);
  EXPECT_EQ(Read(root_ / "freezer/drover/t4/freezer.state"), "THAWED");
}

TEST_F(FakeCgroupfsTest, NothingUsableMeansNoCgroupsAndSaysSo) {
  auto cg = Cgroups::Detect((root_ / "missing").string(), "drover");
  EXPECT_EQ(cg->mode(), Cgroups::Mode::kNone);
  EXPECT_NE(cg->Describe().find("best effort"), std::string::npos);
  auto g = cg->Create("t3", CgroupLimits{1 << 20, 1, false, 0});
  ASSERT_TRUE(g.ok());
  EXPECT_TRUE(g->dirs.empty());
  EXPECT_TRUE(cg->ProcsFiles(*g).empty());
}

}  // namespace
}  // namespace drover::exec
