// What a loop tells its operators (DESIGN.md §12): the metrics snapshot, the stall
// detector's report, and the description of a live task for task dumps. The
// functions that produce them are members of eddy::loop (loop.hpp).
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <source_location>
#include <string>
#include <vector>

namespace eddy {

/// A distribution of durations: how many, their sum and maximum, and a log2
/// histogram. Thread pools use it for how long jobs waited in the queue and how long
/// they ran (`pool_stats::queue_wait`, `pool_stats::run_time`, <eddy/sched/thread_pool.hpp>).
///
/// Bucket i counts durations in [2^i, 2^(i+1)) µs; bucket 0 also takes those under
/// 1 µs and the last one everything from 2^23 µs (8.4 s) up. `percentile(q)` is read
/// off the histogram, so it is the upper edge of the bucket the q-th duration fell in
/// (at most twice the true value), capped at the maximum seen: HdrHistogram's idea
/// with one significant bit, enough to tell 20 µs from 20 ms at 24 counters.
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
///
/// ```cpp
/// eddy::latency_histogram w = eddy::blocking_pool().stats().queue_wait;
/// std::printf("%llu jobs, p99 wait %lld us\n", (unsigned long long)w.count,
///             (long long)(w.percentile(0.99).count() / 1000));
/// ```
struct latency_histogram {
  static constexpr std::size_t buckets = 24;

  std::uint64_t count = 0;
  std::uint64_t sum_ns = 0;
  std::uint64_t max_ns = 0;      ///< since the start (delta() keeps it as it is)
  std::uint64_t hist[buckets] = {};

  /// The bucket a duration of `ns` nanoseconds is counted in.
  static std::size_t bucket_of(std::uint64_t ns) noexcept;
  /// The upper edge of bucket `i` in nanoseconds (2^(i+1) µs; the last: unbounded,
  /// UINT64_MAX).
  static std::uint64_t bucket_limit_ns(std::size_t i) noexcept;
  /// sum / count (0 when empty).
  std::chrono::nanoseconds mean() const noexcept;
  /// The q-th quantile (0 < q <= 1) as the upper edge of its bucket, at most max_ns;
  /// 0 when empty.
  std::chrono::nanoseconds percentile(double q) const noexcept;
  /// Counts minus `earlier`'s (max_ns is kept: it cannot be subtracted).
  latency_histogram delta(const latency_histogram& earlier) const noexcept;
  /// Adds counts; the maximum of the maxima.
  latency_histogram& operator+=(const latency_histogram& o) noexcept;
  /// "n 120 mean 35us p50 32us p99 1.0ms max 2.3ms" (`n 0` when empty).
  std::string summary() const;
};

/// A snapshot of one loop's counters (`loop::metrics()`), or the sum over a
/// loop_group (`group_metrics(g)`, which adds them with `+=`).
///
/// Counters only ever grow; take two snapshots and subtract (`delta`) for rates.
/// Busy and idle time are what libuv's `uv_metrics_idle_time` and Node's
/// `eventLoopUtilization()` give: idle is time blocked in the kernel waiting for
/// I/O, timers or a wakeup; busy is the rest of the time the loop was running
/// (inside run, run_forever, run_once or a host's turn). They need two clock reads
/// per iteration, which `loop_options::metrics = false` turns off (they then stay
/// 0); every other counter is a plain increment the loop does anyway.
///
/// **Thread safety:** a value type. `loop::metrics()` itself is loop-thread only
/// (a loop_group gathers its loops' snapshots on their own threads).
/// **Cancel safety:** n/a.
///
/// ```cpp
/// eddy::loop_metrics a = l.metrics();
/// co_await eddy::sleep_for(1s);
/// eddy::loop_metrics d = l.metrics().delta(a);
/// std::printf("%.0f%% busy, %.1f events/iteration\n", 100 * d.utilization(),
///             d.events_per_iteration());
/// ```
struct loop_metrics {
  /// Bucket i of the poll-time histogram counts polls that took [2^i, 2^(i+1)) µs
  /// (bucket 0 also takes polls under 1 µs; the last, everything longer).
  static constexpr std::size_t poll_buckets = 20;
  /// Kinds of I/O operation, in the order of `op_kind_name`.
  static constexpr std::size_t op_kinds = 24;

