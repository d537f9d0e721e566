// Cgroups: one control group per job attempt, for limits, accounting and
// killing the whole process tree, on whichever layout the host has:
//
//   kV2      pure cgroup v2 (production hosts): memory.max, cpu.weight/cpu.max,
//            pids.max, memory.peak, memory.events oom_kill, cgroup.kill.
//   kHybrid  v1 controllers (memory, cpu, pids) for limits and accounting,
//            plus the v2 "unified" hierarchy when it is there (this project's
//            machines): cgroup.kill, and CPU time from its cpu.stat (without
//            it, v1 cpuacct and the freezer serve instead).
//   kNone    nothing writable: attempts run with setsid + rlimits only, and
//            limits are best effort.
//
// Layout is detected once at start from the cgroupfs root (injectable, so the
// v2 code path is tested against a directory of plain files).
//
// Thread-safety: a Cgroups object is immutable after Detect(); its methods may
// be called from any thread for different groups.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace drover::exec {

struct CgroupLimits {
  int64_t memory_bytes = 0;  // 0: none
  double vcpus = 0;          // CPU weight: 1,024 shares per vCPU (as ECS on EC2)
  bool hard_cpu = false;     // also a hard quota of `vcpus` (as Fargate)
  int64_t pids_max = 0;      // 0: none
  bool operator==(const CgroupLimits&) const = default;
};

struct CgroupUsage {
  int64_t peak_memory_bytes = -1;  // -1: unknown
  int64_t cpu_time_ns = -1;     // since the group was made (a reused group: subtract)
  int64_t oom_kills = -1;       // likewise
  bool oom_killed = false;      // oom_kills > 0
};

// One attempt's group: the directories it spans (one per v1 hierarchy, or one).
struct CgroupGroup {
  std::string name;
  std::vector<std::string> dirs;  // every directory created for the attempt
  std::string kill_dir;           // where cgroup.kill lives ("" when there is none)
  std::string memory_dir, cpuacct_dir, freezer_dir;
  bool v2 = false;
  // CPU time from cpuacct_dir's cgroup v2 cpu.stat (pure v2, and hybrid hosts'
  // unified hierarchy), else from v1 cpuacct.usage.
  bool cpu_stat_v2 = false;
};

// The counter files of a group read at the end of attempt after attempt (the
// supervisor's pool), held open: each read is a pread, without a path walk.
class CgroupCounters {
 public:
  // min_fd: as OpenHigh's.
  explicit CgroupCounters(const CgroupGroup& g, int min_fd = 0);
  ~CgroupCounters();
  CgroupCounters(const CgroupCounters&) = delete;
  CgroupCounters& operator=(const CgroupCounters&) = delete;
  CgroupUsage Read() const;  // as Cgroups::Usage()
  bool Populated() const;    // as Cgroups::Populated()
  // Restarts the memory peak for the next attempt: v1 resets
  // memory.max_usage_in_bytes, v2 writes memory.peak, whose reset holds for the
  // file descriptor Read() uses (kernels >= 6.12). False when it cannot be
  // reset: the group is not to be reused.
  bool ResetPeak();

 private:
  bool v2_ = false;
  bool cpu_stat_v2_ = false;
  bool empty_ = true;  // no cgroup at all
  int peak_ = -1, cpu_ = -1, oom_ = -1, procs_ = -1;
};

// Opens `path` (O_CLOEXEC added) and moves the descriptor to `min_fd` or above
// when the descriptor limit allows (else it stays where open() put it): -1 on failure.
int OpenHigh(const std::string& path, int flags, int min_fd);

class Cgroups {
 public:
  enum class Mode { kNone, kHybrid, kV2 };

  // Detects the layout under `root` and prepares the parent group `parent`
  // (e.g. "drover") in each hierarchy. Never fails: kNone when unusable.
  static std::unique_ptr<Cgroups> Detect(const std::string& root = "/sys/fs/cgroup",
                                         const std::string& parent = "drover");

  Mode mode() const { return mode_; }
  // One line for the server log: the layout and what it enforces.
  std::string Describe() const;

  // Creates the attempt's group(s) and applies the limits.
  Result<CgroupGroup> Create(const std::string& name, const CgroupLimits& limits) const;
  // Changes an existing group's limits from `from` to `to`, writing only the
  // files whose value differs (a group reused for another attempt: exec/supervisor.h).
  Status Apply(const CgroupGroup& g, const CgroupLimits& from, const CgroupLimits& to) const;

  // The files a process writes its pid into to join the group (the child does,
  // before exec, so everything it starts is inside).
  std::vector<std::string> ProcsFiles(const CgroupGroup& g) const;
  // The group's cgroup v2 directory, where a process can be born instead of
  // joining it (clone3's CLONE_INTO_CGROUP): the group on pure v2, its unified
  // hierarchy's directory on hybrid hosts; "" when it has none.
  static std::string BirthDir(const CgroupGroup& g) { return g.kill_dir; }
  // Kills every process in the group, daemonized ones included.
  static void Kill(const CgroupGroup& g);
  // Peak memory, CPU time and OOM kills. Read before Remove().
  static CgroupUsage Usage(const CgroupGroup& g);
  // True while a process is in the group (one hierarchy read: every process is in all).
  static bool Populated(const CgroupGroup& g);
  // Removes the group's directories; false while a process is still exiting.
  static bool Remove(const CgroupGroup& g);

 private:
  Mode mode_ = Mode::kNone;
  std::string root_, parent_;
  bool has_unified_ = false;  // hybrid: the v2 unified hierarchy is writable
  std::string reason_;        // why kNone
};

}  // namespace drover::exec
