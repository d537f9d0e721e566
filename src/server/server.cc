#include "server/server.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "api/api.h"
#include "exec/executor.h"
#include "logs/logs.h"
#include "common/log.h"
#include "common/thread.h"
#include "service/batch_service.h"
#include "store/store.h"

namespace drover::server {
namespace {

namespace fs = std::filesystem;

// Writes `text` to `path` atomically (temp file + rename) with `mode`.
Status WriteFileAtomic(const fs::path& path, const std::string& text, mode_t mode) {
  fs::path tmp = path;
  tmp += ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return Status::Server("cannot write " + tmp.string() + ": " + strerror(errno));
  ::fchmod(fd, mode);
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    return Status::Server("cannot write " + path.string() + ": " + strerror(errno));
  }
  return Status::Ok();
}

// Holds an exclusive flock on DIR/LOCK for the life of the process, so a
// second server on the same data directory fails fast instead of corrupting it.
Result<int> LockDataDir(const fs::path& dir) {
  fs::path lock = dir / "LOCK";
  int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Server("cannot open " + lock.string() + ": " + strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {0};
    ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    std::string pid = n > 0 ? std::string(buf, n) : "unknown";
    while (!pid.empty() && std::isspace(static_cast<unsigned char>(pid.back()))) pid.pop_back();
    ::close(fd);
    return Status::Client("another drover server (pid " + pid + ") is already using data dir " +
                          dir.string());
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    LOG_WARN("cannot record pid in {}", lock.string());
  }
  return fd;
}

Status SetUpCredentials(const ServerOptions& opts, const fs::path& dir,
                        service::BatchService& svc) {
  if (!opts.credentials_file.empty()) {
    std::ifstream in(opts.credentials_file);
    if (!in) return Status::Client("cannot read --credentials " + opts.credentials_file);
    std::stringstream ss;
    ss << in.rdbuf();
    DROVER_ASSIGN_OR_RETURN(auto entries, ParseCredentials(ss.str()));
    if (entries.empty()) {
      return Status::Client("--credentials " + opts.credentials_file + " holds no access key");
    }
    for (const auto& e : entries) {
      DROVER_RETURN_IF_ERROR(svc.ImportAccessKey({e.access_key_id, e.secret_access_key}));
      LOG_INFO("imported access key {} (profile [{}])", e.access_key_id, e.profile);
    }
  }
  if (svc.AccessKeyCount() > 0) return Status::Ok();
  DROVER_ASSIGN_OR_RETURN(service::AccessKey key, svc.CreateAccessKey());
  DROVER_RETURN_IF_ERROR(
      WriteFileAtomic(dir / "credentials", RenderCredentials(key.id, key.secret), 0600));
  DROVER_RETURN_IF_ERROR(
      WriteFileAtomic(dir / "config", "[default]\nregion = " + opts.region + "\n", 0600));
  LOG_INFO("created admin access key {} in {}", key.id, (dir / "credentials").string());
  return Status::Ok();
}

// Attempts never run as root: when the server is root they run as `name`,
// created as a system user when missing.
Status ResolveJobUser(const std::string& name, service::ServiceConfig& cfg) {
  if (::geteuid() != 0 || name.empty()) return Status::Ok();
  struct passwd* pw = ::getpwnam(name.c_str());
  if (!pw) {
    std::string cmd = "useradd --system --no-create-home --home-dir /nonexistent "
                      "--shell /usr/sbin/nologin " + name + " >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0 || !(pw = ::getpwnam(name.c_str()))) {
      return Status::Server("cannot create the job user '" + name +
                            "' (useradd failed); create it or pass --job-user");
    }
    LOG_INFO("created system user {} to run jobs", name);
  }
  cfg.job_uid = pw->pw_uid;
  cfg.job_gid = pw->pw_gid;
  return Status::Ok();
}

// Can an attempt's user reach its scratch directories? Every directory above
// them must let others through (o+x); a data dir under /root does not.
Status CheckScratchReachable(const service::ServiceConfig& cfg, uid_t uid) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setgid(cfg.job_gid.value_or(65534)) != 0 ||
        ::setuid(uid) != 0) {
      ::_exit(2);
    }
    ::_exit(::access(cfg.scratch_root.c_str(), X_OK) == 0 ? 0 : 1);
  }
  int status = 0;
  if (pid < 0 || ::waitpid(pid, &status, 0) != pid) return Status::Server("fork failed");
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Status::Ok();
  return Status::Client("jobs run as an unprivileged user, which cannot reach " +
                        cfg.scratch_root + ": every directory above it needs o+x (for example "
                        "chmod o+x on the parents of the data dir), or choose another --data");
}

