#include "exec/spawn.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sys/stat.h>

#include <cerrno>
#include <memory>
#include <string>

namespace drover::exec {
namespace {

constexpr size_t kStack = 64 << 10;

struct Shared {
  int seen = 0;          // written by the child, in the parent's memory
  int high = -1;         // a descriptor at or above `keep`
  int low = -1;          // one below it
  int keep = 0;
  int high_in_child = -2, low_in_child = -2;  // F_GETFD in the child after unsharing
};

int SetSeen(void* arg) {
  static_cast<Shared*>(arg)->seen = 42;
  return 7;
}

TEST(SpawnTest, Clone3RunsTheFunctionInAChildOnItsOwnStack) {
  // Given a child sharing this memory (CLONE_VM | CLONE_VFORK), its write should
  // be seen here and its function's result be its exit status.
  auto stack = std::make_unique<char[]>(kStack);
  Shared s;
  clone_args ca{};
  ca.flags = CLONE_VM | CLONE_VFORK;
  ca.exit_signal = SIGCHLD;
  ca.stack = reinterpret_cast<uint64_t>(stack.get());
  ca.stack_size = kStack;
  pid_t pid = Clone3(&ca, SetSeen, &s);
#if defined(__x86_64__)
  ASSERT_GT(pid, 0) << "clone3: " << -pid;
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 7);
  EXPECT_EQ(s.seen, 42);
#else
  EXPECT_EQ(pid, -ENOSYS);
#endif
}

int Unshare(void* arg) {
  Shared& s = *static_cast<Shared*>(arg);
  if (UnshareDescriptorsFrom(s.keep) != 0) _exit(1);
  s.high_in_child = fcntl(s.high, F_GETFD);
  s.low_in_child = fcntl(s.low, F_GETFD);
  close(s.low);  // the child's own copy: the parent's stays open
  _exit(0);
}

TEST(SpawnTest, AChildOnTheSharedTableKeepsOnlyTheLowDescriptors) {
  if (!CanUnshareDescriptors()) GTEST_SKIP() << "close_range(CLOSE_RANGE_UNSHARE) needs Linux 5.9";
  // Given a child started on this process's descriptor table (CLONE_FILES),
  // after UnshareDescriptorsFrom(keep) it should have the descriptors below
  // `keep` and none above, and what it closes then stays open here.
  Shared s;
  s.low = open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(s.low, 0);
  s.high = fcntl(s.low, F_DUPFD_CLOEXEC, 1000);
  ASSERT_GE(s.high, 1000);
  s.keep = s.low + 1;
  auto stack = std::make_unique<char[]>(kStack);
  pid_t pid = clone(Unshare, stack.get() + kStack, CLONE_VM | CLONE_VFORK | CLONE_FILES | SIGCHLD, &s);
  ASSERT_GT(pid, 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(s.high_in_child, -1) << "the child kept a descriptor at or above `keep`";
  EXPECT_GE(s.low_in_child, 0) << "the child lost a descriptor below `keep`";
  EXPECT_GE(fcntl(s.low, F_GETFD), 0) << "the child's close reached this process's table";
  EXPECT_GE(fcntl(s.high, F_GETFD), 0);
  close(s.low);
  close(s.high);
}

// A cgroup v2 directory this test may make groups under ("" when none: not
// root, or no v2 hierarchy).
std::string V2Root() {
  if (geteuid() != 0) return "";
  if (access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0) return "/sys/fs/cgroup";
  if (access("/sys/fs/cgroup/unified/cgroup.procs", F_OK) == 0) return "/sys/fs/cgroup/unified";
  return "";
}

bool WriteTo(const std::string& path, const std::string& text) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  bool ok = fd >= 0 && write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  if (fd >= 0) close(fd);
  return ok;
}

TEST(SpawnTest, AProcessIsBornOnlyInAGroupWhoseKillCountMatchesItsCreatorsOwn) {
  std::string root = V2Root();
  if (root.empty()) GTEST_SKIP() << "needs root and a cgroup v2 hierarchy";
  const std::string base = root + "/drover-spawn-test-" + std::to_string(getpid());
  const std::string fresh = base + "-fresh", killed = base + "-killed", home = base + "-home";
  for (const auto& d : {fresh, killed, home}) ASSERT_EQ(mkdir(d.c_str(), 0755), 0) << d;
  auto dir = [](const std::string& d) { return open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); };
  int fresh_fd = dir(fresh), killed_fd = dir(killed);
  // Given a group never killed, a process is born there; in one killed once, not.
  EXPECT_TRUE(CanBeBornIn(fresh_fd));
  ASSERT_TRUE(WriteTo(killed + "/cgroup.kill", "1"));
  EXPECT_FALSE(CanBeBornIn(killed_fd));
  // Given a creator that runs in a group killed before (its own count is 1), a
  // process is not born in a group never killed (count 0).
  ASSERT_TRUE(WriteTo(home + "/cgroup.kill", "1"));
  pid_t helper = fork();
  if (helper == 0) {
    if (!WriteTo(home + "/cgroup.procs", std::to_string(getpid()))) _exit(2);
    _exit(CanBeBornIn(fresh_fd) ? 1 : 0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(helper, &status, 0), helper);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "status " << status << ": a process was born in a group whose count differs from its creator's";
  close(fresh_fd);
  close(killed_fd);
  for (const auto& d : {fresh, killed, home}) {
    for (int i = 0; i < 100 && rmdir(d.c_str()) != 0; ++i) usleep(10000);
  }
}

}  // namespace
TEST(SpawnTest, ARawSystemCallReturnsMinusErrnoAndLeavesErrnoAlone) {
  errno = 1234;
  EXPECT_EQ(RawSyscall(SYS_close, -1), -EBADF);
  EXPECT_EQ(RawSyscall(SYS_getpid), static_cast<long>(::getpid()));
  EXPECT_EQ(errno, 1234);
}

}  // namespace drover::exec
