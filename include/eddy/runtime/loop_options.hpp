// Options for a new eddy::loop (DESIGN.md §3, §4).
#pragma once

#include <chrono>
#include <functional>

#include <eddy/io/backend_kind.hpp>

struct uv_loop_s;  // libuv's uv_loop_t

namespace eddy {

struct stall_report;

/// Options for a new loop. Every field is checked by the loop's constructor, which
/// throws std::invalid_argument naming the field, its range and the value given.
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
///
/// ```cpp
/// eddy::loop_options o;
/// o.backend = eddy::backend_kind::epoll;
/// o.ready_batch = 64;
/// eddy::loop l(o);
/// ```
struct loop_options {
  backend_kind backend = backend_kind::from_env;
  /// io_uring submission queue entries (power of two, 2..32768).
  unsigned uring_entries = 256;
  /// io_uring completion queue entries; 0 = twice uring_entries. (power of two,
  /// ≥ uring_entries, ≤ 65536). A small CQ is handled: overflow is never lost.
  unsigned uring_cq_entries = 0;
  /// Most ready callbacks and resumptions run per iteration before timers and I/O
  /// are polled (1..1,000,000); 0 = the default, 256.
  unsigned ready_batch = 0;
  /// Before blocking, poll the cross-thread queue for up to this long (0..1 ms;
  /// default 0 = never spin). On a VM a blocked thread is woken by an
  /// inter-processor interrupt that costs tens of µs; a short spin trades a
  /// little CPU after each burst of work for µs-scale cross-thread latency
  /// (Seastar's poll mode and Linux busy_poll make the same trade).
  std::chrono::microseconds idle_spin{0};
  /// How long a task awaiting an offloaded call (to_thread, run_cpu) may have the
  /// loop watch for its result before the loop blocks (0..1 ms; default 20 µs).
  /// The loop watches only while it has nothing else to do: no ready task, no
  /// due timer, no completion waiting; anything else ends the watch at once.
  /// 0 turns it off (every result then comes back through a wakeup).
  std::chrono::microseconds offload_spin{20};
  /// A host program's libuv loop to attach to (libuv backend only; `backend` must
  /// be from_env, automatic or libuv, and from_env/automatic then mean libuv).
  /// The host keeps calling uv_run as before; eddy runs its tasks, timers and I/O
  /// from handles it adds to that loop (prepare, check, idle, a timer, an async,
  /// a uv_poll_t per waiting fd), so host callbacks and eddy tasks interleave on
  /// the host's thread, which becomes the eddy loop's thread. loop::run,
  /// run_forever and run_once then throw std::logic_error: spawn tasks with
  /// loop::spawn and let the host run its loop. Close the eddy loop outside
  /// uv_run (before it is entered or after it returns), from the host's thread:
  /// close() runs the host's loop until eddy's tasks have finished and its handles
  /// are closed, so uv_loop_close on the host loop succeeds afterwards. The
  /// uv_loop_t must outlive the eddy loop. Thread safety: the host loop is used
  /// only on the thread that runs it.
  uv_loop_s* uv_loop = nullptr;
  /// Busy and idle time in loop::metrics() (two clock reads per loop turn; the
  /// other metrics are counters kept regardless). Default on.
  bool metrics = true;
  /// Per-task poll counts' companion: time each task poll and keep a histogram of
  /// poll times (loop_metrics::poll_time_hist) and each task's total (task_info::
  /// poll_ns), as tokio-metrics does. Two clock reads per poll; default off.
  bool task_poll_times = false;
  /// The stall detector (docs/operability.md): report when one callback or task
  /// step holds the loop longer than this, with a backtrace of the loop thread
  /// taken while it is still stalled. 0 turns it off; -1 (the default) reads
  /// `EDDY_STALL_MS` from the environment (unset or 0: off). 1..60000 ms; Seastar
  /// uses 25 ms. Off costs nothing: no thread, no signal handler, no clock read.
  std::chrono::milliseconds stall_threshold{-1};
  /// Where stall reports go (on the detector's thread, one at a time); empty =
  /// print stall_report::text() to stderr. At most one report per loop per
  /// second; the next report counts the ones left out.
  std::function<void(const stall_report&)> on_stall{};
};

}  // namespace eddy
