// eddy::signal_set: await POSIX signals through a signalfd.
#pragma once

#include <signal.h>

#include <eddy/runtime/task.hpp>
#include <initializer_list>
#include <optional>
#include <vector>

namespace eddy {

/// A set of signals delivered as values instead of to handlers, as asyncio's
/// `loop.add_signal_handler` (and tokio's `signal`) do: `co_await set.wait()`
/// returns the next signal number.
///
/// The constructor blocks the signals in the calling thread and opens a signalfd for
/// them. A signal sent to the process goes to some thread that does not block it, so
/// create the set in the main thread before other threads start (eddy's own threads
/// block all signals). Children spawned by eddy start with an empty mask and default
/// dispositions. The destructor closes the fd and restores the calling thread's mask
/// for the signals it blocked (a still-pending signal then takes its default action).
/// Two sets for one signal compete: each signal is delivered to one of them.
///
/// Valid signals: 1..SIGRTMAX except SIGKILL, SIGSTOP (cannot be caught) and the
/// synchronous fault signals SIGSEGV, SIGBUS, SIGFPE, SIGILL (blocking them makes a
/// fault fatal); an empty set is refused. Invalid input throws std::invalid_argument.
///
/// **Thread safety:** construct and destroy on one thread; `wait()` on the loop that
/// runs the awaiting task. Not shared between threads.
/// **Cancel safety:** `wait()` is cancel-safe: a cancelled wait consumes no signal.
///
/// ```cpp
/// eddy::signal_set stop{SIGINT, SIGTERM};
/// int sig = co_await stop.wait();
/// std::printf("got %s, shutting down\n", sigabbrev_np(sig));
/// ```
class signal_set {
 public:
  signal_set(std::initializer_list<int> signals);
  explicit signal_set(const std::vector<int>& signals);
  ~signal_set();
  signal_set(const signal_set&) = delete;
  signal_set& operator=(const signal_set&) = delete;

  /// Waits for the next of the set's signals and returns its number.
  task<int> wait();

  /// Returns a signal that is already pending, without waiting.
  std::optional<int> try_take();

  /// The signalfd (non-blocking, close-on-exec).
  int fd() const noexcept { return fd_; }

 private:
  void open(const std::vector<int>& signals);
  int fd_ = -1;
  sigset_t blocked_by_us_{};
};

}  // namespace eddy
