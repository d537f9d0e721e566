#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "exec/cgroup.h"
#include "exec/executor.h"
#include "exec/supervisor.h"
#include "logs/logs.h"

namespace drover::exec {
namespace {

namespace fs = std::filesystem;

// A process that is not a zombie (a killed orphan may linger as one until init reaps it).
bool Alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] != 'Z';
}

// The supervisor's pid, from the executor's description.
pid_t SupervisorPid(const Executor& e) {
  std::string d = e.Describe();
  size_t at = d.find("(pid ");
  return at == std::string::npos ? 0 : static_cast<pid_t>(std::stol(d.substr(at + 5)));
}

class LocalExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("drover-exec-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
    exec_ = NewExecutor();
  }
  void TearDown() override {
    exec_.reset();
    // The supervisor may still be moving a scratch directory to its pool: a walk
    // that meets an entry renamed away under it fails, so walk again.
    std::error_code ec;
    for (int i = 0; i < 100 && (fs::remove_all(root_, ec), fs::exists(root_)); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  std::unique_ptr<Executor> NewExecutor(std::string cgroup_root = "/sys/fs/cgroup",
                                        std::string run = "run") {
    LocalOptions opts;
    opts.cgroup_root = cgroup_root;
    opts.kill_grace_ms = 300;
    opts.run_dir = (root_ / run).string();
    opts.supervisor_path = DROVER_SUPERVISOR_PATH;
    return MakeLocalExecutor(opts, clock_, [this](const TaskEvent& e) {
      std::lock_guard<std::mutex> l(mu_);
      events_.push_back(e);
      cv_.notify_all();
    });
  }
  TaskSpec Spec(std::string id, std::vector<std::string> argv) {
    TaskSpec s;
    s.task_id = id;
    s.job_id = "job-" + id;
    s.argv = std::move(argv);
    s.env = {"PATH=/usr/bin:/bin", "GREETING=hello"};
    s.workdir = root_.string();
    s.log_root = (root_ / "logs").string();
    s.log_group = "/aws/batch/job";
    s.log_stream = "def/default/" + id;
    return s;
  }
  void WaitRunning(const std::string& id) {
    std::unique_lock<std::mutex> l(mu_);
    EXPECT_TRUE(cv_.wait_for(l, std::chrono::seconds(20), [&] {
      for (auto& e : events_) {
        if (e.task_id == id && e.kind == TaskEvent::Kind::kRunning) return true;
      }
      return false;
    })) << "no kRunning for " << id;
  }
  TaskEvent WaitExit(const std::string& id) {
    std::unique_lock<std::mutex> l(mu_);
    bool ok = cv_.wait_for(l, std::chrono::seconds(20), [&] {
      for (auto& e : events_) {
        if (e.task_id == id && e.kind == TaskEvent::Kind::kExited) return true;
      }
      return false;
    });
    EXPECT_TRUE(ok) << "no exit event for " << id;
    for (auto& e : events_) {
      if (e.task_id == id && e.kind == TaskEvent::Kind::kExited) return e;
    }
    return {};
  }
  std::vector<std::string> Lines(const std::string& id) {
    logs::LogStore store((root_ / "logs").string());
    auto events = store.ReadAll("/aws/batch/job", "def/default/" + id);
    EXPECT_TRUE(events.ok()) << events.status().ToString();
    std::vector<std::string> out;
    if (events.ok()) {
      for (auto& e : *events) out.push_back(e.message);
    }
    return out;
  }

  SystemClock clock_;
  fs::path root_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<TaskEvent> events_;
  std::unique_ptr<Executor> exec_;
};

TEST_F(LocalExecutorTest, OutputAndExitCodeAreReported) {
  // Given a command that prints to stdout and stderr and exits 3, both lines and the code arrive.
  auto s = Spec("t1", {"sh", "-c", "echo out; echo err >&2; exit 3"});
  s.log_header = {"[drover] header"};
  ASSERT_TRUE(exec_->Start(s).ok());
  TaskEvent e = WaitExit("t1");
  EXPECT_EQ(e.exit_code, 3);
  EXPECT_EQ(e.reason, "");
  EXPECT_EQ(Lines("t1"), (std::vector<std::string>{"[drover] header", "out", "err"}));
  std::lock_guard<std::mutex> l(mu_);
  ASSERT_EQ(events_.size(), 2u);
  EXPECT_EQ(events_[0].kind, TaskEvent::Kind::kRunning);
}

TEST_F(LocalExecutorTest, TheEnvironmentIsExactlyTheSpecs) {
  ASSERT_TRUE(exec_->Start(Spec("t2", {"env"})).ok());
  EXPECT_EQ(WaitExit("t2").exit_code, 0);
  EXPECT_EQ(Lines("t2"), (std::vector<std::string>{"PATH=/usr/bin:/bin", "GREETING=hello"}));
}

TEST_F(LocalExecutorTest, MissingCommandsFailToStart) {
  // Given commands that cannot run, each attempt ends as a failed start (no kRunning),
  // the job's own doing, saying why.
  ASSERT_TRUE(exec_->Start(Spec("t3", {"no-such-command-drover"})).ok());
  ASSERT_TRUE(exec_->Start(Spec("t4", {})).ok());
  for (const char* id : {"t3", "t4"}) {
    TaskEvent e = WaitExit(id);
    EXPECT_TRUE(e.start_failed) << id;
    EXPECT_TRUE(e.client_error) << id;
    EXPECT_EQ(e.exit_code, -1);
    EXPECT_NE(e.reason.find("CannotStartContainerError"), std::string::npos) << e.reason;
  }
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& e : events_) EXPECT_NE(e.kind, TaskEvent::Kind::kRunning);
  // What the caller already knows cannot start fails at once, with no event.
  TaskSpec s = Spec("t5", {"true"});
  s.cannot_start = "CannotPullContainerError: no such image";
  EXPECT_FALSE(exec_->Start(s).ok());
}