  std::uint64_t busy_ns = 0;         ///< running, not blocked in the kernel
  std::uint64_t idle_ns = 0;         ///< blocked in the kernel wait
  std::uint64_t iterations = 0;      ///< turns of the loop
  std::uint64_t blocking_waits = 0;  ///< turns that blocked in the kernel
  std::uint64_t callbacks = 0;       ///< ready-queue entries and cross-thread callbacks run
  std::uint64_t task_polls = 0;      ///< task resumptions (a subset of callbacks)
  std::uint64_t io_completions = 0;  ///< completions reaped from the backend
  std::uint64_t remote_posts = 0;    ///< callbacks posted from other threads and run here
  std::uint64_t wakeups = 0;         ///< cross-thread wakeups written to this loop
  std::uint64_t tasks_spawned = 0;   ///< tasks started on this loop
  std::uint64_t stalls = 0;          ///< stalls the stall detector reported (0 when off)
  std::uint64_t ops_submitted[op_kinds] = {};  ///< I/O operations submitted, by kind
  // Gauges: the value now (a loop_group sums them).
  std::size_t live_tasks = 0;
  std::size_t ready_depth = 0;    ///< callbacks and resumptions queued
  std::size_t in_flight_io = 0;   ///< operations the backend owns
  /// The same by kind (named by `op_kind_name`): reads, polls, accepts, ... waiting
  /// in the kernel or the readiness engine now. An operation that completed at once
  /// (the epoll backend's first try) is never in flight.
  std::size_t in_flight[op_kinds] = {};
  std::size_t armed_timers = 0;
  std::size_t loops = 1;          ///< loops summed into this snapshot
  /// Opt-in (`loop_options::task_poll_times`): how long each task poll took.
  std::uint64_t poll_time_hist[poll_buckets] = {};
  std::uint64_t poll_ns = 0;      ///< total time spent in task polls (opt-in)

  /// busy / (busy + idle), 0 when nothing was measured.
  double utilization() const noexcept;
  /// (callbacks + io_completions) / iterations.
  double events_per_iteration() const noexcept;
  /// The name of op kind `i` ("read", "recv", "accept_multi", ...).
  static const char* op_kind_name(std::size_t i) noexcept;
  /// Counters minus `earlier`'s (gauges are kept as they are now).
  loop_metrics delta(const loop_metrics& earlier) const noexcept;
  /// Adds counters and gauges (a loop_group's aggregate).
  loop_metrics& operator+=(const loop_metrics& o) noexcept;
  /// One line for logs: "busy 12.3% iters 1200 ev/iter 3.1 tasks 101 ready 0 io 100
  /// (recv_multi 99, accept_multi 1) timers 1 polls 3600 posts 0" (the kinds in
  /// flight, most first, when any); `over` is the interval the counters cover (0 to
  /// leave rates out).
  std::string summary(std::chrono::nanoseconds over = {}) const;
};

/// What the stall detector reports when one callback or task step held a loop
/// longer than the threshold (`loop_options::stall_threshold`, `EDDY_STALL_MS`).
///
/// **Thread safety:** a value type, handed to `loop_options::on_stall` on the
/// detector's own thread. **Cancel safety:** n/a.
struct stall_report {
  unsigned loop_id = 0;           ///< `loop::id()` of the stalled loop
  int thread_id = 0;              ///< the loop thread's kernel tid
  std::chrono::milliseconds stalled{0};    ///< how long it had been held when sampled
  std::chrono::milliseconds threshold{0};
  std::uint64_t suppressed = 0;   ///< stalls not reported since the last report (rate limit)
  /// The loop thread's stack while it was still stalled, innermost frame first,
  /// one symbolized frame per line ("binary(function+0x1c) [0x5555...]",
  /// demangled where the symbol is exported: link with -rdynamic for names, or feed
  /// the addresses to addr2line). Empty if the loop moved on before it was taken.
  std::vector<std::string> backtrace;
  /// The report as eddy prints it to stderr by default.
  std::string text() const;
};

/// One live task, as a task dump lists it (`loop::tasks()`, `loop::dump_tasks()`).
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
struct task_info {
  const void* id = nullptr;       ///< stable while the task lives
  std::source_location spawned_at;
  /// "running" (the task that asked for the dump), "scheduled" (queued to run),
  /// "waiting" (on what `awaiting` says), "suspended" (on an awaitable that does
  /// not describe itself).
  const char* state = "";
  std::string awaiting;           ///< "recv on fd 7", "timer, due in 120 ms", ...
  int fd = -1;                    ///< the awaited operation's fd, or -1
  std::chrono::nanoseconds age{0};        ///< since spawn
  std::chrono::nanoseconds since{0};      ///< since it last ran (how long it has waited)
  std::uint64_t polls = 0;        ///< times it was resumed
  std::uint64_t poll_ns = 0;      ///< time it ran (loop_options::task_poll_times)
  bool cancel_requested = false;
};

}  // namespace eddy
