// `drover server`: wires the store, the service and the API together, owns the
// data directory (lock file, credentials, endpoint file) and runs until
// SIGINT/SIGTERM.
//
// Thread-safety: RunServer() is called once, from main.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "store/store.h"

namespace drover::server {

struct ServerOptions {
  std::string listen = "127.0.0.1:8080";
  std::string data_dir = "./drover-data";
  // Where the state lives: empty means the SQLite file DATA/state.db; a
  // postgres:// or postgresql:// URL, a PostgreSQL database (created tables on
  // first use). Logs, credentials and job files stay in the data dir either way.
  std::string store;
  std::string region = "us-east-1";
  std::string account_id = "123456789012";
  std::string log_level = "info";
  std::string credentials_file;  // keys to import (an AWS shared credentials file)
  int threads = 0;               // 0: one per core
  size_t max_connections = 4096;  // more are answered 429 TooManyRequestsException
  size_t max_pending_writes = 20000;  // back-pressure (ServiceConfig::max_pending_writes)
  // Jobs.
  std::string job_user = "drover-job";  // attempts run as this user when the server is root
  // ... each under its own uid from this range (0: all as job_user's uid).
  uint32_t job_uid_base = 0x70000000;
  uint32_t job_uid_count = 1 << 20;
  // Where attempts get their scratch directories. Default: DIR/scratch, or, when
  // the job user cannot reach it (a data dir under /root), /var/tmp/drover-scratch/...
  std::string scratch_dir;
  // The host's GPUs: ids to hand out (e.g. "0,1"); empty: /dev/nvidia<N> devices.
  std::string gpu_ids;
  int64_t kill_grace_seconds = 30;       // TerminateJob: SIGTERM, then SIGKILL after this
  int64_t job_pids_max = 4096;           // processes per attempt (cgroup pids.max); 0: none
  int64_t job_log_cap_mib = 64;          // output kept per attempt
  int64_t job_retention_hours = 168;     // finished jobs and their logs are kept this long
  // Lowers AWS's minimum durations (attemptDurationSeconds 60, time-limit
  // actions 600) to this many seconds, for tests. 0: AWS's minimums.
  int64_t min_time_seconds = 0;
};

// Runs the server; returns the process exit code.
int RunServer(const ServerOptions& opts);

// An access key read from an AWS shared credentials file.
struct CredentialEntry {
  std::string profile, access_key_id, secret_access_key;
};
// Parses the INI text of an AWS shared credentials file.
Result<std::vector<CredentialEntry>> ParseCredentials(std::string_view text);
// Renders a credentials file with one [default] profile.
std::string RenderCredentials(const std::string& id, const std::string& secret);

// Opens the store `opts.store` names (see ServerOptions::store), in `data_dir`.
Result<std::unique_ptr<store::Store>> OpenStore(const std::string& store_url,
                                                const std::string& data_dir);

// Splits "HOST:PORT" ("[::1]:8080" for IPv6).
Result<std::pair<std::string, int>> ParseListen(std::string_view listen);

}  // namespace drover::server