TEST_F(LocalExecutorTest, WhatFailsInTheChildBeforeItsExecIsAFailedStartSayingWhy) {
  // Given attempts whose child process is made but cannot become the job (its
  // command is not there, its working directory is not there), each ends as a
  // failed start of its own doing, with the reason, never as running; and an
  // attempt started beside them runs as usual.
  ASSERT_TRUE(exec_->Start(Spec("c1", {"/nonexistent/drover-command"})).ok());
  TaskSpec nodir = Spec("c2", {"true"});
  nodir.workdir = (root_ / "no-such-dir").string();
  ASSERT_TRUE(exec_->Start(nodir).ok());
  ASSERT_TRUE(exec_->Start(Spec("c3", {"sh", "-c", "exit 4"})).ok());
  TaskEvent e1 = WaitExit("c1"), e2 = WaitExit("c2"), e3 = WaitExit("c3");
  for (const TaskEvent* e : {&e1, &e2}) {
    EXPECT_TRUE(e->start_failed) << e->task_id;
    EXPECT_TRUE(e->client_error) << e->task_id;
  }
  EXPECT_EQ(e1.reason, "CannotStartContainerError: /nonexistent/drover-command: No such file or directory");
  EXPECT_EQ(e2.reason, "CannotStartContainerError: cannot enter the working directory " +
                           nodir.workdir + ": No such file or directory");
  EXPECT_FALSE(e3.start_failed);
  EXPECT_EQ(e3.exit_code, 4);
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& e : events_) {
    if (e.task_id != "c3") {
      EXPECT_NE(e.kind, TaskEvent::Kind::kRunning) << e.task_id;
    }
  }
}

TEST_F(LocalExecutorTest, TerminateKillsTheWholeProcessTree) {
  // Given a shell that ignores SIGTERM and has a background child, terminate should
  // SIGKILL the group after the grace period and leave no process behind.
  auto pidfile = (root_ / "child.pid").string();
  auto s = Spec("t5", {"sh", "-c",
                       "trap '' TERM; sleep 300 & echo $! > " + pidfile + "; echo started; wait"});
  ASSERT_TRUE(exec_->Start(s).ok());
  for (int i = 0; i < 200 && !fs::exists(pidfile); ++i) usleep(10000);
  usleep(50000);
  exec_->Terminate("t5", "Terminated by the user");
  TaskEvent e = WaitExit("t5");
  EXPECT_EQ(e.exit_code, 137);
  EXPECT_EQ(e.reason, "Terminated by the user");
  std::ifstream in(pidfile);
  pid_t child = 0;
  in >> child;
  ASSERT_GT(child, 0);
  // A killed orphan may linger as a zombie until init reaps it: that is not alive.
  auto alive = [](pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) return false;
    size_t paren = line.rfind(')');
    return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] != 'Z';
  };
  for (int i = 0; i < 100 && alive(child); ++i) usleep(10000);
  EXPECT_FALSE(alive(child)) << "background child " << child << " survived";
}

