// posix_spawn + pidfd, and the background reaper for dropped children.
//
// pidfd race: posix_spawn returns a pid; pidfd_open(pid) follows. The pid cannot be
// reused in between because the child, even if it already exited, stays a zombie
// until we wait for it -- unless the application set SIGCHLD to SIG_IGN or reaps
// with waitpid(-1), which eddy documents as unsupported alongside subprocesses.
// (glibc 2.39's pidfd_spawn closes this gap; Debian 12 has 2.36.)
//
// Reaper protocol: one detached thread exists while at least one orphan is
// registered. It polls the orphans' pidfds plus an eventfd (new orphans), reaps
// whatever exited, and exits when the list is empty. `running` is read and written
// under the mutex only, so a new orphan either reaches the live thread (eventfd) or
// starts a new one.
#include "subprocess_spawn.hpp"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <mutex>
#include <system_error>
#include <thread>

extern char** environ;

namespace eddy::detail {
namespace {

[[noreturn]] void throw_errno(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), "eddy: " + what);
}

struct spawn_resources {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  spawn_resources() {
    if (int e = posix_spawn_file_actions_init(&actions))
      throw_errno(e, "posix_spawn_file_actions_init");
    if (int e = posix_spawnattr_init(&attr)) {
      posix_spawn_file_actions_destroy(&actions);
      throw_errno(e, "posix_spawnattr_init");
    }
  }
  ~spawn_resources() {
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
  }
};

int pidfd_open(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

}  // namespace

spawned_process spawn_process(const spawn_spec& spec) {
  if (spec.argv.empty()) throw std::invalid_argument("eddy: spawn: argv must not be empty");
  if (spec.path.empty()) throw std::invalid_argument("eddy: spawn: empty program path");
  for (const std::string& a : spec.argv)
    if (a.find('\0') != std::string::npos)
      throw std::invalid_argument("eddy: spawn: argument contains a NUL byte");
  spawn_resources r;
  auto check = [&](int e, const char* what) {
    if (e != 0) throw_errno(e, std::string("spawn ") + spec.path + ": " + what);
  };
  for (const child_fd& f : spec.fds) {
    switch (f.mode) {
      case child_fd::how::inherit:
        break;
      case child_fd::how::null:
        check(posix_spawn_file_actions_addopen(&r.actions, f.target, "/dev/null",
                                               f.target == 0 ? O_RDONLY : O_WRONLY, 0),
              "open /dev/null");
        break;
      case child_fd::how::dup:
        if (f.source < 0) throw std::invalid_argument("eddy: spawn: negative fd");
        // dup2 clears FD_CLOEXEC on the target, except when source == target:
        // callers make sure the sources are distinct from the targets.
        check(posix_spawn_file_actions_adddup2(&r.actions, f.source, f.target), "dup2");
        break;
    }
  }
  check(posix_spawn_file_actions_addclosefrom_np(&r.actions, spec.keep_fds_below), "closefrom");
  if (spec.cwd) check(posix_spawn_file_actions_addchdir_np(&r.actions, spec.cwd->c_str()), "chdir");

  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  check(posix_spawnattr_setsigmask(&r.attr, &none), "sigmask");
  check(posix_spawnattr_setsigdefault(&r.attr, &all), "sigdefault");
  if (spec.new_process_group) {
    flags |= POSIX_SPAWN_SETPGROUP;
    check(posix_spawnattr_setpgroup(&r.attr, 0), "setpgroup");
  }
  check(posix_spawnattr_setflags(&r.attr, flags), "setflags");

  std::vector<char*> argv;
  for (const std::string& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  if (spec.env) {
    for (const std::string& e : *spec.env) envp.push_back(const_cast<char*>(e.c_str()));
  } else {
    for (char** e = environ; e && *e; ++e) envp.push_back(*e);
  }
  for (const std::string& e : spec.extra_env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  pid_t pid = -1;
  const bool search = spec.path.find('/') == std::string::npos;
  int e = search
              ? posix_spawnp(&pid, spec.path.c_str(), &r.actions, &r.attr, argv.data(), envp.data())
              : posix_spawn(&pid, spec.path.c_str(), &r.actions, &r.attr, argv.data(), envp.data());
  if (e != 0) throw_errno(e, "spawn '" + spec.path + "'");
  int pidfd = pidfd_open(pid);
  if (pidfd < 0) {
    int err = errno;
    ::kill(pid, SIGKILL);
    siginfo_t si;
    ::waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED);
    throw_errno(err, "pidfd_open (needs Linux 5.3)");
  }
  return {pid, pidfd};
}

bool try_reap(int pidfd, siginfo_t& info) {
  for (;;) {
    info = {};
    if (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info,
                 WEXITED | WNOHANG) == 0)
      return info.si_pid != 0;
    if (errno == EINTR) continue;
    // A pidfd that became O_NONBLOCK (libuv's uv_poll_init sets it on every fd it
    // watches, and the fd is shared with the file) answers a not-yet-exited child
    // with EAGAIN instead of si_pid == 0 (waitid(2), Linux 5.10+).
    if (errno == EAGAIN) return false;
    throw_errno(errno, "waitid");
  }
}

