// eddy::run: the program entry point.
#pragma once

#include <exception>
#include <utility>

#include <eddy/runtime/loop.hpp>

namespace eddy {

namespace detail {

// While eddy::run runs, the first SIGINT cancels the main task (see run below).
// Installed only if SIGINT is at its default disposition and no other eddy::run
// holds it; restored afterwards.
class sigint_cancels_main {
 public:
  sigint_cancels_main(loop& l, task_core* main);
  /// The same, but the first SIGINT calls `callback(arg)` on `l`'s thread instead
  /// of cancelling one task (loop_group cancels every loop's main task).
  sigint_cancels_main(loop& l, void (*callback)(void*), void* arg);
  ~sigint_cancels_main();
  sigint_cancels_main(const sigint_cancels_main&) = delete;
  sigint_cancels_main& operator=(const sigint_cancels_main&) = delete;
  /// True once a SIGINT arrived and cancelled the main task.
  bool fired() const noexcept;
  /// Dies by SIGINT with the default disposition (after the loop is closed).
  [[noreturn]] static void reraise();

 private:
  void install(loop& l, task_core* main, void (*callback)(void*), void* arg);
  bool installed_ = false;
};

}  // namespace detail

/// Makes a loop, runs `main` to completion, closes the loop (cancelling and
/// finishing every task still alive) and returns main's value or rethrows its
/// exception.
///
/// SIGINT (Ctrl-C) shuts a program down cleanly by default: the first SIGINT
/// cancels the main task, which sees cancelled_error at its current await and
/// unwinds; the loop is closed, so every other task is cancelled and finished too;
/// then, if main ended by that cancellation, the process dies by SIGINT as an
/// interrupted program should (exit status 130 in a shell). If main catches the
/// cancellation and returns, run returns that value. A second SIGINT kills at once.
/// This applies only while SIGINT is at its default disposition: a program with its
/// own handler, or awaiting an eddy::signal_set for SIGINT, keeps full control.
///
/// **Thread safety:** call from the thread that should run the loop; any number of
/// threads may each run their own (the first one holds SIGINT).
/// **Cancel safety:** n/a (not awaitable).
///
/// ```cpp
/// int main() { return eddy::run(async_main()); }
/// ```
template <class T>
T run(task<T> main, loop_options opts = {}, std::source_location site = std::source_location::current()) {
  loop l(std::move(opts));
  join_handle<T> h = l.spawn(std::move(main), site);
  std::exception_ptr error;
  bool interrupted = false;
  {
    detail::sigint_cancels_main guard(l, h.core());
    try {
      l.run_until_done(h);
    } catch (...) {
      error = std::current_exception();
    }
    l.close();
    if (h.done() && guard.fired()) {
      try {
        (void)h.result();
      } catch (const cancelled_error&) {
        interrupted = true;
      } catch (...) {
      }
    }
  }
  if (interrupted) detail::sigint_cancels_main::reraise();
  if (error) std::rethrow_exception(error);
  return h.result();
}

}  // namespace eddy
