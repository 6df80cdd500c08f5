// eddy::loop: one event loop per thread (DESIGN.md §3). What other parts hold
// lives beside it: loop_handle.hpp (other threads and loops), join_handle.hpp and
// timer_handle.hpp (a task), loop_options.hpp (its options).
#pragma once

// Before any standard header, so that a compiler in C++17 mode shows this first.
#if __cplusplus < 202002L
#error "eddy needs C++20 or later: compile with -std=c++20 (or -std=c++23, ...)"
#endif

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <source_location>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <eddy/runtime/detail/await_traits.hpp>
#include <eddy/runtime/detail/ready_queue.hpp>
#include <eddy/runtime/detail/remote_queue.hpp>
#include <eddy/runtime/detail/timer_wheel.hpp>
#include <eddy/runtime/errors.hpp>
#include <eddy/runtime/join_handle.hpp>
#include <eddy/runtime/loop_handle.hpp>
#include <eddy/runtime/loop_options.hpp>
#include <eddy/runtime/metrics.hpp>
#include <eddy/runtime/task.hpp>
#include <eddy/runtime/timer_handle.hpp>

namespace eddy {

namespace detail {
class backend;
struct loop_access;
struct io_op;
class stall_entry;
bool submit_op(loop& l, io_op& op);
void cancel_op(loop& l, io_op& op) noexcept;
}

/// The loop's clock: monotonic, nanosecond resolution.
/// **Thread safety:** any thread. **Cancel safety:** n/a.
using clock = std::chrono::steady_clock;

/// Counters a test or a monitor can read.
/// **Thread safety:** a value type; `loop::stats()` itself is loop-thread only.
/// **Cancel safety:** n/a.
struct loop_stats {
  std::size_t live_tasks = 0;      ///< spawned tasks not yet finished
  std::size_t in_flight_io = 0;    ///< operations the backend still owns
  std::size_t armed_timers = 0;    ///< sleeps and call_later handles pending
  std::size_t ready = 0;           ///< queued callbacks and resumptions
  std::uint64_t iterations = 0;
  std::uint64_t wakeups = 0;       ///< cross-thread wakeups written
  std::size_t leaked_io = 0;       ///< ops still owned by the backend when close() released it (must be 0)
};

/// The event loop: runs tasks, callbacks, timers and I/O on the calling thread.
///
/// One iteration (written out at the top of `loop::run_once` too):
///  1. run the ready queue (FIFO), a bounded batch (ready_batch) so I/O is never
///     starved;
///  2. move due timers to the ready queue (timers never fire early);
///  3. submit pending I/O and reap completions: without blocking when anything is
///     ready, else block until the next timer, a completion or a wakeup. (On
///     io_uring a batch that runs longer than loop_options::submit_after also
///     submits what it has queued so far, between two entries.)
///
/// **Thread safety:** a loop is owned by the thread that first runs it. Only
/// `handle()` (and the loop_handle it returns) may be used from other threads.
///
/// **Cancel safety:** n/a (the loop itself is not awaitable).
///
/// ```cpp
/// eddy::loop l;
/// int v = l.run(compute());  // run_until_complete
/// l.close();
/// ```
class loop {
 public:
  explicit loop(loop_options opts = {});
  ~loop();
  loop(const loop&) = delete;
  loop& operator=(const loop&) = delete;

  /// Runs the loop until `main` finishes; returns its value or rethrows its
  /// exception. Throws std::logic_error if the loop is already running or owned by
  /// another thread, loop_closed_error if closed, std::runtime_error if `stop()`
  /// was called before `main` finished (main keeps running on the next run).
  template <class T>
  T run(task<T> main, std::source_location site = std::source_location::current());

  /// Runs until the spawned task behind `h` has finished (run() for a task that was
  /// spawned already). Same errors as run().
  template <class T>
  void run_until_done(const join_handle<T>& h) {
    run_until(h.core());
  }

  /// Runs until `stop()`.
  void run_forever();

  /// Runs one iteration: the ready batch, due timers, then I/O. It blocks (until
  /// the next timer, a completion or a wakeup) only if `block`, it ran nothing, and
  /// nothing is ready; so `while (!done) l.run_once(true);` never sleeps after the
  /// callback that set `done` (asyncio's `_run_once` order).
  /// Throws std::logic_error if the loop is already running (no re-entry).
  void run_once(bool block = false);

  /// Stops `run_forever` / `run` after the current iteration. Called from a
  /// callback, the iteration ends with the entries that were queued when its
  /// batch began (asyncio's rule): what they queue waits for the next run. Loop
  /// thread only; from another thread use `handle().stop()`.
  void stop() noexcept { stop_ = true; }