siginfo_t reap_blocking(int pidfd) {
  siginfo_t info{};
  while (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info, WEXITED) != 0) {
    if (errno == EAGAIN) {  // an O_NONBLOCK pidfd (see try_reap): wait for the exit
      pollfd p{pidfd, POLLIN, 0};
      ::poll(&p, 1, -1);
      continue;
    }
    if (errno != EINTR) throw_errno(errno, "waitid");
  }
  return info;
}

void send_signal(int pidfd, int sig) {
  if (::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) != 0 && errno != ESRCH)
    throw_errno(errno, "pidfd_send_signal");
}

std::string describe_exit(const siginfo_t& info) {
  if (info.si_code == CLD_EXITED) return "exited with status " + std::to_string(info.si_status);
  const char* abbrev = sigabbrev_np(info.si_status);
  std::string s = "was killed by signal " + std::to_string(info.si_status);
  if (abbrev) s += std::string(" (SIG") + abbrev + ")";
  if (info.si_code == CLD_DUMPED) s += ", core dumped";
  return s;
}

int exit_code(const siginfo_t& info) {
  return info.si_code == CLD_EXITED ? info.si_status : -info.si_status;
}

namespace {

struct reaper_state {
  std::mutex mu;
  std::vector<int> orphans;
  int wake_fd = -1;
  bool running = false;
};

reaper_state& reaper() {
  static reaper_state* s = new reaper_state;  // never destroyed: the thread may outlive main
  return *s;
}

void reaper_thread() {
  reaper_state& s = reaper();
  for (;;) {
    std::vector<pollfd> fds;
    {
      std::lock_guard lock(s.mu);
      for (auto it = s.orphans.begin(); it != s.orphans.end();) {
        siginfo_t si;
        if (try_reap(*it, si)) {
          ::close(*it);
          it = s.orphans.erase(it);
        } else {
          ++it;
        }
      }
      if (s.orphans.empty()) {
        s.running = false;
        return;
      }
      fds.push_back({s.wake_fd, POLLIN, 0});
      for (int fd : s.orphans) fds.push_back({fd, POLLIN, 0});
    }
    ::poll(fds.data(), fds.size(), -1);
    if (fds[0].revents & POLLIN) {
      std::uint64_t v;
      [[maybe_unused]] auto n = ::read(s.wake_fd, &v, sizeof v);
    }
  }
}

}  // namespace

void reap_in_background(int pidfd) {
  reaper_state& s = reaper();
  std::lock_guard lock(s.mu);
  if (s.wake_fd < 0) {
    s.wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s.wake_fd < 0) throw_errno(errno, "eventfd");
  }
  s.orphans.push_back(pidfd);
  if (s.running) {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(s.wake_fd, &one, sizeof one);
    return;
  }
  // Signals stay blocked in the reaper so signalfd users never lose one to it.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  try {
    std::thread(reaper_thread).detach();
  } catch (...) {
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    s.orphans.pop_back();
    throw;
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  s.running = true;
}

}  // namespace eddy::detail
