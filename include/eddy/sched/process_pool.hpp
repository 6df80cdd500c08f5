// eddy::process_pool: helper processes for CPU work in another address space
// (DESIGN.md §6): isolation, crash containment, memory limits, code that is not
// thread-safe. Python's ProcessPoolExecutor, but supervised and cancellable.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <eddy/runtime/metrics.hpp>
#include <eddy/runtime/task.hpp>
#include <eddy/sched/detail/remote_call.hpp>
#include <eddy/sched/remote.hpp>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace eddy {

class loop;

/// A helper process died while it was running a call. The message says which helper
/// and how it ended: "exited with status 3", "was killed by signal 9 (SIGKILL)".
/// The pool has already started a replacement.
///
/// Also thrown for every call once helpers failed to start `max_start_failures`
/// times in a row (the message says so and gives the last exit status), and for
/// calls still queued when the pool is destroyed.
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
///
/// ```cpp
/// try { co_await pool.call<risky>(x); }
/// catch (const eddy::worker_crashed& e) { log(e.what()); }
/// ```
class worker_crashed : public std::runtime_error {
 public:
  explicit worker_crashed(const std::string& what) : std::runtime_error("eddy: " + what) {}
};

/// Options of a process_pool. Every field is validated by the constructor
/// (std::invalid_argument names the field).
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
struct process_pool_options {
  /// Number of helpers, 1..256; 0 means one per online CPU.
  unsigned helpers = 0;
  /// Calls sent to one helper before further callers wait (backpressure), 1..64.
  /// A helper runs its calls one at a time; more than one in flight hides the round
  /// trip for short calls. Calls queued behind a call that crashes its helper are
  /// re-sent to another helper (they never started).
  unsigned max_in_flight = 1;
  /// Largest encoded arguments or result, 1 KiB..4 GiB. Larger calls fail with
  /// remote_call_error before anything is sent.
  std::uint64_t max_message_size = std::uint64_t{1} << 30;
  /// RLIMIT_AS of each helper in bytes (0: no limit). An allocation past it throws
  /// std::bad_alloc in the helper, which comes back as remote_error.
  std::uint64_t memory_limit = 0;
  /// RLIMIT_CPU of each helper in seconds of CPU over its lifetime (0: no limit).
  /// A helper past it is killed (SIGXCPU), its call fails with worker_crashed and
  /// it is replaced.
  std::uint64_t cpu_time_limit = 0;
  /// Helpers that die before they are ready this many times in a row (1..1000) make
  /// the pool stop starting new ones and fail calls with worker_crashed.
  unsigned max_start_failures = 3;
  /// How long a helper may take to start (0.001..3600 s) before it counts as failed.
  std::chrono::milliseconds start_timeout{10000};
  /// How long an idle helper spins for the next call before it sleeps (0..10 ms).
  /// Spinning saves the ~25 µs wakeup of a sleeping core per call, for up to this
  /// much CPU after each call.
  std::chrono::microseconds helper_spin{50};
};

/// Counters for monitoring and tests, from `process_pool::stats()`.
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
///
/// ```cpp
/// if (pool.stats().queued > 100) shed_load();
/// ```
struct process_pool_stats {
  std::size_t helpers_ready = 0;      ///< helpers that completed start-up and live
  std::size_t helpers_starting = 0;   ///< spawned, not yet ready
  std::uint64_t helpers_started = 0;  ///< processes spawned over the pool's life
  std::uint64_t helpers_died = 0;     ///< helpers that crashed or were killed
  std::size_t queued = 0;             ///< calls waiting for a helper
  std::size_t in_flight = 0;          ///< calls sent and not yet answered
  /// For calls a helper answered (a result, a remote exception or a refusal): from
  /// call() to the call's dispatch to a helper (the last one, if a helper died under
  /// it), and from there to the answer (with max_in_flight > 1 this includes waiting
  /// behind earlier calls inside the helper). Kept on the loop thread; one clock
  /// read per call and one per answer.
  latency_histogram queue_wait;
  latency_histogram run_time;
};

namespace detail {
class process_pool_core;
task<std::vector<char>> pool_exchange(std::shared_ptr<process_pool_core> core,
                                      const remote_entry* entry, std::vector<char> args);
std::shared_ptr<process_pool_core> make_process_pool_core(loop& l,
                                                          const process_pool_options& opts);
void close_process_pool_core(process_pool_core& core) noexcept;
task<void> shutdown_process_pool_core(std::shared_ptr<process_pool_core> core);
process_pool_stats process_pool_core_stats(const process_pool_core& core) noexcept;
std::vector<pid_t> process_pool_core_pids(const process_pool_core& core);
std::uint64_t process_pool_core_max_message(const process_pool_core& core) noexcept;
[[noreturn]] void throw_oversized(std::string_view name, std::size_t size, std::uint64_t max);

}  // namespace detail