TEST_F(LocalExecutorTest, ATerminateRightAfterStartStillEndsTheAttempt) {
  // The request may reach the supervisor while the process is still being
  // spawned: it applies once the process runs.
  ASSERT_TRUE(exec_->Start(Spec("quick-term", {"sleep", "30"})).ok());
  exec_->Terminate("quick-term", "Terminated by the user");
  TaskEvent e = WaitExit("quick-term");
  EXPECT_EQ(e.reason, "Terminated by the user");
  EXPECT_EQ(e.exit_code, 128 + SIGTERM);
}

TEST_F(LocalExecutorTest, WithoutCgroupsAttemptsRunWithRlimitsAndTheirScratchIsRemoved) {
  // Given no cgroup hierarchy, an attempt still runs in its own scratch directory,
  // under an address-space limit for its memory, and the directory goes with it.
  // (Its own run dir: a supervisor keeps the cgroup layout of the server that started it.)
  exec_ = NewExecutor("", "run-plain");
  EXPECT_NE(exec_->Describe().find("no cgroups"), std::string::npos) << exec_->Describe();
  auto s = Spec("plain", {"sh", "-c", "pwd; ulimit -v"});
  s.workdir = (root_ / "scratch" / "plain-1").string();
  fs::create_directories(root_ / "scratch");
  s.scratch_workdir = true;
  s.memory_mib = 64;
  ASSERT_TRUE(exec_->Start(s).ok());
  EXPECT_EQ(WaitExit("plain").exit_code, 0);
  EXPECT_EQ(Lines("plain"), (std::vector<std::string>{s.workdir, std::to_string(64 * 1024)}));
  for (int i = 0; i < 100 && fs::exists(s.workdir); ++i) usleep(10000);
  EXPECT_FALSE(fs::exists(s.workdir));
}

TEST_F(LocalExecutorTest, ARunDirTooLongForASocketAddressStillWorks) {
  // A Unix socket path holds at most 107 bytes: the supervisor's is then reached
  // through /proc/self/fd.
  std::string run = "run-" + std::string(110, 'r');
  ASSERT_GT((root_ / run / "supervisor.sock").string().size(), 108u);
  auto other = NewExecutor("/sys/fs/cgroup", run);
  ASSERT_GT(SupervisorPid(*other), 0) << other->Describe();
  ASSERT_TRUE(other->Start(Spec("far", {"sh", "-c", "exit 9"})).ok());
  EXPECT_EQ(WaitExit("far").exit_code, 9);
  EXPECT_TRUE(fs::exists(root_ / run / "supervisor.sock"));
}

TEST_F(LocalExecutorTest, ASignalDeathIsExitCode128PlusN) {
  ASSERT_TRUE(exec_->Start(Spec("t6", {"sh", "-c", "kill -9 $$"})).ok());
  TaskEvent e = WaitExit("t6");
  EXPECT_EQ(e.exit_code, 137);
  EXPECT_NE(e.reason.find("signal 9"), std::string::npos) << e.reason;
}

TEST_F(LocalExecutorTest, AttemptsOutliveTheExecutorAndAreReattached) {
  // Given a running attempt whose executor (server) goes away, the attempt should go on,
  // and a new executor should re-attach and report its true exit code and full output.
  auto gate = (root_ / "gate").string();
  auto s = Spec("keep", {"sh", "-c", "echo before; while [ ! -e " + gate +
                                     " ]; do sleep 0.02; done; echo after; exit 3"});
  ASSERT_TRUE(exec_->Start(s).ok());
  exec_.reset();  // the server stops
  {
    std::lock_guard<std::mutex> l(mu_);
    events_.clear();
  }
  exec_ = NewExecutor();
  exec_->Attach("keep", "job-keep", 1);
  std::ofstream(gate) << "open";  // only now may it end
  TaskEvent e = WaitExit("keep");
  EXPECT_EQ(e.exit_code, 3);
  EXPECT_EQ(Lines("keep"), (std::vector<std::string>{"before", "after"}));
}