  /// Stops at once: the callback or task step running now is the last of this
  /// iteration, and the rest of the ready queue stays queued, in order, for the
  /// next run. For embeddings that unwind out of the loop (Python: SystemExit and
  /// KeyboardInterrupt leave asyncio's run_forever from inside the callback that
  /// raised them). Loop thread only.
  ///
  /// **Thread safety:** loop thread only. **Cancel safety:** n/a.
  ///
  /// ```cpp
  /// l.call_soon([&] { l.stop_now(); });  // nothing queued behind it runs in this run
  /// ```
  void stop_now() noexcept {
    stop_ = true;
    cut_batch_ = true;
  }

  /// Cancels every live task and runs the loop until they have all finished, then
  /// drops queued callbacks and timers and releases the backend. Idempotent. A task
  /// that ignores cancellation forever keeps close() waiting, as in asyncio.
  void close();

  bool is_closed() const noexcept { return closed_; }
  bool is_running() const noexcept { return running_; }

  /// Runs `f()` on this loop soon, after what is already queued (FIFO). An
  /// exception escaping `f` goes to the exception handler. Throws
  /// loop_closed_error after close().
  template <class F>
  void call_soon(F&& f);

  /// Runs `f()` once `delay` has passed (never earlier; at most ~1 ms later on an
  /// idle loop). Throws std::invalid_argument for a negative delay.
  template <class Rep, class Period, class F>
  timer_handle call_later(std::chrono::duration<Rep, Period> delay, F&& f);

  /// Runs `f()` at `when` (on the loop clock), or soon if `when` has passed.
  template <class F>
  timer_handle call_at(clock::time_point when, F&& f);

  /// Thread-safe: same as `handle().call_soon_threadsafe(f)`.
  template <class F>
  [[nodiscard]] bool call_soon_threadsafe(F&& f) const {
    return handle().call_soon_threadsafe(std::forward<F>(f));
  }

  /// A handle other threads may hold. Thread-safe.
  loop_handle handle() const noexcept { return loop_handle(shared_); }

  /// Starts `t` on this loop; see eddy::spawn. `site` is where task dumps say it
  /// was spawned (the caller, by default).
  template <class T>
  join_handle<T> spawn(task<T> t, std::source_location site = std::source_location::current());

  /// The loop clock, read now.
  static clock::time_point now() noexcept { return clock::now(); }

  /// Where exceptions nobody can receive go: detached tasks, callbacks, extra
  /// failures of a task_group. Default: print to stderr and continue (asyncio).
  void set_exception_handler(std::function<void(std::exception_ptr)> h);

  /// Functions the loop calls right before it blocks in the kernel waiting for I/O,
  /// timers or a wakeup, and right after that wait returns (both on the loop
  /// thread, with `arg`). No callback, task or completion runs between them. An
  /// embedding that holds a lock while it runs the loop releases it here: the
  /// Python loop (python/) drops the GIL around the wait and nowhere else.
  /// Pass nullptrs to remove them. Loop thread only.
  ///
  /// ```cpp
  /// l.set_block_hooks([](void*) { unlock(); }, [](void*) { lock(); }, nullptr);
  /// ```
  void set_block_hooks(void (*before)(void*), void (*after)(void*), void* arg) noexcept {
    before_block_ = before;
    after_block_ = after;
    block_hook_arg_ = arg;
  }
  void report_exception(std::exception_ptr e) noexcept;

  backend_kind backend() const noexcept { return kind_; }
  /// What the backend does with I/O (see io_capabilities). **Thread safety:** any
  /// thread (fixed when the loop is made). **Cancel safety:** n/a (not awaitable).
  io_capabilities io_caps() const noexcept;
  std::string_view backend_name() const noexcept;
  /// Why this backend was chosen (e.g. why io_uring was not).
  const std::string& backend_reason() const noexcept { return backend_reason_; }
  loop_stats stats() const noexcept;

  /// The loop's metrics now (see loop_metrics). Loop thread only (or while the
  /// loop is not running); other loops' through group_metrics(). **Cancel
  /// safety:** n/a (not awaitable).
  loop_metrics metrics() const noexcept;