/// A pool of helper processes that run functions registered with EDDY_REMOTE.
///
/// **Helper mode.** Helpers are this program re-executed (through /proc/self/exe,
/// never fork without exec: the parent may own an io_uring ring and threads). So
/// every program that creates a process_pool must route helper mode first thing in
/// main(), before it parses arguments or starts anything:
///
/// ```cpp
/// int main(int argc, char** argv) {
///   eddy::process_pool::helper_main_if_requested(argc, argv);  // never returns in a helper
///   ...
/// }
/// ```
/// (An explicit call rather than a static-initialisation hook: a hook could run
/// before other translation units have registered their functions or initialised
/// the globals those functions use. A program that forgets the call gets a clear
/// error from the constructor in the helper instead of helpers spawning helpers.)
///
/// Helpers inherit no fd but their channel (and stdout/stderr; stdin is /dev/null),
/// run in their own process group (Ctrl-C reaches only the parent), and die with the
/// parent: PR_SET_PDEATHSIG plus EOF on their channel. Note PDEATHSIG fires when the
/// *thread* that spawned a helper exits: keep the pool on a long-lived loop thread.
///
/// **Calls.** `co_await pool.call<fn>(args...)` or `pool.call<R>("name", args...)`
/// serialize the arguments (cereal binary archive), run the function in a helper and
/// return its result. Errors: remote_error (the function threw), remote_call_error
/// (unknown name, argument types that do not match, payload too large or not
/// decodable), worker_crashed (the helper died). Per-call timeouts:
/// `co_await eddy::with_timeout(2s, pool.call<fn>(x))`.
///
/// **Supervision.** A helper that dies fails the call it was running with
/// worker_crashed as soon as its channel reports EOF, and a replacement is started.
///
/// **Thread safety:** bound to the loop it was created on; use it (and destroy it)
/// on that loop's thread only.
/// **Cancel safety:** cancelling a call that is waiting for a helper removes it;
/// cancelling a call that a helper is running kills that helper (the only way to
/// stop running code) and starts a replacement; either way the call throws
/// cancelled_error.
///
/// ```cpp
/// static long fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
/// EDDY_REMOTE(fib);
///
/// eddy::task<void> work() {
///   eddy::process_pool pool({.helpers = 2});
///   long a = co_await pool.call<fib>(30);
///   long b = co_await pool.call<long>("fib", 31);
/// }
/// ```
class process_pool {
 public:
  /// Starts the helpers on the current thread's loop (std::logic_error if none).
  explicit process_pool(process_pool_options options = {});
  /// Starts the helpers, bound to `l`.
  process_pool(loop& l, process_pool_options options);
  /// Stops the helpers: idle ones see EOF and exit, busy ones are killed; calls
  /// still waiting fail with worker_crashed. Helpers are reaped by the loop (no
  /// zombie once the loop ran or closed).
  ~process_pool();
  process_pool(const process_pool&) = delete;
  process_pool& operator=(const process_pool&) = delete;

  /// Calls the registered function `Fn` in a helper with `args` converted to its
  /// parameter types. The arguments are encoded before this returns, so temporaries
  /// are safe to pass.
  template <auto Fn, class... A>
  task<detail::remote_result_t<Fn>> call(A&&... args) {
    static const detail::remote_entry* entry = detail::entry_of<Fn>("process_pool::call");
    std::vector<char> bytes = detail::encode_call<Fn>(std::forward<A>(args)...);
    check_size(entry->name, bytes.size());
    return detail::finish_call<detail::remote_result_t<Fn>>(
        detail::pool_exchange(core_, entry, std::move(bytes)), entry);
  }

  /// Calls the function registered as `name`, which must have exactly the signature
  /// `R(stored_t<A>...)` (string literals and string_views travel as std::string):
  /// otherwise remote_call_error names both signatures.
  template <class R = void, class... A>
  task<R> call(std::string_view name, A&&... args) {
    const detail::remote_entry* entry = detail::entry_named<R, A...>(name);
    std::vector<char> bytes;
    detail::encode_args(bytes, std::forward<A>(args)...);
    check_size(entry->name, bytes.size());
    return detail::finish_call<std::remove_cvref_t<R>>(
        detail::pool_exchange(core_, entry, std::move(bytes)), entry);
  }

  /// Shuts the pool down and waits until every helper has exited and been reaped:
  /// idle helpers see EOF and exit by themselves, busy ones are killed (their calls
  /// fail with worker_crashed), queued calls fail with worker_crashed. Later calls
  /// fail with worker_crashed. The destructor does the same without waiting.
  ///
  /// **Thread safety:** loop thread only.
  /// **Cancel safety:** cancel-safe: stops waiting; the helpers still go away.
  ///
  /// ```cpp
  /// co_await pool.shutdown();  // no helper process left
  /// ```
  task<void> shutdown() { return detail::shutdown_process_pool_core(core_); }

  /// Current counters. Loop thread only.
  process_pool_stats stats() const noexcept { return detail::process_pool_core_stats(*core_); }
  /// Pids of the live helpers (ready or starting). Loop thread only.
  std::vector<pid_t> helper_pids() const { return detail::process_pool_core_pids(*core_); }

  /// Routes helper mode: call this first thing in main(). In a process started as a
  /// helper by a process_pool it serves calls and never returns (the process exits
  /// when the parent closes the channel or dies); otherwise it returns at once.
  ///
  /// **Thread safety:** call from main() before starting threads.
  /// **Cancel safety:** n/a.
  ///
  /// ```cpp
  /// int main(int argc, char** argv) {
  ///   eddy::process_pool::helper_main_if_requested(argc, argv);
  ///   return eddy::run(async_main());
  /// }
  /// ```
  static void helper_main_if_requested(int argc, char** argv);

 private:
  void check_size(std::string_view name, std::size_t n) const {
    const std::uint64_t max = detail::process_pool_core_max_message(*core_);
    if (n > max) detail::throw_oversized(name, n, max);
  }
  std::shared_ptr<detail::process_pool_core> core_;
};

}  // namespace eddy
