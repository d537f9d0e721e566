// Executor: runs job attempts and reports what happened to them. The service
// decides; the executor only does (and never writes the store).
//
// Thread-safety: implementations are safe for concurrent use. The listener is
// called from the executor's own threads (never while an executor lock is
// held), at most once per event, in order per attempt: kRunning before
// kExited.
//
// The interface speaks of tasks, not of this machine: an attempt may run on
// another host (agents, Slurm) behind the same interface.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace drover::exec {

struct TaskSpec {
  std::string task_id;  // unique per attempt (the taskArn's id)
  std::string job_id;
  int attempt = 1;
  std::vector<std::string> argv;  // argv[0] is looked up in the PATH of `env`
  std::vector<std::string> env;   // "NAME=value": the whole environment
  std::string workdir;            // must exist, unless scratch_workdir
  // `workdir` is the attempt's own scratch directory: the executor makes it
  // (empty, mode 0700, owned by uid/gid) and removes it with everything in it
  // when the attempt ends.
  bool scratch_workdir = false;
  std::optional<uid_t> uid;       // run as this user (and gid) when set
  std::optional<gid_t> gid;
  // Output: stdout and stderr go, line by line with timestamps, to this stream.
  std::string log_root, log_group, log_stream;
  uint64_t log_cap_bytes = 0;           // 0: unlimited
  std::vector<std::string> log_header;  // lines written before the job's output
  // A sandbox over an image's root filesystem (bubblewrap: every namespace, a
  // writable overlay per attempt, /proc, /dev, the scratch dir as /tmp).
  struct Mount {
    std::string source, target;
    bool read_only = false;
    bool device = false;  // a device node (GPUs, linuxParameters.devices)
    int64_t tmpfs_mib = 0;  // > 0: a tmpfs of this size at `target` (no source)
  };
  struct Sandbox {
    std::string rootfs;
    bool read_only_root = false;
    bool network = false;  // false: loopback only
    std::vector<Mount> mounts;
    std::optional<uid_t> uid = std::nullopt;  // the job definition's `user`, inside the sandbox
    std::optional<gid_t> gid = std::nullopt;
  };
  // ulimits (AWS names: nofile, nproc, core, stack, ...): set before the job starts.
  struct Ulimit {
    std::string name;
    int64_t soft = 0, hard = 0;
  };
  std::vector<Ulimit> ulimits;
  std::optional<Sandbox> sandbox;
  // Set by the caller when the attempt cannot start (e.g. its image is missing):
  // Start() fails with it and runs nothing.
  std::string cannot_start;
  // Limits (a cgroup per attempt where the host allows it).
  int64_t memory_mib = 0;  // 0: none
  double vcpus = 0;        // CPU weight, 1,024 shares per vCPU
  bool hard_cpu = false;   // also a hard CPU quota of `vcpus`
};

struct TaskEvent {
  enum class Kind { kRunning, kExited };
  Kind kind;
  std::string task_id, job_id;
  int attempt = 1;
  int64_t at_ms = 0;
  int exit_code = 0;   // kExited: exit status, or 128+N when killed by signal N
  std::string reason;  // kExited: why, when not a plain exit (e.g. terminated, OOM)
  int64_t peak_memory_bytes = -1;  // kExited: -1 when unknown
  int64_t cpu_time_ns = -1;
  // kExited without kRunning: the attempt could not start; `reason` says why,
  // `client_error` when it is the job's own doing (no such command, ...).
  bool start_failed = false;
  bool client_error = false;
};

using Listener = std::function<void(const TaskEvent&)>;

class Executor {
 public:
  virtual ~Executor() = default;
  // Starts an attempt, without waiting for it to run. An error returned here
  // (the executor knew at once that it cannot start) produces no events.
  // Otherwise the listener hears kRunning, later kExited; or, if it turns out
  // the attempt cannot start, only kExited with start_failed.
  virtual Status Start(const TaskSpec& spec) = 0;
  // Asks an attempt to stop: SIGTERM to the whole process group, then SIGKILL
  // after the grace period. `reason` is reported with kExited.
  virtual void Terminate(const std::string& task_id, const std::string& reason) = 0;
  // Re-attaches to an attempt a previous server started (after a restart). Its
  // events follow as for Start(): kRunning if it had started, then kExited when
  // it ends, or at once if it ended while no server watched (with its true exit
  // code and time). An attempt that left no trace gets kExited with exit code
  // -1 and a "Host lost" reason.
  virtual void Attach(const std::string& task_id, const std::string& job_id, int attempt) = 0;
  // The attempt's exit is durable where the caller keeps state: the executor
  // may forget it. Until then it keeps it (across its own restarts), and an
  // Attach() hears it again.
  virtual void Acknowledge(const std::string& task_id) {}
  // Start() for several attempts (a scheduler pass's), in order; the statuses
  // in the same order. The local executor sends them to its supervisor in one
  // message.
  virtual std::vector<Status> StartAll(const std::vector<const TaskSpec*>& specs) {
    std::vector<Status> out;
    for (const TaskSpec* spec : specs) out.push_back(Start(*spec));
    return out;
  }
  // Acknowledge() for several attempts (the exits one commit made durable).
  virtual void AcknowledgeAll(const std::vector<std::string>& task_ids) {
    for (const std::string& t : task_ids) Acknowledge(t);
  }
  // Stops watching. Attempts run on (they outlive the server) and are
  // re-attached by the next one.
  virtual void Shutdown() = 0;
  // How attempts are contained here, for the server log.
  virtual std::string Describe() const = 0;
};

struct LocalOptions {
  int64_t kill_grace_ms = 30000;
  std::string run_dir;          // the supervisor's socket, lock and log
  std::string supervisor_path;  // the drover-supervisor binary
  std::string cgroup_root = "/sys/fs/cgroup";  // "" disables cgroups
  std::string cgroup_parent = "drover";
  int64_t pids_max = 0;  // per attempt; 0: none
};

// Runs attempts as processes on this host, under the host's drover-supervisor
// (exec/supervisor.h), started when none serves `run_dir`.
std::unique_ptr<Executor> MakeLocalExecutor(LocalOptions opts, Clock& clock, Listener listener);

}  // namespace drover::exec