  /// Every live task: where it was spawned, its state, what it awaits and for
  /// how long (see task_info). Loop thread only, or while the loop is not
  /// running: a dump of another loop is taken on that loop's thread (post it
  /// there: loop_group::dump_tasks does), never by reading its tasks from here,
  /// so it is safe while tasks run on other loops.
  ///
  /// ```cpp
  /// for (const eddy::task_info& t : eddy::loop::current().tasks())
  ///   std::printf("%s:%u %s %s\n", t.spawned_at.file_name(), t.spawned_at.line(), t.state,
  ///               t.awaiting.c_str());
  /// ```
  std::vector<task_info> tasks() const;
  /// tasks() as text, one line per task, oldest first, headed by the loop's id,
  /// backend and metrics summary (what the samples print on SIGUSR2). Thread
  /// safety as tasks(). **Cancel safety:** n/a (neither is awaitable).
  std::string dump_tasks() const;

  /// A number unique to this loop in the process (0, 1, 2, ... in creation order);
  /// stall reports and dumps name the loop by it. Any thread; not awaitable.
  unsigned id() const noexcept { return id_; }

  /// The loop running on this thread. Throws std::logic_error if there is none.
  static loop& current();
  /// The loop running on this thread, or nullptr.
  static loop* current_or_null() noexcept;

