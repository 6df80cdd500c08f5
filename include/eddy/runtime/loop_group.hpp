// eddy::loop_group: one loop per core, started and stopped as one (DESIGN.md §8).
#pragma once

#include <atomic>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <eddy/runtime/loop.hpp>
#include <eddy/runtime/loop_handle.hpp>
#include <eddy/runtime/loop_options.hpp>
#include <eddy/runtime/task.hpp>

namespace eddy {

/// Options for a loop_group.
/// **Thread safety:** a value type. **Cancel safety:** n/a.
struct loop_group_options {
  /// Number of loops (threads); 0 = one per CPU this process may run on
  /// (sched_getaffinity). At most 1024.
  std::size_t loops = 0;
  /// Pin loop i to the i-th CPU of the process's affinity set (wrapping around):
  /// each loop then keeps its caches and its ring's memory on one core.
  bool cpu_affinity = false;
  /// While run() runs, the first SIGINT cancels every loop's main task (as eddy::run
  /// does for one), if SIGINT is at its default disposition. A second SIGINT kills.
  bool sigint_cancels = true;
  /// Options of every loop (backend, ring size, ...).
  loop_options loop{};
};

/// An exception in one loop's main task, with the loop's index; `cause()` is the
/// original exception.
/// **Thread safety:** a value type. **Cancel safety:** n/a.
class loop_group_error : public std::runtime_error {
 public:
  loop_group_error(std::size_t index, std::exception_ptr cause, const std::string& what)
      : std::runtime_error(what), index_(index), cause_(std::move(cause)) {}
  std::size_t index() const noexcept { return index_; }
  const std::exception_ptr& cause() const noexcept { return cause_; }

 private:
  std::size_t index_;
  std::exception_ptr cause_;
};

/// N event loops, each on its own thread with its own backend instance (its own
/// ring on io_uring), run as one: Seastar's and glommio's thread-per-core model.
///
/// `run(make_main)` calls `make_main(i)` on loop i's thread for every i and runs the
/// task it returns there. A loop whose main task has finished keeps serving
/// cross-loop work (spawn_on, channels) until every main task has finished; then
/// every loop is closed (cancelling what is left on it) and run() returns. The first
/// failure cancels the other main tasks and is rethrown by run() as a
/// loop_group_error naming the loop. If a SIGINT cancelled the mains (see
/// loop_group_options::sigint_cancels) and one ended by that cancellation, the
/// process then dies by SIGINT, as eddy::run does.
///
/// Loops reach each other only through `handle(i)`: spawn_on, make_loop_channel,
/// loop_handle::call_soon_threadsafe. The thread pools and the process pool stay
/// shared by the whole process (to_thread and run_cpu work from every loop).
///
/// **Thread safety:** `size`, `handle`, `cancel`, `current_index` may be called
/// from any thread; `run` once, from a thread that runs no loop; the destructor
/// after run has returned (or if it never ran). **Cancel safety:** n/a.
///
/// ```cpp
/// eddy::loop_group g({.loops = 0, .cpu_affinity = true});
/// g.run([&](std::size_t i) { return serve(i, g); });  // one listener per loop
/// ```
class loop_group {
 public:
  static constexpr std::size_t max_loops = 1024;

  /// Creates the loops (not yet their threads). Throws std::invalid_argument for
  /// more than max_loops loops or invalid loop options.
  ///
  /// On io_uring the rings are created here, on the calling thread, which the
  /// kernel then counts among each ring's users: while a ring is torn down it may
  /// interrupt that thread's blocking calls, and one that has a timeout (a socket
  /// with SO_RCVTIMEO) then fails with EINTR instead of restarting. Retry EINTR
  /// there, as with any signal.
  explicit loop_group(loop_group_options opts = {});
  ~loop_group();
  loop_group(const loop_group&) = delete;
  loop_group& operator=(const loop_group&) = delete;

  std::size_t size() const noexcept { return slots_.size(); }
  /// The handle of loop `i` (valid from construction on). Throws std::out_of_range.
  loop_handle handle(std::size_t i) const;

  /// Runs every loop until every main task has finished; see the class comment.
  /// Throws std::logic_error if called twice or from a loop thread.
  template <class F>
  void run(F make_main) {
    run_impl(std::function<task<void>(std::size_t)>(std::move(make_main)));
  }

  /// Cancels every loop's main task (each sees cancelled_error at its current or
  /// next await, on its own loop). Idempotent.
  void cancel() noexcept;

  /// The index of the group loop running on this thread; throws std::logic_error
  /// on a thread that is not one of a group's loops.
  static std::size_t current_index();

  /// The number of CPUs this process may run on (what `loops = 0` means).
  static std::size_t default_size() noexcept;

 private:
  struct slot;
  void run_impl(std::function<task<void>(std::size_t)> make_main);
  void thread_main(std::size_t i, const std::function<task<void>(std::size_t)>& make_main);
  task<void> supervise(std::size_t i, const std::function<task<void>(std::size_t)>* make_main);
  void main_finished() noexcept;

  loop_group_options opts_;
  std::vector<std::unique_ptr<slot>> slots_;
  std::atomic<bool> cancel_requested_{false};
  std::atomic<std::size_t> remaining_{0};
  std::atomic<std::size_t> first_failure_{static_cast<std::size_t>(-1)};
  bool ran_ = false;
};

}  // namespace eddy
