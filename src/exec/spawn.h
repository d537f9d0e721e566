// Spawn: the system-call primitives a job's process is made with (the
// supervisor's Spawn() and bench/spawn_floor.cc use them).
//
// A child made with CLONE_VM shares its parent's memory until it execs (with
// CLONE_VFORK the parent thread waits meanwhile; without, it runs on beside the
// child), so it only makes system calls (RawSyscall) on what was prepared
// beforehand. Two ways to keep its start cheap:
//   - CLONE_FILES: the child starts on its parent's descriptor table and takes
//     a copy of the low descriptors only (UnshareDescriptorsFrom), instead of a
//     copy of every one that its exec then closes one by one;
//   - Clone3 with CLONE_INTO_CGROUP: the child is born in a cgroup v2
//     directory instead of writing its pid into that group's cgroup.procs.
#pragma once

#include <linux/sched.h>  // clone_args, CLONE_INTO_CGROUP
#include <sys/types.h>

namespace drover::exec {

// clone3(ca) running fn(arg) in the child, on the stack `ca` names (16-byte
// aligned top), which exits with fn's result, as glibc's clone() does for
// clone. The child's pid, or -errno (-ENOSYS where it is not implemented:
// x86-64 only; glibc 2.36 has no clone3 wrapper).
pid_t Clone3(clone_args* ca, int (*fn)(void*), void* arg);

// Whether clone3 can create a process in the cgroup v2 directory `dir` that
// lives: false without clone3 or CLONE_INTO_CGROUP, and where Linux kills it at
// birth. Linux (6.18 here) SIGKILLs a process placed in a cgroup whose
// cgroup.kill count differs from that of its creator's own cgroup: a target
// killed before, or a creator that runs in a cgroup killed before (a service
// restarted in a reused cgroup). Asks with a child that exits at once.
bool CanBeBornIn(int dir);

// In a CLONE_FILES child: trades the shared descriptor table for a copy of the
// descriptors below `keep` (close_range's CLOSE_RANGE_UNSHARE). 0 or errno.
int UnshareDescriptorsFrom(int keep);

// Whether this kernel can (Linux 5.9); asks a forked child.
bool CanUnshareDescriptors();

// A system call that leaves errno alone: its result, or -errno. For a child
// made with CLONE_VM that runs beside its parent: glibc's wrappers would set
// errno in the parent thread's storage (the child runs on that thread's TLS).
// kRawSyscalls: whether it is a bare `syscall` instruction here (x86-64); where
// it is not, it goes through glibc's syscall() and such a child must not run
// beside its parent (CLONE_VFORK).
#if defined(__x86_64__)
inline constexpr bool kRawSyscalls = true;
#else
inline constexpr bool kRawSyscalls = false;
#endif
long RawSyscall(long n, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0, long a5 = 0,
                long a6 = 0);

}  // namespace drover::exec
