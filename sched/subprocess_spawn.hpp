// Process spawning shared by subprocess and process_pool.
//
// Always posix_spawn (glibc implements it with clone(CLONE_VM|CLONE_VFORK) + exec):
// a process that owns an io_uring ring, threads or locks is never forked without
// an exec. The child gets a default signal disposition and an empty signal mask
// (eddy threads block signals for signalfd; a child must not inherit that), and
// every fd other than 0-2 and the ones asked for is closed in the child even if
// some library opened it without O_CLOEXEC.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace eddy::detail {

/// What the child gets as one of its fds.
struct child_fd {
  enum class how { inherit, null, dup } mode = how::inherit;
  int source = -1;  // for dup: the parent's fd, dup2'ed to target in the child
  int target = 0;
};

struct spawn_spec {
  std::string path;  // executable; searched in PATH when it has no '/'
  std::vector<std::string> argv;
  std::optional<std::vector<std::string>> env;  // "K=V"; nullopt: the parent's environ
  std::vector<std::string> extra_env;           // appended to env
  std::optional<std::string> cwd;
  std::vector<child_fd> fds;
  int keep_fds_below = 3;  // fds >= this not in `fds` are closed in the child
  bool new_process_group = false;
};

struct spawned_process {
  pid_t pid = -1;
  int pidfd = -1;  // O_CLOEXEC; readable when the process has exited
};

/// Spawns; throws std::system_error naming the program on failure (including exec
/// failures such as ENOENT, which glibc reports synchronously).
spawned_process spawn_process(const spawn_spec& spec);

/// waitid(P_PIDFD, WNOHANG): true and fills `info` when the process was reaped.
bool try_reap(int pidfd, siginfo_t& info);
/// waitid(P_PIDFD) blocking; returns the status.
siginfo_t reap_blocking(int pidfd);
/// pidfd_send_signal; ESRCH (already exited) is not an error.
void send_signal(int pidfd, int sig);
/// "exited with status 3", "was killed by signal 9 (SIGKILL)".
std::string describe_exit(const siginfo_t& info);
/// Exit code as a shell reports it: status, or -signal when killed.
int exit_code(const siginfo_t& info);

/// Hands a still-running child to a background reaper thread that waits for it, so a
/// dropped handle never leaves a zombie. Takes ownership of pidfd.
void reap_in_background(int pidfd);

}  // namespace eddy::detail
