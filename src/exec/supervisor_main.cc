// drover-supervisor: starts and watches every job attempt on this host and
// outlives the server (see exec/supervisor.h). The server starts it.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "exec/supervisor.h"

int main(int argc, char** argv) {
  drover::exec::SupervisorOptions opts;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--run-dir") opts.run_dir = argv[i + 1];
    else if (a == "--cgroup-root") opts.cgroup_root = argv[i + 1];
    else if (a == "--cgroup-parent") opts.cgroup_parent = argv[i + 1];
  }
  if (opts.run_dir.empty() || argc % 2 != 1) {
    std::fprintf(stderr,
                 "usage: drover-supervisor --run-dir DIR [--cgroup-root DIR] [--cgroup-parent NAME]\n"
                 "(started by drover server; fd 3, when open, hears \"ok\" once it listens)\n");
    return 2;
  }
  if (::fcntl(3, F_GETFD) != -1) opts.ready_fd = 3;
  // Detached: a session of its own, and not the server's child (nobody would reap it).
  ::setsid();
  pid_t pid = ::fork();
  if (pid < 0) {
    std::perror("drover-supervisor: fork");
    return 1;
  }
  if (pid > 0) ::_exit(0);
  return drover::exec::RunSupervisor(opts);
}
