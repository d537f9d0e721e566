#include "exec/spawn.h"

#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <memory>

namespace drover::exec {

#if defined(__x86_64__)
pid_t Clone3(clone_args* ca, int (*fn)(void*), void* arg) {
  register long rax asm("rax") = SYS_clone3;
  register long rdi asm("rdi") = reinterpret_cast<long>(ca);
  register long rsi asm("rsi") = sizeof(*ca);
  register long r12 asm("r12") = reinterpret_cast<long>(fn);  // (callee-saved: kept across syscall)
  register long r13 asm("r13") = reinterpret_cast<long>(arg);
  asm volatile(
      "syscall\n\t"
      "testq %%rax, %%rax\n\t"
      "jnz 1f\n\t"
      // The child, on its own stack: the call keeps the ABI's 16-byte alignment.
      "xorl %%ebp, %%ebp\n\t"
      "movq %%r13, %%rdi\n\t"
      "callq *%%r12\n\t"
      "movl %%eax, %%edi\n\t"
      "movl $60, %%eax\n\t"  // exit
      "syscall\n\t"
      "hlt\n"
      "1:\n\t"
      : "+r"(rax)
      : "r"(rdi), "r"(rsi), "r"(r12), "r"(r13)
      : "rcx", "r11", "memory", "cc");
  return static_cast<pid_t>(rax);
}

long RawSyscall(long n, long a1, long a2, long a3, long a4, long a5, long a6) {
  register long rax asm("rax") = n;
  register long rdi asm("rdi") = a1;
  register long rsi asm("rsi") = a2;
  register long rdx asm("rdx") = a3;
  register long r10 asm("r10") = a4;
  register long r8 asm("r8") = a5;
  register long r9 asm("r9") = a6;
  asm volatile("syscall"
               : "+r"(rax)
               : "r"(rdi), "r"(rsi), "r"(rdx), "r"(r10), "r"(r8), "r"(r9)
               : "rcx", "r11", "memory");
  return rax;
}
#else
pid_t Clone3(clone_args*, int (*)(void*), void*) { return -ENOSYS; }

long RawSyscall(long n, long a1, long a2, long a3, long a4, long a5, long a6) {
  long r = ::syscall(n, a1, a2, a3, a4, a5, a6);
  return r < 0 ? -errno : r;
}
#endif

namespace {
int ExitAtOnce(void*) { return 0; }
}  // namespace

bool CanBeBornIn(int dir) {
  constexpr size_t kStack = 16 << 10;
  auto stack = std::make_unique<char[]>(kStack);
  clone_args ca{};
  ca.flags = CLONE_VM | CLONE_VFORK | CLONE_INTO_CGROUP;
  ca.exit_signal = SIGCHLD;
  ca.stack = reinterpret_cast<uint64_t>(stack.get());
  ca.stack_size = kStack;
  ca.cgroup = static_cast<uint64_t>(dir);
  pid_t pid = Clone3(&ca, ExitAtOnce, nullptr);
  if (pid < 0) return false;
  int status = 0;
  return ::waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int UnshareDescriptorsFrom(int keep) {
  return ::close_range(static_cast<unsigned>(keep), ~0U, CLOSE_RANGE_UNSHARE) == 0 ? 0 : errno;
}

bool CanUnshareDescriptors() {
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(::close_range(~0U - 1, ~0U, CLOSE_RANGE_UNSHARE) == 0 ? 0 : 1);
  int status = 0;
  return pid > 0 && ::waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
         WEXITSTATUS(status) == 0;
}

}  // namespace drover::exec
