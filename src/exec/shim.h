// The shim: one small process per attempt that outlives the server.
//
// The executor writes the attempt's TaskSpec to <run>/<task>/spec.json and
// starts `drover-shim <run>/<task>` with a pipe on fd 3. The shim starts the
// job (joining its cgroup, dropping to its user), reports "ok <pid> <ms>" or
// "err <message>" on fd 3, then pumps the job's output into its log stream
// with timestamps, waits for it, kills what is left of its tree, and writes
// <run>/<task>/status atomically. If the server stops or crashes meanwhile,
// the job runs on and its output keeps flowing; a restarted server re-attaches
// to the shim (by pid) or collects the status file.
//
// Why a shim per attempt rather than one supervisor per host: it is the
// simplest thing that survives a crash of anything else (containerd's shim
// model), it makes every attempt's state a few files, and it costs one extra
// fork+exec of a small binary per attempt (bench/job_latency measures it).
#pragma once

#include <optional>
#include <string>

#include "common/status.h"
#include "exec/cgroup.h"
#include "exec/executor.h"

namespace drover::exec {

// Files in a task directory.
inline constexpr const char* kSpecFile = "spec.json";
inline constexpr const char* kPidsFile = "pids";      // "<shim pid> <job pid> <started ms>"
inline constexpr const char* kStatusFile = "status";  // JSON, once the job has ended

struct ShimStatus {
  int exit_code = 0;
  int term_signal = 0;  // non-zero: killed by this signal
  int64_t stopped_at_ms = 0;
  CgroupUsage usage;
};

struct ShimPids {
  pid_t shim = 0, job = 0;
  int64_t started_at_ms = 0;
};

Status WriteSpec(const std::string& task_dir, const TaskSpec& spec, const CgroupGroup& group);
std::optional<ShimStatus> ReadStatus(const std::string& task_dir);
std::optional<ShimPids> ReadPids(const std::string& task_dir);

// The shim's main: returns its exit code.
int RunShim(const std::string& task_dir);

}  // namespace drover::exec
