// eddy::signal_set over signalfd.
//
// The fd is non-blocking: wait() first tries a read, and only when nothing is
// pending awaits readability, so a cancelled wait never consumed a signal.
#include <errno.h>
#include <pthread.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <eddy/io/fd.hpp>
#include <eddy/runtime/loop.hpp>
#include <eddy/sched/signal_set.hpp>
#include <stdexcept>
#include <string>
#include <system_error>

#include "async_fd.hpp"

namespace eddy {

signal_set::signal_set(std::initializer_list<int> signals) {
  open(std::vector<int>(signals));
}

signal_set::signal_set(const std::vector<int>& signals) {
  open(signals);
}

void signal_set::open(const std::vector<int>& signals) {
  if (signals.empty()) throw std::invalid_argument("eddy: signal_set: no signals given");
  sigset_t want;
  sigemptyset(&want);
  for (int s : signals) {
    if (s <= 0 || s > SIGRTMAX)
      throw std::invalid_argument("eddy: signal_set: " + std::to_string(s) + " is not a signal");
    if (s == SIGKILL || s == SIGSTOP)
      throw std::invalid_argument("eddy: signal_set: SIGKILL and SIGSTOP cannot be caught");
    if (s == SIGSEGV || s == SIGBUS || s == SIGFPE || s == SIGILL)
      throw std::invalid_argument("eddy: signal_set: fault signal " + std::to_string(s) +
                                  " cannot be awaited");
    sigaddset(&want, s);
  }
  sigset_t old;
  if (int e = pthread_sigmask(SIG_BLOCK, &want, &old))
    throw std::system_error(e, std::generic_category(), "eddy: signal_set: pthread_sigmask");
  // Remember only what we changed, so the destructor does not unblock a signal the
  // thread had blocked before.
  sigemptyset(&blocked_by_us_);
  for (int s = 1; s <= SIGRTMAX; ++s)
    if (sigismember(&want, s) == 1 && sigismember(&old, s) == 0) sigaddset(&blocked_by_us_, s);
  fd_ = ::signalfd(-1, &want, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd_ < 0) {
    int e = errno;
    pthread_sigmask(SIG_UNBLOCK, &blocked_by_us_, nullptr);
    throw std::system_error(e, std::generic_category(), "eddy: signalfd");
  }
}

signal_set::~signal_set() {
  // Through the running loop: its backend may be watching the fd.
  if (fd_ >= 0) detail::close_fd_now(loop::current_or_null(), fd_);
  pthread_sigmask(SIG_UNBLOCK, &blocked_by_us_, nullptr);
}

std::optional<int> signal_set::try_take() {
  signalfd_siginfo si;
  for (;;) {
    ssize_t r = ::read(fd_, &si, sizeof si);
    if (r == static_cast<ssize_t>(sizeof si)) return static_cast<int>(si.ssi_signo);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno == EAGAIN) return std::nullopt;
    throw std::system_error(r < 0 ? errno : EIO, std::generic_category(), "eddy: signal_set: read");
  }
}

task<int> signal_set::wait() {
  for (;;) {
    if (std::optional<int> s = try_take()) co_return *s;
    co_await detail::async_readable(fd_);
  }
}

}  // namespace eddy