TEST_F(LocalExecutorTest, AttemptsThatEndedWhileNoServerWatchedAreCollected) {
  // (The job waits for a gate the test opens once the executor is gone: otherwise it
  // could end, and be reported, before the executor stops.)
  auto gate = (root_ / "gate").string();
  auto done = (root_ / "done").string();
  auto s = Spec("gone", {"sh", "-c", "while [ ! -e " + gate + " ]; do sleep 0.02; done; "
                                     "echo bye; touch " + done + "; exit 5"});
  ASSERT_TRUE(exec_->Start(s).ok());
  exec_.reset();
  std::ofstream(gate) << "open";
  for (int i = 0; i < 500 && !fs::exists(done); ++i) usleep(10000);
  usleep(200000);  // the supervisor sees the exit and keeps it for the next server
  {
    std::lock_guard<std::mutex> l(mu_);
    events_.clear();
  }
  exec_ = NewExecutor();
  exec_->Attach("gone", "job-gone", 1);
  EXPECT_EQ(WaitExit("gone").exit_code, 5);
  // And an attempt that left no trace at all is lost.
  exec_->Attach("never", "job-never", 1);
  TaskEvent lost = WaitExit("never");
  EXPECT_EQ(lost.exit_code, -1);
  EXPECT_NE(lost.reason.find("Host lost"), std::string::npos);
}

TEST_F(LocalExecutorTest, TheSupervisorLeavesOnceIdleAndUnwatched) {
  ASSERT_TRUE(exec_->Start(Spec("t", {"true"})).ok());
  EXPECT_EQ(WaitExit("t").exit_code, 0);
  pid_t sup = SupervisorPid(*exec_);
  ASSERT_GT(sup, 0) << exec_->Describe();
  EXPECT_TRUE(Alive(sup));
  exec_.reset();
  for (int i = 0; i < 500 && Alive(sup); ++i) usleep(10000);
  EXPECT_FALSE(Alive(sup)) << "an idle supervisor with no server stayed";
  EXPECT_FALSE(fs::exists(root_ / "run/supervisor.sock"));
}

TEST_F(LocalExecutorTest, AnExitNoServerHeardOutlivesTheSupervisorsLeaving) {
  // Given an attempt that ends while no server is connected, the supervisor leaves
  // (idle) and the next one it starts still reports the true exit code.
  auto gate = (root_ / "gate").string();
  ASSERT_TRUE(exec_->Start(Spec("late", {"sh", "-c", "while [ ! -e " + gate +
                                                         " ]; do sleep 0.02; done; exit 6"}))
                  .ok());
  pid_t sup = SupervisorPid(*exec_);
  exec_.reset();
  std::ofstream(gate) << "open";
  for (int i = 0; i < 500 && Alive(sup); ++i) usleep(10000);
  ASSERT_FALSE(Alive(sup));
  EXPECT_TRUE(fs::exists(root_ / "run/exits.jsonl"));
  {
    std::lock_guard<std::mutex> l(mu_);
    events_.clear();
  }
  exec_ = NewExecutor();
  EXPECT_NE(SupervisorPid(*exec_), sup);
  exec_->Attach("late", "job-late", 1);
  EXPECT_EQ(WaitExit("late").exit_code, 6);
}

TEST_F(LocalExecutorTest, AnExitIsKeptUntilAcknowledged) {
  // Given an exit the listener heard but nobody acknowledged (not durable yet), a
  // server that attaches hears it again; once acknowledged, the supervisor forgets it.
  ASSERT_TRUE(exec_->Start(Spec("k", {"sh", "-c", "exit 7"})).ok());
  EXPECT_EQ(WaitExit("k").exit_code, 7);
  auto other = NewExecutor();
  auto clear = [&] {
    std::lock_guard<std::mutex> l(mu_);
    events_.clear();
  };
  clear();
  other->Attach("k", "job-k", 1);
  EXPECT_EQ(WaitExit("k").exit_code, 7);
  other->Acknowledge("k");
  clear();
  other->Attach("k", "job-k", 1);
  TaskEvent e = WaitExit("k");
  EXPECT_EQ(e.exit_code, -1);
  EXPECT_NE(e.reason.find("Host lost"), std::string::npos) << e.reason;
}

