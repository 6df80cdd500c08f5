// Awaiting work on a thread pool from a coroutine: eddy::to_thread (blocking_pool),
// eddy::run_cpu (cpu_pool) and eddy::run_in (any pool or work class). DESIGN.md §6.
//
// The public functions come first; how a result comes back, the fast path and
// cancellation are described with their implementation in
// <eddy/sched/detail/offload_awaitable.hpp>.
#pragma once

#include <eddy/sched/detail/offload_awaitable.hpp>
#include <eddy/sched/thread_pool.hpp>
#include <utility>

namespace eddy {

/// Runs f(args...) on blocking_pool(), under blocking_work_class() (so that a flood of
/// blocking calls leaves threads to name lookups), and resumes the awaiting coroutine on its loop
/// with the result, or rethrows the exception `f` threw. For calls that block: file
/// I/O without io_uring, legacy libraries, getpwnam, compression of a large buffer...
/// `f` and `args` are decay-copied into the job. If `f` takes a std::stop_token first,
/// it receives one that is stopped when the awaiting task is cancelled.
///
/// **Thread safety:** await it on a loop thread (the task must run on a loop). `f` runs
/// on another thread: whatever it shares with the loop must be synchronized.
/// **Cancel safety:** cancelling the awaiting task before the job starts drops the job
/// (it never runs) and throws eddy::cancelled_error. Once it runs, the task waits for it
/// to finish (stop requested on its token), receives its result, and sees the
/// cancellation at its next await: a result is never lost, and nothing the job
/// references dies while it runs.
///
/// ```cpp
/// eddy::task<std::string> read_config() {
///   co_return co_await eddy::to_thread([] { return slurp("/etc/app.conf"); });
/// }
/// ```
template <class F, class... Args>
[[nodiscard]] auto to_thread(F&& f, Args&&... args) {
  return detail::make_offload(blocking_pool(), &blocking_work_class(), std::forward<F>(f),
                              std::forward<Args>(args)...);
}

/// Runs f(args...) on cpu_pool() (one thread per core) and resumes the awaiting
/// coroutine with the result or exception. For CPU-heavy work that would stall the
/// loop: hashing, parsing, image work. Inside `f`, eddy::join and eddy::parallel_for
/// fork onto the cpu pool. Same argument, stop-token and result rules as to_thread.
///
/// **Thread safety:** as to_thread.
/// **Cancel safety:** as to_thread.
///
/// ```cpp
/// auto digest = co_await eddy::run_cpu(sha256, std::move(blob));
/// ```
template <class F, class... Args>
[[nodiscard]] auto run_cpu(F&& f, Args&&... args) {
  return detail::make_offload(cpu_pool(), nullptr, std::forward<F>(f), std::forward<Args>(args)...);
}

/// Runs f(args...) on `pool` and resumes the awaiting coroutine with the result. The
/// awaiting task sees eddy::pool_closed if the pool is shutting down.
///
/// **Thread safety:** as to_thread.
/// **Cancel safety:** as to_thread.
///
/// ```cpp
/// eddy::thread_pool codec(eddy::pool_options::fixed(2, "codec"));
/// auto frame = co_await eddy::run_in(codec, decode, packet);
/// ```
template <class F, class... Args>
[[nodiscard]] auto run_in(thread_pool& pool, F&& f, Args&&... args) {
  return detail::make_offload(pool, nullptr, std::forward<F>(f), std::forward<Args>(args)...);
}

/// Runs f(args...) on the pool of `work`, under its cap (see work_class).
///
/// **Thread safety:** as to_thread.
/// **Cancel safety:** as to_thread; a job cancelled in the class backlog never runs.
///
/// ```cpp
/// eddy::work_class disk(eddy::blocking_pool(), "disk", 4);
/// auto bytes = co_await eddy::run_in(disk, read_file, path);
/// ```
template <class F, class... Args>
[[nodiscard]] auto run_in(work_class& work, F&& f, Args&&... args) {
  return detail::make_offload(work.pool(), &work, std::forward<F>(f), std::forward<Args>(args)...);
}

}  // namespace eddy
