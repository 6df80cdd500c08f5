// eddy::graceful_shutdown: how a server stops (DESIGN.md §12).
#pragma once

#include <signal.h>

#include <chrono>
#include <cstddef>
#include <initializer_list>
#include <optional>

#include <eddy/runtime/event.hpp>
#include <eddy/runtime/loop.hpp>
#include <eddy/runtime/task.hpp>
#include <eddy/runtime/task_group.hpp>
#include <eddy/sched/signal_set.hpp>

namespace eddy {

/// How a graceful_shutdown::drain ended.
/// **Thread safety:** a value type. **Cancel safety:** n/a.
struct shutdown_result {
  std::size_t finished = 0;   ///< connections that ended on their own within the grace period
  std::size_t cancelled = 0;  ///< connections still open at the deadline (or at a second signal), cancelled
  bool second_signal = false; ///< a second signal cut the grace period short
};

/// The shutdown servers are expected to have, in three steps: wait for SIGTERM
/// or SIGINT (or `request()`), stop accepting (the caller cancels its accept
/// loop and closes its listener), then `drain(grace)`: let the connections
/// finish on their own for up to `grace`, then cancel the rest and wait until
/// every one has unwound. A second signal during the grace period cancels at
/// once. Connection tasks are spawned into `connections()`; a connection that
/// can end early (after its current request) checks `stopping()` or awaits
/// `stopping_event()`.
///
/// The signals are blocked and read through a signalfd (eddy::signal_set), so
/// make the graceful_shutdown before starting any thread.
///
/// **Thread safety:** one loop's thread.
/// **Cancel safety:** `wait()` is cancel-safe (a cancelled wait consumes no
/// signal). Cancelling `drain()` cancels every connection and throws
/// cancelled_error once they have finished.
///
/// ```cpp
/// eddy::graceful_shutdown shutdown;  // SIGINT, SIGTERM
/// auto acceptor = eddy::spawn(accept_loop(listener, shutdown.connections()));
/// co_await shutdown.wait();
/// acceptor.cancel();
/// co_await listener.close();
/// eddy::shutdown_result r = co_await shutdown.drain(std::chrono::seconds(10));
/// std::printf("%zu finished, %zu cancelled\n", r.finished, r.cancelled);
/// ```
class graceful_shutdown {
 public:
  /// Blocks and watches `signals` (default SIGINT and SIGTERM); an empty list
  /// watches none (request() alone stops it). Throws std::system_error if the
  /// signalfd cannot be made, std::invalid_argument for a bad signal number.
  explicit graceful_shutdown(std::initializer_list<int> signals = {SIGINT, SIGTERM});
  graceful_shutdown(const graceful_shutdown&) = delete;
  graceful_shutdown& operator=(const graceful_shutdown&) = delete;
  ~graceful_shutdown();

  /// The group connection tasks are spawned into.
  task_group& connections() noexcept { return conns_; }
  /// Waits for the first signal or request(); returns the signal's number (0 for
  /// request()). Returns at once once stopping.
  task<int> wait();
  /// Starts the shutdown from code (as a signal would). Loop thread only.
  void request() noexcept { stopping_.set(); }
  bool stopping() const noexcept { return stopping_.is_set(); }
  /// Set when the shutdown begins; connections may await it to end early.
  event& stopping_event() noexcept { return stopping_; }
  /// Lets the connections finish for up to `grace` (0..1 day), then cancels the
  /// rest and waits for them. Throws std::invalid_argument for a grace out of
  /// range. A second signal cancels at once.
  task<shutdown_result> drain(clock::duration grace);

 private:
  task<void> watch_signals();
  std::optional<signal_set> signals_;
  event stopping_;
  int signal_ = 0;
  task_group conns_;
};

}  // namespace eddy