TEST_F(LocalExecutorTest, StartAllStartsEachAttemptInOrderAndRefusesOnlyTheOnesThatCannotStart) {
  // Given a pass's attempts sent together: one that cannot start, two that can, and one
  // that repeats a started attempt, each gets its own status, and the two run and exit
  // with their own codes; AcknowledgeAll then makes the supervisor forget both exits.
  TaskSpec bad = Spec("sa-bad", {"true"});
  bad.cannot_start = "CannotStartContainerError: no such image";
  TaskSpec a = Spec("sa-a", {"sh", "-c", "exit 3"}), b = Spec("sa-b", {"sh", "-c", "exit 4"});
  std::vector<Status> st = exec_->StartAll({&a, &bad, &b, &a});
  ASSERT_EQ(st.size(), 4u);
  EXPECT_TRUE(st[0].ok()) << st[0].ToString();
  EXPECT_EQ(st[1].code(), Code::kClient);
  EXPECT_EQ(st[1].message(), bad.cannot_start);
  EXPECT_TRUE(st[2].ok()) << st[2].ToString();
  EXPECT_EQ(st[3].code(), Code::kServer) << st[3].ToString();
  EXPECT_EQ(WaitExit("sa-a").exit_code, 3);
  EXPECT_EQ(WaitExit("sa-b").exit_code, 4);
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& e : events_) EXPECT_NE(e.task_id, "sa-bad");
  }
  exec_->AcknowledgeAll({"sa-a", "sa-b"});
  auto other = NewExecutor();
  for (const char* id : {"sa-a", "sa-b"}) {
    other->Attach(id, std::string("job-") + id, 1);
  }
  for (const char* id : {"sa-a", "sa-b"}) {
    std::unique_lock<std::mutex> l(mu_);
    EXPECT_TRUE(cv_.wait_for(l, std::chrono::seconds(20), [&] {
      for (const auto& e : events_) {
        if (e.task_id == id && e.kind == TaskEvent::Kind::kExited && e.exit_code == -1) return true;
      }
      return false;
    })) << id << ": its exit was not forgotten";
  }
}