// drover-supervisor lives next to the drover binary.
std::string SupervisorPath() {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return (ec ? fs::path("drover-supervisor") : self.parent_path() / "drover-supervisor").string();
}

}  // namespace

Result<std::unique_ptr<store::Store>> OpenStore(const std::string& store_url,
                                                const std::string& data_dir) {
  if (store_url.empty()) {
    return store::OpenSqliteStore((fs::path(data_dir) / "state.db").string());
  }
  if (store_url.starts_with("postgres://") || store_url.starts_with("postgresql://")) {
    LOG_INFO("store: PostgreSQL");
    return store::OpenPostgresStore(store_url);
  }
  return Status::Client("--store: expected a postgres:// or postgresql:// URL (or nothing, "
                        "for the SQLite file in the data dir)");
}

int RunServer(const ServerOptions& opts) {
  // Signals are taken by a dedicated thread (sigwait), so they are blocked
  // before any thread starts: threads inherit the mask (the store's writer is
  // the first), and a signal delivered to one of them would kill the process.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  if (Status s = InitLogging(opts.log_level); !s.ok()) {
    std::fprintf(stderr, "drover: %s\n", s.message().c_str());
    return 2;
  }
  auto fail = [](const Status& s) {
    LOG_ERROR("{}", s.message());
    return s.code() == Code::kClient ? 2 : 1;
  };
  auto listen = ParseListen(opts.listen);
  if (!listen.ok()) return fail(listen.status());

  std::error_code ec;
  fs::path dir = fs::absolute(opts.data_dir, ec);
  fs::create_directories(dir, ec);
  if (ec) return fail(Status::Server("cannot create data dir " + dir.string() + ": " + ec.message()));
  // State, logs and credentials are the server's alone. Jobs may pass through
  // the data dir (0711: no listing) to reach their own scratch directory only.
  ::umask(077);
  ::chmod(dir.c_str(), 0711);
  fs::create_directories(dir / "scratch", ec);
  ::chmod((dir / "scratch").c_str(), 0711);
  // With SQLite the data dir is one server's alone. With PostgreSQL several
  // servers may share it (on one host, or on a shared filesystem): job files,
  // logs and images live there, so whichever server leads can re-attach to the
  // attempts another one started, and every server can serve their logs.
  const bool shared = !opts.store.empty();
  if (!shared) {
    auto lock = LockDataDir(dir);
    if (!lock.ok()) return fail(lock.status());
  }

  auto store = OpenStore(opts.store, dir.string());
  if (!store.ok()) return fail(store.status());
  SystemClock clock;
  RandomIds ids;
  service::ServiceConfig cfg;
  cfg.region = opts.region;
  cfg.account_id = opts.account_id;
  cfg.host_capacity.vcpus = std::max(1u, std::thread::hardware_concurrency());
  cfg.host_capacity.memory_mib =
      static_cast<int64_t>(::sysconf(_SC_PHYS_PAGES)) * ::sysconf(_SC_PAGE_SIZE) / (1 << 20);
  cfg.log_root = (dir / "logs").string();
  cfg.image_root = (dir / "images").string();
  cfg.scratch_root = opts.scratch_dir.empty() ? (dir / "scratch").string() : opts.scratch_dir;
  if (!opts.scratch_dir.empty()) {
    fs::create_directories(opts.scratch_dir, ec);
    ::chmod(opts.scratch_dir.c_str(), 0711);
  }
  cfg.log_cap_bytes = static_cast<uint64_t>(opts.job_log_cap_mib) << 20;
  cfg.job_retention_ms = opts.job_retention_hours * 3600 * 1000;
  if (opts.min_time_seconds > 0) {
    cfg.min_attempt_seconds = std::min(cfg.min_attempt_seconds, opts.min_time_seconds);
    cfg.min_time_limit_seconds = std::min(cfg.min_time_limit_seconds, opts.min_time_seconds);
  }
  if (!opts.gpu_ids.empty()) {
    std::stringstream ss(opts.gpu_ids);
    std::string id;
    while (std::getline(ss, id, ',')) {
      if (!id.empty()) cfg.gpu_ids.push_back(id);
    }
  } else {
    for (int i = 0; i < 64; ++i) {
      if (fs::exists("/dev/nvidia" + std::to_string(i), ec)) cfg.gpu_ids.push_back(std::to_string(i));
    }
  }
  cfg.host_capacity.gpus = static_cast<int64_t>(cfg.gpu_ids.size());
  char hostname[256] = "localhost";
  ::gethostname(hostname, sizeof hostname - 1);
  cfg.host_name = hostname;
  if (Status s = ResolveJobUser(opts.job_user, cfg); !s.ok()) return fail(s);
  if (cfg.job_uid) {
    cfg.job_uid_base = opts.job_uid_base;
    cfg.job_uid_count = opts.job_uid_count;
    uid_t probe = cfg.job_uid_count > 0 ? cfg.job_uid_base : *cfg.job_uid;
    Status reachable = CheckScratchReachable(cfg, probe);
    if (!reachable.ok() && opts.scratch_dir.empty()) {
      // The data dir sits where others may not pass (e.g. under /root): give
      // the jobs scratch space elsewhere rather than fail every one of them.
      std::string fallback = "/var/tmp/drover-scratch/" +
                             std::to_string(std::hash<std::string>{}(dir.string()) % 1000000007);
      fs::create_directories(fallback, ec);
      ::chmod("/var/tmp/drover-scratch", 0711);
      ::chmod(fallback.c_str(), 0711);
      LOG_WARN("{}; using {} for job scratch directories instead", reachable.message(), fallback);
      cfg.scratch_root = fallback;
      reachable = CheckScratchReachable(cfg, probe);
    }
    if (!reachable.ok()) return fail(reachable);
  }
  cfg.max_pending_writes = opts.max_pending_writes;
  cfg.shared_store = shared;
  cfg.seq_nonce = static_cast<uint16_t>(std::stoul(ids.Token(4, "0123456789abcdef"), nullptr, 16));
  service::BatchService svc(cfg, **store, clock, ids);
  if (Status s = svc.Load(); !s.ok()) return fail(s);
  if (shared) svc.SetLeading(false);  // until the lease says otherwise
  if (Status s = SetUpCredentials(opts, dir, svc); !s.ok()) return fail(s);

  logs::LogStore log_store(cfg.log_root);
  logs::LogsService logs_svc(log_store, opts.region, opts.account_id);
  api::ApiOptions api_opts;
  api_opts.region = opts.region;
  api_opts.max_connections = opts.max_connections;
  api::ApiServer api(api_opts, svc, &logs_svc, clock, ids);
  auto port = api.Listen(listen->first, listen->second);
  if (!port.ok()) return fail(port.status());
  std::string host = listen->first;
  if (host == "0.0.0.0" || host.empty()) host = "127.0.0.1";
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  std::string endpoint = "http://" + host + ":" + std::to_string(*port);
  if (Status s = WriteFileAtomic(dir / "endpoint", endpoint + "\n", 0644); !s.ok()) return fail(s);

  LOG_INFO("drover serving the AWS Batch API at {} (data: {})", endpoint, dir.string());
  LOG_INFO("try: AWS_SHARED_CREDENTIALS_FILE={0}/credentials AWS_CONFIG_FILE={0}/config "
           "aws batch describe-job-queues --endpoint-url {1}",
           dir.string(), endpoint);

  exec::LocalOptions exec_opts;
  exec_opts.kill_grace_ms = opts.kill_grace_seconds * 1000;
  exec_opts.pids_max = opts.job_pids_max;
  exec_opts.run_dir = (dir / "run").string();
  exec_opts.supervisor_path = SupervisorPath();
  if (!fs::exists(exec_opts.supervisor_path, ec)) {
    return fail(Status::Server("drover-supervisor not found at " + exec_opts.supervisor_path +
                               " (it is built next to drover)"));
  }
  // The leader runs the scheduler and the jobs: with SQLite, this server from
  // the start; with PostgreSQL, whichever server holds the store's lease.
  std::unique_ptr<exec::Executor> executor;
  auto lead = [&]() -> Status {
    // (A write that failed while the store was away left the view ahead of it.)
    DROVER_RETURN_IF_ERROR(svc.ReloadIfStale());
    if (shared) {
      // The view is current: this server's own writes are in it, and the
      // others' arrive through ApplyChanges (a reload here could drop writes of
      // this server still on their way to the store).
      svc.SetLeading(true);
      LOG_INFO("this server holds the scheduler lease: it schedules and runs jobs");
    }
    executor = exec::MakeLocalExecutor(exec_opts, clock,
                                       [&svc](const exec::TaskEvent& e) { svc.OnTaskEvent(e); });
    svc.SetExecutor(executor.get());
    DROVER_RETURN_IF_ERROR(svc.RecoverJobs());
    svc.StartScheduler();
    LOG_INFO("jobs run on this host: {} vCPU, {} MiB, {} GPU{}", cfg.host_capacity.vcpus,
             cfg.host_capacity.memory_mib, cfg.host_capacity.gpus,
             cfg.job_uid ? (cfg.job_uid_count ? " under per-attempt uids (group of " + opts.job_user + ")"
                                               : " as user " + opts.job_user)
                         : std::string());
    LOG_INFO("job containment: {}", executor->Describe());
    return Status::Ok();
  };
  // With SQLite, or when the lease is free at start, lead before serving.
  bool leading = !shared;
  if (shared) {
    auto held = (*store)->TryLead();
    leading = held.ok() && *held;
  }
  if (leading) {
    if (Status s = lead(); !s.ok()) return fail(s);
  }
  // A leader that loses the lease steps down: no more passes or starts, its
  // connection to the supervisor closed (the attempts run on, their exits kept
  // there until a leader hears them), and it follows until it holds the lease
  // again (PostgreSQL back after an outage) or another server leads.
  auto follow = [&] {
    svc.StopScheduler();
    if (executor) {
      executor->Shutdown();
      svc.SetExecutor(nullptr);
      executor.reset();
    }
    svc.SetLeading(false);
  };
  // Several servers: every server applies what the others store (every
  // kPoll), and tries for the lease until it has it. A leader that loses the
  // lease (its database session broke) steps down at once, so that two servers
  // never schedule together; the next leader re-attaches to its attempts.
  std::mutex cluster_mu;
  std::condition_variable cluster_cv;
  bool cluster_stop = false;
  std::thread cluster;
  if (shared) {
    if (!leading) LOG_INFO("store shared with other servers: following until this one holds the lease");
    cluster = std::thread([&, leading]() mutable {
      SetThreadName("drover-cluster");
      constexpr auto kPoll = std::chrono::milliseconds(100);
      auto next_try = std::chrono::steady_clock::now();
      for (;;) {
        {
          std::unique_lock<std::mutex> l(cluster_mu);
          if (cluster_cv.wait_for(l, kPoll, [&] { return cluster_stop; })) return;
        }
        if (auto changes = (*store)->PollChanges(); changes.ok()) {
          svc.ApplyChanges(*changes);
        } else {
          LOG_WARN("cannot read other servers' changes: {}", changes.status().message());
        }
        if (std::chrono::steady_clock::now() < next_try) continue;
        next_try = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
        auto held = (*store)->TryLead();
        bool now_leading = held.ok() && *held;
        if (leading && !now_leading) {
          LOG_ERROR("lost the scheduler lease ({}); following until this server holds it again "
                    "(the attempts run on)",
                    held.ok() ? "the lease connection broke" : held.status().message());
          follow();
          leading = false;
          continue;
        }
        if (!leading && now_leading) {
          if (Status s = lead(); !s.ok()) {
            LOG_ERROR("cannot take over as the leader: {}", s.message());
            std::_Exit(3);
          }
          leading = true;
        }
      }
    });
  }

  std::thread signals([&] {
    SetThreadName("drover-signals");
    int sig = 0;
    sigwait(&sigs, &sig);
    LOG_INFO("received {}, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    api.Stop();
  });
  int threads = opts.threads > 0 ? opts.threads
                                 : std::max(1u, std::thread::hardware_concurrency());
  api.Run(threads);
  signals.join();
  if (cluster.joinable()) {
    {
      std::lock_guard<std::mutex> l(cluster_mu);
      cluster_stop = true;
    }
    cluster_cv.notify_all();
    cluster.join();
  }
  svc.StopScheduler();
  if (executor) {
    executor->Shutdown();  // attempts run on under the supervisor; the next server re-attaches
    svc.SetExecutor(nullptr);
  }
  fs::remove(dir / "endpoint", ec);
  LOG_INFO("stopped");
  return 0;
}

}  // namespace drover::server
