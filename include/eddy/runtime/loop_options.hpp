// Options for a new eddy::loop (DESIGN.md §3, §4).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>

#include <eddy/io/backend_kind.hpp>

struct uv_loop_s;  // libuv's uv_loop_t

namespace eddy {

/// Which io_uring features a loop may use (loop_options::uring_features).
enum class uring_feature_set : unsigned char {
  from_env,  ///< EDDY_URING_FEATURES: "all" or "baseline"; all if unset or empty
  all,       ///< everything the running kernel offers
  /// Only what Linux 5.11 offers, whatever the running kernel: a plain ring (no
  /// SINGLE_ISSUER, DEFER_TASKRUN, COOP_TASKRUN or SUBMIT_ALL), single-shot accept
  /// and recv, no provided buffers, and no cancel-by-fd (close cancels the fd's
  /// operations one by one). For testing the path older kernels take.
  baseline,
};
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
  /// io_uring features to use (see uring_feature_set); other backends ignore it.
  /// EDDY_URING_FEATURES is read only when this is from_env.
  uring_feature_set uring_features = uring_feature_set::from_env;
  /// Most bytes one `receive()` hands over (16 KiB..4 MiB; default 256 KiB, as
  /// asyncio's and uvloop's read size). A connection that streams gets up to this
  /// much per completion; one of small messages still reads into small buffers.
  std::size_t recv_limit = 256 * 1024;
  /// io_uring's provided-buffer ring, shared by every receiving socket of the
  /// loop: buffer count (power of two, 1..32768) and size (4 KiB..16 MiB, a
  /// multiple of 4 KiB; count × size at most 1 GiB); 0 picks by kernel: 32 ×
  /// 256 KiB where buffers are consumed incrementally (Linux 6.12), else 256 ×
  /// 16 KiB. Address space only: pages become resident as traffic uses them.
  /// Incremental rings keep about 1 MiB of their buffers posted, the most
  /// recently freed first, so receives land in cache-warm memory; the posted
  /// share doubles whenever a receive finds the ring empty while buffers wait.
  unsigned uring_buffers = 0;
  std::size_t uring_buffer_size = 0;
  /// Let io_uring consume ring buffers incrementally (IOU_PBUF_RING_INC, Linux
  /// 6.12) where the kernel has it; false keeps whole-buffer rings (the path
  /// older kernels take; tests force it).
  bool uring_incremental = true;
  /// io_uring only: sends of at least this many bytes use zero-copy send
  /// (IORING_OP_SEND_ZC / SENDMSG_ZC, Linux 6.0-6.1): the kernel sends from the
  /// caller's pages instead of copying them, and the write completes only once the
  /// kernel has let go of them (on a real NIC, when the data was transmitted; a
  /// connection whose peer stops reading holds the write until its data leaves).
  /// 0 = never, the default: on loopback the kernel copies anyway when it delivers
  /// to the local socket, and it measured slower here (docs/bulk-data.md). 0 or
  /// 4096..1 GiB. Kernels without the opcode send as usual; other backends ignore it.
  std::size_t send_zerocopy_min = 0;
  /// Most ready callbacks and resumptions run per iteration before timers and I/O
  /// are polled (1..1,000,000); 0 = the default, 256.
  unsigned ready_batch = 0;
  /// io_uring only: I/O that ready callbacks and tasks queue goes to the kernel
  /// in one system call when the ready batch ends. After an entry (a callback or
  /// a task's step) that ran this long, or once the batch has run 40 times as
  /// long, what is queued so far is submitted at once, before the next entry
  /// runs, so a send made early in a long batch (a TLS handshake signs for
  /// 0.1-1 ms; a Python callback may take longer) is not held back by the work
  /// that follows it, while a batch of short entries still submits once.
  /// Checked after each entry with one read of the CPU's cycle counter (about
  /// 10 ns). 0 = submit only at the end of the batch. 0..10,000 µs; default
  /// 50 µs. Readiness backends (epoll, libuv) make their system calls at once
  /// and ignore it.
  std::chrono::microseconds submit_after{50};
  /// The per-task budget of inline completions (tokio's coop budget, also 128):
  /// an I/O operation that completes at once (its fd was ready) lets the task go
  /// on without a turn of the loop, so a task whose socket always has data would
  /// never give timers, other connections or cross-thread posts their turn. Each
  /// time the loop resumes a task it gets this many; when they run out the task
  /// goes to the back of the ready queue and the loop polls timers and I/O before
  /// it runs again. The same on every backend. 1..1,000,000; 0 = the default, 128.
  unsigned coop_budget = 0;
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
  /// Give a burst's memory back: once the number of live tasks has fallen by at
  /// least this many from its peak and the loop has then been idle for 100 ms,
  /// the loop frees the frames its thread caches beyond a few hundred per size
  /// and returns the heap's free pages to the kernel (glibc's malloc_trim), once
  /// per burst. Without it a server's resident memory keeps the high-water mark
  /// of its busiest moment (and, through fragmentation, can creep above it).
  /// 0 = never; 1..100,000,000; default 1024.
  std::size_t trim_after_tasks = 1024;
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
  /// are closed, so uv_loop_close on the host loop succeeds afterwards. Closing
  /// from a host I/O callback (uv_poll, uv_read, ...) also works: uv_run is not
  /// reentrant, so close() then runs only eddy's own work, and the handles finish
  /// closing in that uv_run's closing phase. Other callbacks of the host (timers,
  /// idle, close callbacks) cannot be told apart from "outside uv_run" through
  /// libuv's API: do not close the eddy loop from those. The
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
