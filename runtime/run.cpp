// SIGINT handling for eddy::run (include/eddy/runtime/run.hpp).
//
// Protocol:
//  1. If SIGINT is at SIG_DFL and no other eddy::run holds it, install a one-shot
//     handler (SA_RESETHAND: a second SIGINT gets the default action and kills).
//  2. The handler only writes an eventfd (async-signal-safe). A watcher task on the
//     loop reads it and cancels the main task.
//  3. A program awaiting an eddy::signal_set for SIGINT blocks it in the loop
//     thread, and pool threads block all asynchronous signals, so the signal stays
//     pending for that signalfd and the handler never runs: the user's set wins.
//  4. On exit the previous disposition comes back and the eventfd is closed.
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <mutex>

#include <eddy/runtime/run.hpp>

#include <eddy/runtime/detail/op_awaiter.hpp>

namespace eddy::detail {

namespace {

std::mutex holder_mu;
bool held = false;
int sigint_fd = -1;
std::atomic<bool> sigint_seen{false};
struct sigaction previous {};

extern "C" void on_sigint(int) {
  const int saved = errno;
  sigint_seen.store(true, std::memory_order_relaxed);
  const std::uint64_t one = 1;
  [[maybe_unused]] ssize_t r = ::write(sigint_fd, &one, sizeof one);
  errno = saved;
}

task<void> watch_sigint(loop* l, int fd, task_core* main, void (*callback)(void*), void* arg) {
  // Named, not a temporary inside the if: GCC 12 does not keep such a temporary
  // awaiter alive across the suspension (the op it hands the backend dangled).
  std::uint64_t value = 0;
  raw_op_awaiter signalled(*l, "eddy::run: SIGINT eventfd", op_code::read, fd, &value,
                           sizeof value);
  if (co_await signalled > 0) {
    if (main != nullptr) main->request_cancel();
    else callback(arg);
  }
}

}  // namespace

sigint_cancels_main::sigint_cancels_main(loop& l, task_core* main) { install(l, main, nullptr, nullptr); }

sigint_cancels_main::sigint_cancels_main(loop& l, void (*callback)(void*), void* arg) {
  install(l, nullptr, callback, arg);
}

void sigint_cancels_main::install(loop& l, task_core* main, void (*callback)(void*), void* arg) {
  std::lock_guard lock(holder_mu);
  if (held) return;
  struct sigaction cur {};
  if (::sigaction(SIGINT, nullptr, &cur) != 0 || cur.sa_handler != SIG_DFL || (cur.sa_flags & SA_SIGINFO))
    return;
  const int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) return;  // no clean shutdown then, but nothing is lost either
  sigint_fd = fd;
  sigint_seen.store(false, std::memory_order_relaxed);
  struct sigaction sa {};
  sa.sa_handler = &on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND | SA_RESTART;
  if (::sigaction(SIGINT, &sa, &previous) != 0) {
    ::close(fd);
    sigint_fd = -1;
    return;
  }
  held = true;
  installed_ = true;
  l.spawn(watch_sigint(&l, fd, main, callback, arg)).detach();
}

sigint_cancels_main::~sigint_cancels_main() {
  if (!installed_) return;
  std::lock_guard lock(holder_mu);
  // If the handler already ran, SA_RESETHAND put SIG_DFL back; either way the
  // previous (default) disposition is what we restore.
  ::sigaction(SIGINT, &previous, nullptr);
  ::close(sigint_fd);  // the loop, and with it the watcher's read, is closed already
  sigint_fd = -1;
  held = false;
}

bool sigint_cancels_main::fired() const noexcept {
  return installed_ && sigint_seen.load(std::memory_order_relaxed);
}

void sigint_cancels_main::reraise() {
  ::signal(SIGINT, SIG_DFL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  ::raise(SIGINT);
  ::_exit(130);  // not reached unless SIGINT is somehow still ignored
}

}  // namespace eddy::detail