 private:
  friend struct detail::loop_access;
  friend class detail::stall_entry;
  friend bool detail::submit_op(loop&, detail::io_op&);
  friend void detail::cancel_op(loop&, detail::io_op&) noexcept;
  static constexpr unsigned default_ready_budget = 256;
  // loop_options::submit_after: a batch submits after an entry that ran that long,
  // or once it has run this many times as long (2 ms by default). A full batch of
  // short entries (256 × 1-4 µs) stays under it and submits once: at 10× it
  // cost an echo of 1,000 connections 0.1 extra io_uring_enter per request.
  static constexpr unsigned batch_submit_factor = 40;
  static constexpr unsigned default_coop_budget = 128;
  // For eddy's own awaitables, through detail::loop_access.
  void schedule(detail::task_core* core, std::coroutine_handle<> h) {
    ready_.push(&resume_entry, h.address(), core);
    if (core != nullptr) core->scheduled_ = true;
  }
  // The running task spent its coop budget: queue it again and end the batch.
  void coop_yield(detail::task_core* core, std::coroutine_handle<> h) {
    ready_.push(&resume_entry, h.address(), core);
    coop_exhausted_ = true;
  }
  std::int64_t clock_ns() const noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - epoch_).count();
  }
  std::int64_t to_loop_ns(clock::time_point t) const noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t - epoch_).count();
  }
  void check_open(const char* what) const {
    if (closed_) throw loop_closed_error(what);
  }
  void link_live(detail::task_core* c) noexcept {
    c->live_prev_ = nullptr;
    c->live_next_ = live_head_;
    if (live_head_ != nullptr) live_head_->live_prev_ = c;
    live_head_ = c;
    ++live_count_;
  }
  void unlink_live(detail::task_core* c) noexcept {
    if (c->live_prev_ != nullptr) c->live_prev_->live_next_ = c->live_next_;
    else live_head_ = c->live_next_;
    if (c->live_next_ != nullptr) c->live_next_->live_prev_ = c->live_prev_;
    c->live_prev_ = c->live_next_ = nullptr;
    --live_count_;
  }
  void call_soon_entry(void (*fn)(void*, void*, bool), void* a);
  void expect_remote(std::int64_t within_ns) noexcept;
  static void resume_entry(void* a, void* b, bool run) {
    if (!run) return;
    auto* c = static_cast<detail::task_core*>(b);
    detail::tls_current_core = c;
    if (c != nullptr) {
      c->scheduled_ = false;
      ++c->polls_;
      ++c->loop_->task_polls_;
      c->last_run_ns_ = c->loop_->now_ns_;
    }
    std::coroutine_handle<>::from_address(a).resume();
  }
  template <class F>
  struct callback_node {
    F f;
    static void entry(void* a, void*, bool run) {
      auto* n = static_cast<callback_node*>(a);
      struct guard {
        callback_node* n;
        ~guard() { detail::pool_delete(n); }
      } g{n};
      if (run) {
        detail::tls_current_core = nullptr;
        n->f();
      }
    }
  };
  // Checks that the loop may run here, enters it on this thread, and leaves it
  // (whatever happens) at the end of the scope.
  class running_scope {
   public:
    running_scope(loop& l, const char* what, const detail::task_core* until = nullptr);
    ~running_scope();
    running_scope(const running_scope&) = delete;
    running_scope& operator=(const running_scope&) = delete;

   private:
    loop& l_;
  };
  void run_until(detail::task_core* main);
  void check_not_hosted(const char* what) const;
  void poke_host() noexcept;  // hosted: work was queued outside a turn
  // A turn of the loop driven by a host's event loop (loop_options::uv_loop).
  static void host_turn(void* self, std::int64_t& next_ns, bool& live) noexcept;
  // block_after_work: may block after running callbacks (run/run_forever loop
  // again anyway; run_once must not, see above).
  void iterate(bool block, bool block_after_work = true);
  bool spin_for_remote_work(std::int64_t until_ns);
  void trim_when_idle(std::int64_t& timeout) noexcept;
  std::size_t run_ready_batch();
  std::size_t run_ready_batch_timed();  // loop_options::task_poll_times
  void note_running(bool on) noexcept;  // busy-time bookkeeping at running_scope
  void drain_remote();
  void enter_thread();
  void leave_thread() noexcept;
  detail::task_core* start(std::coroutine_handle<> frame, detail::promise_base* p);
  timer_handle arm_callback(timer_handle::node* n, std::int64_t deadline_ns);

  detail::ready_queue ready_;
  detail::timer_wheel wheel_;
  std::unique_ptr<detail::backend> backend_;
  std::shared_ptr<detail::loop_shared> shared_;
  clock::time_point epoch_;
  detail::task_core* live_head_ = nullptr;
  const detail::task_core* until_ = nullptr;  // run(task): never block once it is done
  std::size_t live_count_ = 0;
  std::uint64_t iterations_ = 0;
  std::size_t leaked_io_ = 0;
  std::function<void(std::exception_ptr)> exception_handler_;
  void (*before_block_)(void*) = nullptr;
  void (*after_block_)(void*) = nullptr;
  void* block_hook_arg_ = nullptr;
  std::string backend_reason_;
  loop* prev_current_ = nullptr;
  std::uint64_t owner_thread_ = 0;
  unsigned ready_batch_ = 0;
  // loop_options::submit_after in cycle_count() ticks (run_ready_batch) and in ns
  // (the timed batch, which reads the clock anyway); 0: off, or not io_uring.
  std::uint64_t submit_after_ticks_ = 0;
  std::int64_t submit_after_ns_ = 0;
  unsigned coop_budget_ = default_coop_budget;
  bool coop_exhausted_ = false;
  std::int64_t idle_spin_ns_ = 0;
  std::int64_t offload_spin_ns_ = 0;
  std::int64_t remote_watch_until_ns_ = 0;  // expect_remote: spin until then when idle
  std::size_t trim_after_tasks_ = 0;        // loop_options::trim_after_tasks
  std::size_t trim_peak_ = 0;               // most live tasks since the last trim
  std::size_t trim_floor_ = 0;              // live tasks at the last trim
  std::int64_t trim_at_ns_ = 0;             // a burst is over: trim when idle at this time
  backend_kind kind_ = backend_kind::automatic;
  bool stop_ = false;
  bool cut_batch_ = false;  // stop_now(): end the ready batch after the running entry
  bool closing_ = false;
  bool closed_ = false;
  bool running_ = false;
  bool hosted_ = false;  // attached to a host's uv_loop_t

  // Metrics (runtime/loop_metrics.cpp). progress_ (callbacks run) and phase_ are
  // atomics because the stall detector's thread samples them; only this thread
  // writes them, with relaxed stores (plain moves on x86).
  std::atomic<std::uint64_t> progress_{0};
  std::atomic<int> phase_{0};  // 0 not running, 1 running, 2 blocked in the kernel
  std::uint64_t blocking_waits_ = 0;
  std::uint64_t io_completions_ = 0;
  std::uint64_t remote_posts_ = 0;
  std::uint64_t tasks_spawned_ = 0;
  std::uint64_t task_polls_ = 0;
  std::uint64_t ops_submitted_[loop_metrics::op_kinds] = {};
  std::uint64_t poll_hist_[loop_metrics::poll_buckets] = {};
  std::uint64_t poll_ns_ = 0;
  std::int64_t now_ns_ = 0;          // the loop clock as last read (task dumps' "since")
  bool now_fresh_ = false;           // now_ns_ was read just before this iteration
  std::int64_t running_ns_ = 0;      // time inside running scopes, closed ones
  std::int64_t run_started_ns_ = 0;  // when the current running scope began
  std::int64_t idle_ns_ = 0;
  unsigned id_ = 0;
  std::atomic<int> tid_{0};  // the loop thread's kernel tid (stall backtraces)
  bool metrics_on_ = true;
  bool poll_times_ = false;
  std::shared_ptr<detail::stall_entry> stall_;  // null while the stall detector is off
};