TEST_F(LocalExecutorTest, AScratchDirectoryIsEmptiedAndPooledForTheNextAttempt) {
  // Given an attempt that leaves files in its scratch directory, the directory is emptied
  // and put in <parent>/.pool once it ends; the next attempt gets it, empty, under its own
  // name. With the pool directory removed meanwhile, an attempt's directory still goes
  // back to a pool made anew.
  fs::path scratch = root_ / "scratch", pool = scratch / ".pool";
  auto spec = [&](const std::string& id, const std::string& script) {
    TaskSpec s = Spec(id, {"sh", "-c", script});
    s.scratch_workdir = true;
    s.workdir = (scratch / ("job-" + id)).string();
    return s;
  };
  auto pooled = [&](const std::string& id) {  // its directory went back to the pool
    for (int i = 0; i < 1000; ++i) {
      std::error_code ec;
      if (!fs::exists(scratch / ("job-" + id)) && fs::exists(pool) && !fs::is_empty(pool, ec)) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  };
  fs::create_directories(scratch);
  ASSERT_TRUE(exec_->Start(spec("sc1", "echo secret > f; mkdir d; echo x > d/g")).ok());
  EXPECT_EQ(WaitExit("sc1").exit_code, 0);
  ASSERT_TRUE(pooled("sc1"));
  ASSERT_TRUE(exec_->Start(spec("sc2", "ls -A; pwd")).ok());
  EXPECT_EQ(WaitExit("sc2").exit_code, 0);
  EXPECT_EQ(Lines("sc2"), (std::vector<std::string>{(scratch / "job-sc2").string()}));
  ASSERT_TRUE(pooled("sc2"));
  fs::remove_all(pool);
  ASSERT_TRUE(exec_->Start(spec("sc3", "ls -A; pwd")).ok());
  EXPECT_EQ(WaitExit("sc3").exit_code, 0);
  EXPECT_EQ(Lines("sc3"), (std::vector<std::string>{(scratch / "job-sc3").string()}));
  ASSERT_TRUE(pooled("sc3"));
  ASSERT_TRUE(exec_->Start(spec("sc4", "touch left; ls -A")).ok());
  EXPECT_EQ(WaitExit("sc4").exit_code, 0);
  EXPECT_EQ(Lines("sc4"), (std::vector<std::string>{"left"}));
}

TEST_F(LocalExecutorTest, ServersOnOneRunDirShareOneSupervisorAndHearTheirOwnExits) {
  auto other = NewExecutor();
  ASSERT_GT(SupervisorPid(*exec_), 0);
  EXPECT_EQ(SupervisorPid(*other), SupervisorPid(*exec_));
  ASSERT_TRUE(exec_->Start(Spec("a", {"sh", "-c", "exit 1"})).ok());
  ASSERT_TRUE(other->Start(Spec("b", {"sh", "-c", "exit 2"})).ok());
  EXPECT_EQ(WaitExit("a").exit_code, 1);
  EXPECT_EQ(WaitExit("b").exit_code, 2);
  usleep(100000);
  std::lock_guard<std::mutex> l(mu_);
  int exits = 0;
  for (const auto& e : events_) exits += e.kind == TaskEvent::Kind::kExited;
  EXPECT_EQ(exits, 2) << "each exit is heard once, by the executor that started it";
}

TEST_F(LocalExecutorTest, AttemptsOfALostSupervisorAreLostAndANewOneTakesOver) {
  ASSERT_TRUE(exec_->Start(Spec("long", {"sleep", "30"})).ok());
  WaitRunning("long");
  pid_t sup = SupervisorPid(*exec_);
  ASSERT_GT(sup, 0);
  ASSERT_EQ(::kill(sup, SIGKILL), 0);
  TaskEvent e = WaitExit("long");
  EXPECT_EQ(e.exit_code, -1);
  EXPECT_NE(e.reason.find("Host lost"), std::string::npos) << e.reason;
  ASSERT_TRUE(exec_->Start(Spec("after", {"sh", "-c", "exit 4"})).ok());
  EXPECT_EQ(WaitExit("after").exit_code, 4);
  EXPECT_NE(SupervisorPid(*exec_), sup);
}

TEST_F(LocalExecutorTest, ASandboxShowsOnlyTheImageAndItsMounts) {
  if (::geteuid() != 0 || !fs::exists("/bin/busybox") ||
      (!fs::exists("/usr/bin/bwrap") && !fs::exists("/bin/bwrap"))) {
    GTEST_SKIP() << "needs root, busybox-static and bubblewrap";
  }
  // Given a busybox root filesystem and a read-only mount of a host dir, the job should see
  // the image (not the host), its mount, only its own processes, and no network but lo.
  fs::path rootfs = root_ / "rootfs";
  for (const char* d : {"bin", "etc", "proc", "dev", "tmp", "data"}) fs::create_directories(rootfs / d);
  fs::copy_file("/bin/busybox", rootfs / "bin/busybox");
  for (const char* c : {"sh", "ls", "cat", "grep", "wc", "touch", "echo"}) {
    fs::create_symlink("busybox", rootfs / "bin" / c);
  }
  fs::create_directories(root_ / "shared");
  std::ofstream(root_ / "shared/hello.txt") << "from the host\n";
  std::ofstream(root_ / "host-only.txt") << "secret\n";
  fs::create_directories(root_ / "scratch");
  auto s = Spec("box", {"sh", "-c",
                        "cat /data/hello.txt; test -e " + (root_ / "host-only.txt").string() +
                            " || echo host-hidden; ls /proc | grep -c '^[0-9]'; "
                            "cat /proc/net/dev | grep -c ':'; touch /data/x || echo ro-mount; "
                            "echo w > /tmp/f && echo tmp-ok"});
  s.env = {"PATH=/bin"};
  s.workdir = (root_ / "scratch").string();
  s.sandbox = TaskSpec::Sandbox{
      .rootfs = rootfs.string(),
      .mounts = {TaskSpec::Mount{(root_ / "shared").string(), "/data", true}}};
  ASSERT_TRUE(exec_->Start(s).ok());
  TaskEvent e = WaitExit("box");
  EXPECT_EQ(e.exit_code, 0);
  std::vector<std::string> lines = Lines("box");
  ASSERT_EQ(lines.size(), 7u);
  EXPECT_EQ(lines[0], "from the host");
  EXPECT_EQ(lines[1], "host-hidden");
  EXPECT_LE(std::stoi(lines[2]), 5) << "processes visible: the sandbox's own only";
  EXPECT_EQ(lines[3], "1");  // network interfaces: lo
  EXPECT_EQ(lines[5], "ro-mount");
  EXPECT_EQ(lines[6], "tmp-ok");
}

// On a host whose cgroups are writable (root here), limits and kills are real.
class CgroupExecutorTest : public LocalExecutorTest {
 protected:
  bool Available() {
    auto cg = Cgroups::Detect("/sys/fs/cgroup", "drover-test");
    return cg->mode() != Cgroups::Mode::kNone;
  }
};

TEST_F(CgroupExecutorTest, AMemoryHogIsKilledAndReportedAsOutOfMemory) {
  if (!Available()) GTEST_SKIP() << "no writable cgroups on this host";
  // Given a 32 MiB limit and a pipeline that buffers 200 MB, the OOM killer should end it.
  auto s = Spec("oom", {"sh", "-c", "head -c 200000000 /dev/zero | tail -n 1 > /dev/null"});
  s.memory_mib = 32;
  ASSERT_TRUE(exec_->Start(s).ok());
  TaskEvent e = WaitExit("oom");
  EXPECT_EQ(e.reason, "OutOfMemoryError: Container killed due to memory usage");
  EXPECT_NE(e.exit_code, 0);
  EXPECT_GT(e.peak_memory_bytes, 16 << 20);
  EXPECT_LE(e.peak_memory_bytes, 33 << 20);
}

TEST_F(CgroupExecutorTest, AReusedGroupHasTheNewLimitsAndCountsOnlyItsOwnAttempt) {
  if (!Available()) GTEST_SKIP() << "no writable cgroups on this host";
  // Given two attempts one after the other, the second reuses the first's group
  // (the same cgroup path), with its own memory limit, and its CPU time is its own.
  const std::string show =
      "cg=$(grep -E '^[0-9]+:memory:' /proc/self/cgroup | cut -d: -f3); "
      "if [ -n \"$cg\" ]; then cat /sys/fs/cgroup/memory$cg/memory.limit_in_bytes; "
      "else cg=$(grep '^0::' /proc/self/cgroup | cut -d: -f3); cat /sys/fs/cgroup$cg/memory.max; fi; "
      "echo $cg";
  auto burn = Spec("burn", {"sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; " + show});
  burn.memory_mib = 64;
  ASSERT_TRUE(exec_->Start(burn).ok());
  TaskEvent first = WaitExit("burn");
  auto idle = Spec("idle", {"sh", "-c", show});
  idle.memory_mib = 32;
  ASSERT_TRUE(exec_->Start(idle).ok());
  TaskEvent second = WaitExit("idle");
  std::vector<std::string> a = Lines("burn"), b = Lines("idle");
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(a[0], "67108864");
  EXPECT_EQ(b[0], "33554432");
  EXPECT_EQ(a[1], b[1]) << "the second attempt did not reuse the first's group";
  EXPECT_GT(first.cpu_time_ns, 0);
  EXPECT_GE(second.cpu_time_ns, 0);
  EXPECT_LT(second.cpu_time_ns * 5, first.cpu_time_ns) << "the second counts the first's CPU";
}

TEST_F(CgroupExecutorTest, AnAttemptIsInEveryHierarchyOfItsGroup) {
  if (!Available()) GTEST_SKIP() << "no writable cgroups on this host";
  // Given attempts one after the other (each born in its group's v2 directory
  // and joining the v1 ones, on this hybrid host), each process should be in
  // the same group in the memory, cpu, pids and unified hierarchies (pure v2:
  // the one).
  for (const std::string id : {"where1", "where2", "where3"}) {
    auto s = Spec(id, {"sh", "-c", "grep -E '^[0-9]+:(memory|cpu|pids):|^0::' /proc/self/cgroup"});
    ASSERT_TRUE(exec_->Start(s).ok());
    EXPECT_EQ(WaitExit(id).exit_code, 0);
    std::vector<std::string> lines = Lines(id);
    ASSERT_FALSE(lines.empty());
    std::string group;
    for (const auto& line : lines) {
      std::string path = line.substr(line.rfind(':') + 1);
      std::string last = path.substr(path.rfind('/') + 1);
      EXPECT_EQ(last.substr(0, 1), "p") << line << ": not in an attempt's group";
      if (group.empty()) group = last;
      EXPECT_EQ(last, group) << line;
    }
  }
}

TEST_F(CgroupExecutorTest, AGroupWhoseProcessesWereKilledRunsTheNextAttempt) {
  if (!Available()) GTEST_SKIP() << "no writable cgroups on this host";
  // Given an attempt that leaves a process behind (killed with its group's
  // cgroup.kill when the main process ends), the next attempt in the same group
  // should run: Linux kills a process born (clone3) in a group killed before.
  const std::string where = "grep '^0::' /proc/self/cgroup";
  auto leaver = Spec("leaver", {"sh", "-c", where + "; setsid sleep 300 & echo left"});
  ASSERT_TRUE(exec_->Start(leaver).ok());
  EXPECT_EQ(WaitExit("leaver").exit_code, 0);
  std::vector<std::string> first = Lines("leaver");
  ASSERT_EQ(first.size(), 2u);
  usleep(200000);  // the group is free again once its killed process has gone
  for (const std::string id : {"next1", "next2"}) {
    ASSERT_TRUE(exec_->Start(Spec(id, {"sh", "-c", where + "; sleep 0.01 & wait; echo ran"})).ok());
    TaskEvent e = WaitExit(id);
    EXPECT_EQ(e.exit_code, 0) << e.reason;
    EXPECT_EQ(Lines(id), (std::vector<std::string>{first[0], "ran"})) << "not the same group, or not run";
  }
}

TEST_F(CgroupExecutorTest, AJobGetsOnlyItsStandardDescriptors) {
  if (!Available()) GTEST_SKIP() << "no writable cgroups on this host";
  // Given a supervisor holding descriptors for its pooled groups, its output
  // pipes and its connections, a job should see stdin, stdout and stderr only
  // (and the descriptor `ls` opens to read the directory).
  for (const std::string id : {"fds1", "fds2"}) {
    ASSERT_TRUE(exec_->Start(Spec(id, {"ls", "/proc/self/fd"})).ok());
    EXPECT_EQ(WaitExit(id).exit_code, 0);
    EXPECT_EQ(Lines(id), (std::vector<std::string>{"0", "1", "2", "3"}));
  }
}

TEST_F(CgroupExecutorTest, DaemonizedChildrenDieWithTheAttempt) {
  if (!Available()) GTEST_SKIP() << "no writable cgroups on this host";
  // Given a job that leaves a setsid'd daemon behind (out of its process group),
  // the attempt's end should still kill it: the cgroup has it.
  auto pidfile = (root_ / "daemon.pid").string();
  auto s = Spec("daemon", {"sh", "-c", "setsid sleep 300 & echo $! > " + pidfile + "; sleep 0.2"});
  ASSERT_TRUE(exec_->Start(s).ok());
  TaskEvent e = WaitExit("daemon");
  EXPECT_EQ(e.exit_code, 0);
  EXPECT_GE(e.cpu_time_ns, 0);
  std::ifstream in(pidfile);
  pid_t daemon = 0;
  in >> daemon;
  ASSERT_GT(daemon, 0);
  bool alive = true;
  for (int i = 0; i < 100 && alive; ++i) {
    std::ifstream stat("/proc/" + std::to_string(daemon) + "/stat");
    std::string line;
    alive = std::getline(stat, line) && line[line.rfind(')') + 2] != 'Z';
    if (alive) usleep(10000);
  }
  EXPECT_FALSE(alive) << "daemon " << daemon << " survived its attempt";
}

}  // namespace

// The supervisor's loop reports a lone attempt's start and exit at once, and
// lets the events of several gather (exec/supervisor.h, GatherMicros).
TEST(SupervisorGatherTest, OnlySeveralAttemptsLetEventsGather) {
  EXPECT_EQ(GatherMicros(0, 3), 0);   // nothing running: (a server's message)
  EXPECT_EQ(GatherMicros(1, 2), 0);   // one attempt: its events go out at once
  EXPECT_EQ(GatherMicros(16, 0), 0);  // a turn that only timed out
  EXPECT_EQ(GatherMicros(2, 1), kGatherMicros);
  EXPECT_EQ(GatherMicros(16, 5), kGatherMicros);
}

TEST(SupervisorRemoverTest, IsWokenByTheFirstDirectoryAndByAFullBatchOnly) {
  EXPECT_TRUE(WakeRemover(1));  // it sleeps until something is queued
  for (size_t n = 2; n < kRemoverBatch; ++n) EXPECT_FALSE(WakeRemover(n)) << n;
  EXPECT_TRUE(WakeRemover(kRemoverBatch));
  EXPECT_FALSE(WakeRemover(kRemoverBatch + 1));  // (awake: it takes the whole queue)
}

}  // namespace drover::exec
