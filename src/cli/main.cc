// `drover`: one binary, subcommands declared in one table (as ninja's kTools).
#include <CLI/CLI.hpp>

#include <functional>

#include "cli/commands.h"
#include "server/server.h"

namespace {

struct Subcommand {
  const char* name;
  const char* help;
  // Declares the subcommand's flags and returns what runs it.
  std::function<std::function<int()>(CLI::App&)> setup;
};

drover::cli::Runner SetUpServer(CLI::App& app) {
  auto opts = std::make_shared<drover::server::ServerOptions>();
  app.add_option("--listen", opts->listen, "HOST:PORT to serve on (port 0: any free port)")
      ->capture_default_str();
  app.add_option("--data", opts->data_dir, "data directory (state, logs, credentials)")
      ->capture_default_str();
  app.add_option("--store", opts->store,
                 "where the state lives: a postgres:// or postgresql:// URL (PostgreSQL), "
                 "default the SQLite file <data>/state.db");
  app.add_option("--region", opts->region, "AWS region named in ARNs and signatures")
      ->capture_default_str();
  app.add_option("--account-id", opts->account_id, "AWS account id named in ARNs")
      ->capture_default_str();
  app.add_option("--log-level", opts->log_level, "trace|debug|info|warn|error|off")
      ->capture_default_str();
  app.add_option("--credentials", opts->credentials_file,
                 "import access keys from an AWS shared credentials file");
  app.add_option("--max-connections", opts->max_connections,
                 "connections served at once; more are answered 429 and closed")
      ->check(CLI::PositiveNumber);
  app.add_option("--max-pending-writes", opts->max_pending_writes,
                 "writes waiting for the store before more are answered 429")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--threads", opts->threads, "API threads (0: one per core)")
      ->capture_default_str();
  app.add_option("--job-user", opts->job_user,
                 "user that runs jobs when the server is root (\"\": the server's user)")
      ->capture_default_str();
  app.add_option("--job-uid-base", opts->job_uid_base,
                 "attempts run each under its own uid from this base (with --job-uid-count)")
      ->capture_default_str();
  app.add_option("--job-uid-count", opts->job_uid_count,
                 "size of the per-attempt uid range (0: every attempt as --job-user)")
      ->capture_default_str();
  app.add_option("--gpu-ids", opts->gpu_ids,
                 "GPU ids this host offers, e.g. 0,1 (default: /dev/nvidia<N> devices)");
  app.add_option("--scratch", opts->scratch_dir,
                 "where attempts get scratch directories (default: <data>/scratch)");
  app.add_option("--job-pids-max", opts->job_pids_max,
                 "processes per job attempt (cgroup pids.max; 0: no limit)")
      ->capture_default_str();
  app.add_option("--kill-grace-seconds", opts->kill_grace_seconds,
                 "TerminateJob: seconds between SIGTERM and SIGKILL")
      ->capture_default_str();
  app.add_option("--job-log-cap-mib", opts->job_log_cap_mib, "output kept per job attempt")
      ->capture_default_str();
  app.add_option("--job-retention-hours", opts->job_retention_hours,
                 "finished jobs and their logs are kept this long")
      ->capture_default_str();
  app.add_option("--min-time-seconds", opts->min_time_seconds,
                 "lower AWS's minimum durations (timeouts 60 s, time-limit actions 600 s) to "
                 "this, for tests; 0 keeps AWS's");
  return [opts] { return drover::server::RunServer(*opts); };
}

const Subcommand kSubcommands[] = {
    {"server", "serve the AWS Batch API over a durable store", SetUpServer},
    {"quickstart", "create a local environment and queue, run a hello-world job, show its output",
     drover::cli::SetUpQuickstart},
    {"submit", "submit a job: drover submit --queue Q -- CMD ARGS...", drover::cli::SetUpSubmit},
    {"jobs", "list jobs with counts per state (--watch for a live view)", drover::cli::SetUpJobs},
    {"describe", "show one job", drover::cli::SetUpDescribe},
    {"logs", "print a job's output (-f to follow it)", drover::cli::SetUpLogs},
    {"cancel", "cancel or terminate jobs, by ID or a whole queue", drover::cli::SetUpCancel},
    {"queues", "list job queues", drover::cli::SetUpQueues},
    {"envs", "list compute environments", drover::cli::SetUpEnvs},
    {"image", "manage the local image store: import, ls, rm", drover::cli::SetUpImage},
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Drover: a self-hosted batch computing service with the AWS Batch API"};
  app.require_subcommand(1);
  std::function<int()> run;
  for (const auto& sc : kSubcommands) {
    CLI::App* sub = app.add_subcommand(sc.name, sc.help);
    auto fn = sc.setup(*sub);
    sub->callback([&run, fn] { run = fn; });
  }
  CLI11_PARSE(app, argc, argv);
  return run ? run() : 1;
}