namespace detail {

/// The loop's internals that eddy's own awaitables use (detail, not API): every
/// function is for the loop thread only.
struct loop_access {
  static void schedule(loop& l, task_core* c, std::coroutine_handle<> h) { l.schedule(c, h); }
  static void coop_yield(loop& l, task_core* c, std::coroutine_handle<> h) { l.coop_yield(c, h); }
  static timer_wheel& timers(loop& l) noexcept { return l.wheel_; }
  static backend& io(loop& l) noexcept { return *l.backend_; }
  static std::int64_t clock_ns(const loop& l) noexcept { return l.clock_ns(); }
  static std::int64_t to_ns(const loop& l, clock::time_point t) noexcept { return l.to_loop_ns(t); }
  static void unlink_live(loop& l, task_core* c) noexcept { l.unlink_live(c); }
  static void call_soon_entry(loop& l, void (*fn)(void*, void*, bool), void* a) {
    l.call_soon_entry(fn, a);
  }
  static void expect_remote(loop& l, std::int64_t within_ns) noexcept { l.expect_remote(within_ns); }
};

/// Queues the resumption of `h` (a task of core `c`, or nullptr) on `l`.
inline void loop_schedule(loop& l, task_core* c, std::coroutine_handle<> h) {
  loop_access::schedule(l, c, h);
}
inline timer_wheel& loop_timers(loop& l) noexcept { return loop_access::timers(l); }
inline backend& loop_io(loop& l) noexcept { return loop_access::io(l); }
inline std::int64_t loop_clock_ns(const loop& l) noexcept { return loop_access::clock_ns(l); }
inline std::int64_t loop_to_ns(const loop& l, clock::time_point t) noexcept {
  return loop_access::to_ns(l, t);
}
inline void loop_unlink_live(loop& l, task_core* c) noexcept { loop_access::unlink_live(l, c); }
/// A cross-thread result (an offloaded call) is due soon: when the loop runs out
/// of other work before `within_ns` has passed, it watches its cross-thread queue
/// instead of blocking (loop_options::offload_spin caps it; 0 disables).
inline void loop_expect_remote(loop& l, std::int64_t within_ns) noexcept {
  loop_access::expect_remote(l, within_ns);
}

}  // namespace detail

/// Starts `t` as a new task on the running loop and returns its join handle.
/// The task starts on a later turn of the loop (never inline).
///
/// **Thread safety:** loop thread only (use call_soon_threadsafe from elsewhere).
/// **Cancel safety:** not a suspension point.
template <class T>
join_handle<T> spawn(task<T> t, std::source_location site = std::source_location::current()) {
  return loop::current().spawn(std::move(t), site);
}

template <class T>
join_handle<T> loop::spawn(task<T> t, std::source_location site) {
  check_open("spawn");
  if (!t.valid()) detail::throw_empty_task();
  auto h = t.release();
  try {
    detail::task_core* c = start(h, &h.promise());
    c->site_ = site;
    return join_handle<T>(c);
  } catch (...) {
    h.destroy();
    throw;
  }
}

template <class T>
T loop::run(task<T> main, std::source_location site) {
  check_not_hosted("run");  // before spawning: a refused run starts nothing
  join_handle<T> h = spawn(std::move(main), site);
  run_until(h.core());
  return detail::take_result<T>(h.core());
}

template <class F>
void loop::call_soon(F&& f) {
  check_open("call_soon");
  using node_t = callback_node<std::decay_t<F>>;
  auto* n = detail::pool_new<node_t>(node_t{std::forward<F>(f)});
  ready_.push(&node_t::entry, n, nullptr);
  if (hosted_ && !running_) poke_host();
}

template <class Rep, class Period, class F>
timer_handle loop::call_later(std::chrono::duration<Rep, Period> delay, F&& f) {
  if (delay < delay.zero()) throw std::invalid_argument("eddy::loop::call_later: negative delay");
  const auto d = std::chrono::ceil<std::chrono::nanoseconds>(delay);
  return call_at(clock::now() + d, std::forward<F>(f));
}

template <class F>
timer_handle loop::call_at(clock::time_point when, F&& f) {
  check_open("call_at");
  using fn_t = std::decay_t<F>;
  struct typed final : timer_handle::node {
    explicit typed(fn_t&& fn) : f(std::move(fn)) {}
    fn_t f;
  };
  auto* n = detail::pool_new<typed>(fn_t(std::forward<F>(f)));
  n->invoke = [](timer_handle::node* b) { static_cast<typed*>(b)->f(); };
  n->destroy = [](timer_handle::node* b) noexcept { detail::pool_delete(static_cast<typed*>(b)); };
  return arm_callback(n, to_loop_ns(when));
}

}  // namespace eddy
