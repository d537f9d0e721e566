#include "exec/shim.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/clock.h"
#include "common/json.h"
#include "logs/logs.h"

namespace drover::exec {
namespace {

// Added to errno by the child when chdir() failed, to tell it from exec().
constexpr int kChdirFailed = 1 << 20;

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Task files are written whole (rename) but not fsync'd: they must survive the
// server's crash, which the page cache does; a machine crash ends the jobs too.
Status WriteAtomic(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Server("cannot write " + tmp + ": " + strerror(errno));
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    return Status::Server("cannot write " + path + ": " + strerror(errno));
  }
  return Status::Ok();
}

json::array Strings(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

std::vector<std::string> Strings(const json::object& o, std::string_view key) {
  std::vector<std::string> out;
  if (const auto* a = GetArray(o, key)) {
    for (const auto& v : *a) out.emplace_back(v.as_string());
  }
  return out;
}

// Resolves argv[0] against the PATH of the job's environment (not the shim's).
std::optional<std::string> Resolve(const std::string& cmd, const std::vector<std::string>& env) {
  if (cmd.empty()) return std::nullopt;
  if (cmd.find('/') != std::string::npos) return cmd;
  std::string path = "/usr/local/bin:/usr/bin:/bin";
  for (const auto& e : env) {
    if (e.rfind("PATH=", 0) == 0) path = e.substr(5);
  }
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    if (dir.empty()) dir = ".";
    std::string full = dir + "/" + cmd;
    if (::access(full.c_str(), X_OK) == 0) return full;
    start = end + 1;
  }
  return std::nullopt;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Status WriteSpec(const std::string& task_dir, const TaskSpec& spec, const CgroupGroup& g) {
  json::object o{{"taskId", spec.task_id},
                 {"jobId", spec.job_id},
                 {"attempt", spec.attempt},
                 {"argv", Strings(spec.argv)},
                 {"env", Strings(spec.env)},
                 {"workdir", spec.workdir},
                 {"removeWorkdir", spec.remove_workdir},
                 {"logRoot", spec.log_root},
                 {"logGroup", spec.log_group},
                 {"logStream", spec.log_stream},
                 {"logCapBytes", spec.log_cap_bytes},
                 {"logHeader", Strings(spec.log_header)},
                 {"memoryMiB", spec.memory_mib},
                 {"cgroup", json::object{{"dirs", Strings(g.dirs)},
                                         {"killDir", g.kill_dir},
                                         {"memoryDir", g.memory_dir},
                                         {"cpuacctDir", g.cpuacct_dir},
                                         {"freezerDir", g.freezer_dir},
                                         {"v2", g.v2}}}};
  if (spec.uid) o["uid"] = *spec.uid;
  if (spec.gid) o["gid"] = *spec.gid;
  if (spec.sandbox) {
    json::array mounts;
    for (const auto& m : spec.sandbox->mounts) {
      mounts.push_back(json::object{{"source", m.source}, {"target", m.target},
                                    {"readOnly", m.read_only}, {"device", m.device},
                                    {"tmpfsMiB", m.tmpfs_mib}});
    }
    json::object box{{"rootfs", spec.sandbox->rootfs},
                     {"readOnlyRoot", spec.sandbox->read_only_root},
                     {"network", spec.sandbox->network},
                     {"mounts", std::move(mounts)}};
    if (spec.sandbox->uid) box["uid"] = *spec.sandbox->uid;
    if (spec.sandbox->gid) box["gid"] = *spec.sandbox->gid;
    o["sandbox"] = std::move(box);
  }
  json::array ulimits;
  for (const auto& u : spec.ulimits) {
    ulimits.push_back(json::object{{"name", u.name}, {"soft", u.soft}, {"hard", u.hard}});
  }
  o["ulimits"] = std::move(ulimits);
  return WriteAtomic(task_dir + "/" + kSpecFile, ToJson(o));
}

std::optional<ShimStatus> ReadStatus(const std::string& task_dir) {
  auto v = ParseJson(ReadFile(task_dir + "/" + kStatusFile));
  if (!v.ok() || !v->is_object()) return std::nullopt;
  const json::object& o = v->as_object();
  ShimStatus s;
  s.exit_code = static_cast<int>(GetInt(o, "exitCode").value_or(255));
  s.term_signal = static_cast<int>(GetInt(o, "signal").value_or(0));
  s.stopped_at_ms = GetInt(o, "stoppedAt").value_or(0);
  s.usage.peak_memory_bytes = GetInt(o, "peakMemoryBytes").value_or(-1);
  s.usage.cpu_time_ns = GetInt(o, "cpuTimeNs").value_or(-1);
  s.usage.oom_killed = GetBool(o, "oomKilled").value_or(false);
  return s;
}

std::optional<ShimPids> ReadPids(const std::string& task_dir) {
  std::istringstream in(ReadFile(task_dir + "/" + kPidsFile));
  ShimPids p;
  if (!(in >> p.shim >> p.job >> p.started_at_ms)) return std::nullopt;
  return p;
}

int RunShim(const std::string& task_dir) {
  // Fd 3 reports the start to the executor; closing it without a word means failure.
  int ready = 3;
  auto report = [&](const std::string& line) {
    if (ready >= 0) {
      [[maybe_unused]] auto n = ::write(ready, line.data(), line.size());
      ::close(ready);
      ready = -1;
    }
  };
  ::setsid();  // its own session: the server's signals and death don't reach the job
  for (int s : {SIGHUP, SIGINT, SIGPIPE}) ::signal(s, SIG_IGN);
  auto parsed = ParseJson(ReadFile(task_dir + "/" + kSpecFile));
  if (!parsed.ok() || !parsed->is_object()) {
    report("err CannotStartContainerError: unreadable task spec in " + task_dir + "\n");
    return 1;
  }
  const json::object& spec = parsed->as_object();
  std::vector<std::string> argv = Strings(spec, "argv");
  std::vector<std::string> env = Strings(spec, "env");
  std::string workdir(GetString(spec, "workdir").value_or("/"));
  CgroupGroup group;
  if (const auto* cg = GetObject(spec, "cgroup")) {
    group.dirs = Strings(*cg, "dirs");
    group.kill_dir = GetString(*cg, "killDir").value_or("");
    group.memory_dir = GetString(*cg, "memoryDir").value_or("");
    group.cpuacct_dir = GetString(*cg, "cpuacctDir").value_or("");
    group.freezer_dir = GetString(*cg, "freezerDir").value_or("");
    group.v2 = GetBool(*cg, "v2").value_or(false);
  }
  SystemClock clock;
  auto writer = logs::StreamWriter::Open(
      std::string(GetString(spec, "logRoot").value_or("")),
      std::string(GetString(spec, "logGroup").value_or("")),
      std::string(GetString(spec, "logStream").value_or("")),
      static_cast<uint64_t>(GetInt(spec, "logCapBytes").value_or(0)), clock);
  if (!writer.ok()) {
    report("err CannotStartContainerError: cannot open the job's log: " +
           writer.status().message() + "\n");
    return 1;
  }
  for (const auto& line : Strings(spec, "logHeader")) (void)(*writer)->Write(line + "\n");
  if (argv.empty()) {
    report("err CannotStartContainerError: the job has no command to run (host mode has no "
           "image default command)\n");
    return 1;
  }
  // In a sandbox the command is found inside the image, by bubblewrap.
  const json::object* sandbox = GetObject(spec, "sandbox");
  std::string ovl, merged, upper, work, tmp;
  if (sandbox) {
    auto bwrap = Resolve("bwrap", {"PATH=/usr/bin:/bin:/usr/local/bin:/usr/sbin:/sbin"});
    if (!bwrap) {
      report("err CannotStartContainerError: bubblewrap (bwrap) is not installed on this host\n");
      return 1;
    }
    ovl = workdir + "/.rootfs";
    upper = ovl + "/upper";
    work = ovl + "/work";
    merged = ovl + "/merged";
    tmp = workdir + "/tmp";
    for (const auto& d : {ovl, upper, work, merged, tmp}) {
      ::mkdir(d.c_str(), 0700);
      if (auto u = GetInt(spec, "uid")) {
        [[maybe_unused]] int rc = ::chown(d.c_str(), static_cast<uid_t>(*u),
                                          static_cast<gid_t>(GetInt(spec, "gid").value_or(0)));
      }
    }
    std::vector<std::string> b = {*bwrap, "--unshare-all", "--die-with-parent"};
    if (GetBool(*sandbox, "network").value_or(false)) b.push_back("--share-net");
    if (auto u = GetInt(*sandbox, "uid")) b.insert(b.end(), {"--uid", std::to_string(*u)});
    if (auto g = GetInt(*sandbox, "gid")) b.insert(b.end(), {"--gid", std::to_string(*g)});
    b.insert(b.end(), {GetBool(*sandbox, "readOnlyRoot").value_or(false) ? "--ro-bind" : "--bind",
                       merged, "/", "--proc", "/proc", "--dev", "/dev", "--bind", tmp, "/tmp"});
    if (const auto* mounts = GetArray(*sandbox, "mounts")) {
      for (const auto& m : *mounts) {
        const auto& mo = m.as_object();
        if (int64_t mib = GetInt(mo, "tmpfsMiB").value_or(0); mib > 0) {
          b.insert(b.end(), {"--size", std::to_string(mib << 20), "--tmpfs",
                             std::string(GetString(mo, "target").value_or(""))});
          continue;
        }
        b.push_back(GetBool(mo, "device").value_or(false) ? "--dev-bind"
                    : GetBool(mo, "readOnly").value_or(false) ? "--ro-bind"
                                                              : "--bind");
        b.emplace_back(GetString(mo, "source").value_or(""));
        b.emplace_back(GetString(mo, "target").value_or(""));
      }
    }
    b.insert(b.end(), {"--chdir", "/", "--"});
    b.insert(b.end(), argv.begin(), argv.end());
    argv = std::move(b);
  }
  auto path = Resolve(argv[0], env);
  if (!path) {
    report("err CannotStartContainerError: executable file not found in $PATH: " + argv[0] + "\n");
    return 1;
  }
  std::string rootfs(sandbox ? GetString(*sandbox, "rootfs").value_or("") : "");
  std::string overlay_opts = "lowerdir=" + rootfs + ",upperdir=" + upper + ",workdir=" + work;
  std::vector<int> procs_fds;
  for (const auto& d : group.dirs) {
    int fd = ::open((d + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      report("err CannotStartContainerError: cannot join cgroup " + d + ": " + strerror(errno) + "\n");
      return 1;
    }
    procs_fds.push_back(fd);
  }
  int out[2], st[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(st, O_CLOEXEC) != 0) {
    report(std::string("err CannotStartContainerError: pipe: ") + strerror(errno) + "\n");
    return 1;
  }
  std::vector<char*> cargv, cenv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  for (auto& e : env) cenv.push_back(e.data());
  cenv.push_back(nullptr);
  // ulimits, as ECS maps them onto setrlimit (lowering works; raising past the
  // server's own hard limit needs a privilege it may not have, and is skipped).
  struct Limit {
    int resource;
    rlimit value;
  };
  std::vector<Limit> limits;
  if (const auto* ul = GetArray(spec, "ulimits")) {
    static const std::pair<const char*, int> kNames[] = {
        {"core", RLIMIT_CORE},       {"cpu", RLIMIT_CPU},       {"data", RLIMIT_DATA},
        {"fsize", RLIMIT_FSIZE},     {"locks", RLIMIT_LOCKS},   {"memlock", RLIMIT_MEMLOCK},
        {"msgqueue", RLIMIT_MSGQUEUE}, {"nice", RLIMIT_NICE},   {"nofile", RLIMIT_NOFILE},
        {"nproc", RLIMIT_NPROC},     {"rss", RLIMIT_RSS},       {"rtprio", RLIMIT_RTPRIO},
        {"rttime", RLIMIT_RTTIME},   {"sigpending", RLIMIT_SIGPENDING}, {"stack", RLIMIT_STACK}};
    for (const auto& u : *ul) {
      std::string_view name = GetString(u.as_object(), "name").value_or("");
      for (const auto& [n, r] : kNames) {
        if (name == n) {
          limits.push_back({r, {static_cast<rlim_t>(GetInt(u.as_object(), "soft").value_or(0)),
                                static_cast<rlim_t>(GetInt(u.as_object(), "hard").value_or(0))}});
        }
      }
    }
  }
  auto uid = GetInt(spec, "uid");
  auto gid = GetInt(spec, "gid");
  int64_t memory_mib = GetInt(spec, "memoryMiB").value_or(0);

  pid_t pid = ::fork();
  if (pid < 0) {
    report(std::string("err CannotStartContainerError: fork: ") + strerror(errno) + "\n");
    return 1;
  }
  if (pid == 0) {
    // The job: its own process group, in its cgroup before it runs anything.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int s : {SIGPIPE, SIGINT, SIGTERM, SIGHUP}) ::signal(s, SIG_DFL);
    ::setpgid(0, 0);
    int err = 0;
    char pidbuf[24];
    int len = 0;
    for (pid_t v = ::getpid(); v > 0; v /= 10) pidbuf[len++] = static_cast<char>('0' + v % 10);
    for (int i = 0; i < len / 2; ++i) std::swap(pidbuf[i], pidbuf[len - 1 - i]);
    for (int fd : procs_fds) {
      if (!err && ::write(fd, pidbuf, len) != len) err = errno;
    }
    if (!err && procs_fds.empty() && memory_mib > 0) {
      struct rlimit rl;  // no cgroups: the address-space rlimit is the best effort left
      rl.rlim_cur = rl.rlim_max = static_cast<rlim_t>(memory_mib) << 20;
      ::setrlimit(RLIMIT_AS, &rl);
    }
    for (const auto& l : limits) ::setrlimit(l.resource, &l.value);
    if (!err && sandbox) {
      // The image's root filesystem with a writable layer of its own, mounted in
      // a mount namespace of the attempt's (it vanishes with it); bubblewrap,
      // running as the job's user, then makes it the root of every namespace.
      if (::unshare(CLONE_NEWNS) != 0 ||
          ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
          ::mount("overlay", merged.c_str(), "overlay", 0, overlay_opts.c_str()) != 0) {
        err = errno;
      }
    }
    if (!err && gid && (::setgroups(0, nullptr) != 0 || ::setgid(static_cast<gid_t>(*gid)) != 0)) {
      err = errno;
    }
    if (!err && uid && ::setuid(static_cast<uid_t>(*uid)) != 0) err = errno;
    if (!err && ::chdir(workdir.c_str()) != 0) err = errno + kChdirFailed;
    if (!err) {
      int devnull = ::open("/dev/null", O_RDONLY);
      if (devnull >= 0) ::dup2(devnull, 0);
      ::dup2(out[1], 1);
      ::dup2(out[1], 2);
      ::syscall(SYS_close_range, 3, ~0U, 4 /* CLOSE_RANGE_CLOEXEC */);
      ::execve(path->c_str(), cargv.data(), cenv.data());
      err = errno;
    }
    [[maybe_unused]] auto n = ::write(st[1], &err, sizeof err);
    ::_exit(127);
  }
  for (int fd : procs_fds) ::close(fd);
  ::close(out[1]);
  ::close(st[1]);
  int child_err = 0;
  ssize_t n;
  do {
    n = ::read(st[0], &child_err, sizeof child_err);
  } while (n < 0 && errno == EINTR);
  ::close(st[0]);
  if (n > 0) {
    ::waitpid(pid, nullptr, 0);
    (void)(*writer)->Close();
    if (child_err >= kChdirFailed) {
      report("err CannotStartContainerError: cannot enter the working directory " + workdir +
             ": " + strerror(child_err - kChdirFailed) + "\n");
    } else {
      report("err CannotStartContainerError: " + argv[0] + ": " + strerror(child_err) + "\n");
    }
    return 1;
  }
  int64_t started = NowMs();
  (void)WriteAtomic(task_dir + "/" + kPidsFile, std::to_string(::getpid()) + " " +
                                                    std::to_string(pid) + " " +
                                                    std::to_string(started) + "\n");
  report("ok " + std::to_string(pid) + " " + std::to_string(started) + "\n");

  // Pump output until the job ends, then until every writer of the pipe is gone.
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  bool exited = false, out_open = true;
  int status = 0;
  int64_t drain_deadline = 0;
  char buf[65536];
  for (;;) {
    if (exited && !out_open) break;
    pollfd fds[2] = {{out_open ? out[0] : -1, POLLIN, 0},
                     {exited || pidfd < 0 ? -1 : pidfd, POLLIN, 0}};
    int timeout = exited ? 100 : (pidfd < 0 ? 50 : -1);
    if (::poll(fds, 2, timeout) < 0 && errno != EINTR) break;
    if (out_open && fds[0].revents) {
      ssize_t r = ::read(out[0], buf, sizeof buf);
      if (r > 0) {
        (void)(*writer)->Write(std::string_view(buf, r));
      } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
        out_open = false;  // every writer of the pipe is gone
      }
    }
    if (!exited && ::waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
      // The attempt ends with its main process, as ECS does: its whole tree
      // goes, daemonized processes included (the cgroup has them).
      ::kill(-pid, SIGKILL);
      Cgroups::Kill(group);
      drain_deadline = NowMs() + 2000;
      ::fcntl(out[0], F_SETFL, ::fcntl(out[0], F_GETFL) | O_NONBLOCK);
    }
    if (exited && NowMs() > drain_deadline) break;  // an escaped process holds the pipe
  }
  int64_t stopped = NowMs();
  (void)(*writer)->Close();
  ::close(out[0]);
  if (pidfd >= 0) ::close(pidfd);
  CgroupUsage usage = Cgroups::Usage(group);
  if (GetBool(spec, "removeWorkdir").value_or(false)) {
    std::error_code ec;
    std::filesystem::remove_all(workdir, ec);
  }
  json::object result{{"exitCode", WIFEXITED(status) ? WEXITSTATUS(status)
                                   : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 255},
                      {"signal", WIFSIGNALED(status) ? WTERMSIG(status) : 0},
                      {"stoppedAt", stopped},
                      {"peakMemoryBytes", usage.peak_memory_bytes},
                      {"cpuTimeNs", usage.cpu_time_ns},
                      {"oomKilled", usage.oom_killed}};
  return WriteAtomic(task_dir + "/" + kStatusFile, ToJson(result)).ok() ? 0 : 1;
}

}  // namespace drover::exec
