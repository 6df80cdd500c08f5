// eddy::loop. The iteration (DESIGN.md §3), in this order:
//  1. drain the cross-thread queue, then run the ready queue: FIFO, at most a
//     budget of entries (ready_batch, default 256; tokio polls its driver every 61
//     tasks for the same reason), so a task that keeps rescheduling itself cannot
//     starve timers or I/O. Work queued during the batch may run in it: a spawned
//     task and its joiner finish in one turn instead of two. Each resumption gets
//     a budget of inline I/O completions (coop_budget); a task that spends it is
//     queued again and ends the batch, so its next run comes after steps 2 and 3
//     (tokio defers a task out of budget past its driver's poll the same way);
//  2. advance the timer wheel: due timers move to the ready queue;
//  3. I/O: if anything is ready, reap completions without blocking (and only when
//     the backend owns operations); otherwise announce sleep (Dekker handshake with
//     posters, see remote_queue.hpp) and block in the backend until the next timer,
//     a completion or a wakeup, then advance the wheel again.
#include <signal.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <mutex>
#include <thread>

#include <eddy/runtime/detail/op_awaiter.hpp>
#include <eddy/runtime/loop.hpp>

#include "io/backend.hpp"
#include "runtime/cycle_clock.hpp"
#include "runtime/log.hpp"
#include "runtime/loop_metrics.hpp"
#include "runtime/memory_trim.hpp"

namespace eddy {

namespace {

[[gnu::tls_model("initial-exec")]] constinit thread_local loop* tls_current_loop = nullptr;

std::uint64_t this_thread_id() noexcept {
  return std::hash<std::thread::id>{}(std::this_thread::get_id()) | 1;
}

void fire_timer_callback(detail::timer_node* tn) noexcept;

void run_timer_callback(void* a, void*, bool run) {
  auto* n = static_cast<timer_handle::node*>(a);
  struct guard {
    timer_handle::node* n;
    ~guard() { n->release(); }
  } g{n};
  const bool go = run && !n->cancelled;
  n->fired = true;
  n->cancelled = true;  // from now on the callback is no longer pending
  if (go) {
    detail::tls_current_core = nullptr;
    n->invoke(n);
  }
}

void fire_timer_callback(detail::timer_node* tn) noexcept {
  auto* n = detail::outer_of(tn, &timer_handle::node::tn);
  detail::loop_access::call_soon_entry(*n->owner, &run_timer_callback, n);
}

void check_options(const loop_options& o) {
  auto pow2 = [](unsigned v) { return v != 0 && (v & (v - 1)) == 0; };
  if (!pow2(o.uring_entries) || o.uring_entries < 2 || o.uring_entries > 32768)
    throw std::invalid_argument("eddy::loop_options::uring_entries must be a power of two in 2..32768, got " +
                                std::to_string(o.uring_entries));
  if (o.uring_cq_entries != 0 &&
      (!pow2(o.uring_cq_entries) || o.uring_cq_entries < o.uring_entries || o.uring_cq_entries > 65536))
    throw std::invalid_argument(
        "eddy::loop_options::uring_cq_entries must be 0 or a power of two in uring_entries..65536, got " +
        std::to_string(o.uring_cq_entries));
  if (o.recv_limit < 16 * 1024 || o.recv_limit > 4 * 1024 * 1024)
    throw std::invalid_argument("eddy::loop_options::recv_limit must be 16384..4194304 bytes, got " +
                                std::to_string(o.recv_limit));
  if (o.send_zerocopy_min != 0 && (o.send_zerocopy_min < 4096 || o.send_zerocopy_min > (std::size_t{1} << 30)))
    throw std::invalid_argument("eddy::loop_options::send_zerocopy_min must be 0 or 4096..1073741824 bytes, got " +
                                std::to_string(o.send_zerocopy_min));
  if (o.uring_buffers != 0 && (!pow2(o.uring_buffers) || o.uring_buffers > 32768))
    throw std::invalid_argument(
        "eddy::loop_options::uring_buffers must be 0 or a power of two in 1..32768, got " +
        std::to_string(o.uring_buffers));
  if (o.uring_buffer_size != 0 && (o.uring_buffer_size < 4096 || o.uring_buffer_size > (16u << 20) ||
                                   o.uring_buffer_size % 4096 != 0))
    throw std::invalid_argument(
        "eddy::loop_options::uring_buffer_size must be 0 or a multiple of 4096 in 4096..16777216, got " +
        std::to_string(o.uring_buffer_size));
  if (static_cast<std::uint64_t>(o.uring_buffers ? o.uring_buffers : 256) *
          (o.uring_buffer_size ? o.uring_buffer_size : 256 * 1024) >
      (std::uint64_t{1} << 30))
    throw std::invalid_argument(
        "eddy::loop_options: uring_buffers x uring_buffer_size must be at most 1 GiB, got " +
        std::to_string(o.uring_buffers) + " x " + std::to_string(o.uring_buffer_size));
  if (o.idle_spin < std::chrono::microseconds(0) || o.idle_spin > std::chrono::microseconds(1000))
    throw std::invalid_argument("eddy::loop_options::idle_spin must be 0..1000 us, got " +
                                std::to_string(o.idle_spin.count()) + " us");
  if (o.offload_spin < std::chrono::microseconds(0) || o.offload_spin > std::chrono::microseconds(1000))
    throw std::invalid_argument("eddy::loop_options::offload_spin must be 0..1000 us, got " +
                                std::to_string(o.offload_spin.count()) + " us");
  if (o.coop_budget > 1'000'000)
    throw std::invalid_argument("eddy::loop_options::coop_budget must be at most 1000000 (0: the default, 128), got " +
                                std::to_string(o.coop_budget));
  if (static_cast<unsigned>(o.uring_features) > static_cast<unsigned>(uring_feature_set::baseline))
    throw std::invalid_argument("eddy::loop_options::uring_features must be from_env, all or baseline, got " +
                                std::to_string(static_cast<unsigned>(o.uring_features)));
  if (o.trim_after_tasks > 100'000'000)
    throw std::invalid_argument("eddy::loop_options::trim_after_tasks must be at most 100000000, got " +
                                std::to_string(o.trim_after_tasks));
  if (o.submit_after < std::chrono::microseconds(0) || o.submit_after > std::chrono::microseconds(10'000))
    throw std::invalid_argument("eddy::loop_options::submit_after must be 0..10000 us, got " +
                                std::to_string(o.submit_after.count()) + " us");
  if (o.ready_batch > 1'000'000)
    throw std::invalid_argument("eddy::loop_options::ready_batch must be at most 1000000, got " +
                                std::to_string(o.ready_batch));
}

// loop_options::uring_features, with from_env resolved through EDDY_URING_FEATURES.
uring_feature_set uring_features_from(uring_feature_set f) {
  if (f != uring_feature_set::from_env) return f;
  const char* env = std::getenv("EDDY_URING_FEATURES");
  if (env == nullptr || *env == '\0' || std::strcmp(env, "all") == 0) return uring_feature_set::all;
  if (std::strcmp(env, "baseline") == 0) return uring_feature_set::baseline;
  throw std::invalid_argument(std::string("EDDY_URING_FEATURES must be all or baseline, got '") +
                              env + "'");
}

}  // namespace

// SIGPIPE must never kill the process (DESIGN.md §5). Sockets get MSG_NOSIGNAL on
// every send, but a write into a pipe whose reader is gone raises SIGPIPE whatever
// the flags, on io_uring too. So, as Rust's and Python's runtimes do at start-up, the
// first loop sets SIGPIPE to ignored if it is still at its default; a program that
// installed its own disposition keeps it. Writers then see EPIPE.
void ignore_sigpipe_once() noexcept {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction old {};
    if (::sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL &&
        !(old.sa_flags & SA_SIGINFO)) {
      ::signal(SIGPIPE, SIG_IGN);
    }
  });
}

loop::loop(loop_options opts) : epoch_(clock::now()) {
  check_options(opts);
  ignore_sigpipe_once();
  ready_batch_ = opts.ready_batch;
  coop_budget_ = opts.coop_budget != 0 ? opts.coop_budget : default_coop_budget;
  trim_after_tasks_ = opts.trim_after_tasks;
  metrics_on_ = opts.metrics;
  poll_times_ = opts.task_poll_times;
  id_ = detail::next_loop_id();
  idle_spin_ns_ = std::chrono::duration_cast<std::chrono::nanoseconds>(opts.idle_spin).count();
  offload_spin_ns_ = std::chrono::duration_cast<std::chrono::nanoseconds>(opts.offload_spin).count();
  backend_kind requested = opts.backend;
  if (opts.uv_loop != nullptr) {
    if (requested != backend_kind::from_env && requested != backend_kind::automatic &&
        requested != backend_kind::libuv)
      throw std::invalid_argument(
          std::string("eddy::loop_options::uv_loop needs the libuv backend; backend is ") +
          std::string(eddy::backend_name(requested)));
    requested = backend_kind::libuv;
  }
  detail::backend_config cfg;
  cfg.uring_entries = opts.uring_entries;
  cfg.uring_cq_entries = opts.uring_cq_entries;
  cfg.uring_baseline = uring_features_from(opts.uring_features) == uring_feature_set::baseline;
  cfg.uv_host_loop = opts.uv_loop;
  cfg.uring_buffers = opts.uring_buffers;
  cfg.uring_buffer_size = opts.uring_buffer_size;
  cfg.uring_incremental = opts.uring_incremental;
  cfg.recv_limit = opts.recv_limit;
  cfg.send_zerocopy_min = opts.send_zerocopy_min;
  backend_ = detail::make_backend(requested, cfg, backend_reason_);
  backend_->set_recv_limit(opts.recv_limit);
  if (backend_->queues_submissions() && opts.submit_after.count() != 0) {
    submit_after_ticks_ = static_cast<std::uint64_t>(opts.submit_after.count()) * detail::cycles_per_us();
    submit_after_ns_ = opts.submit_after.count() * 1000;
  }
  if (opts.uv_loop != nullptr) backend_reason_ = "attached to the host's uv_loop_t";
  if (cfg.uring_baseline && backend_->kind() == backend_kind::io_uring)
    backend_reason_ += "; io_uring features limited to the Linux 5.11 baseline";
  kind_ = backend_->kind();
  shared_ = std::make_shared<detail::loop_shared>();
  shared_->be = backend_.get();
  if (backend_->hosted()) {
    hosted_ = true;
    // The host's uv_run may be blocked whenever eddy is not in a turn: every post
    // wakes it (the wakeup token still coalesces bursts).
    shared_->sleeping.store(true, std::memory_order_seq_cst);
    backend_->drive({[](void* self) noexcept {
                       detail::host_step st;
                       host_turn(self, st.next_ns, st.live);
                       return st;
                     },
                     this});
  }
  stall_ = detail::stall_arm(*this, opts);  // last: a throw above leaves nothing armed
  detail::log_debug("loop %p: backend %.*s (%s)", static_cast<void*>(this),
                    static_cast<int>(backend_name().size()), backend_name().data(),
                    backend_reason_.c_str());
}

loop::~loop() {
  try {
    close();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "eddy: loop::~loop: close failed: %s\n", e.what());
  }
}

std::string_view loop::backend_name() const noexcept { return eddy::backend_name(kind_); }

loop& loop::current() {
  if (tls_current_loop == nullptr)
    throw std::logic_error("eddy: no running loop on this thread (call from inside eddy::run or loop::run)");
  return *tls_current_loop;
}

loop* loop::current_or_null() noexcept { return tls_current_loop; }

void loop::enter_thread() {
  const std::uint64_t me = this_thread_id();
  if (owner_thread_ == 0) {
    owner_thread_ = me;
    tid_.store(detail::current_tid(), std::memory_order_relaxed);
    backend_->attach_thread();
  } else if (owner_thread_ != me) {
    throw std::logic_error("eddy::loop: run from a thread other than the one that first ran it");
  }
  prev_current_ = tls_current_loop;
  tls_current_loop = this;
  running_ = true;
  note_running(true);
}

void loop::leave_thread() noexcept {
  note_running(false);
  tls_current_loop = prev_current_;
  running_ = false;
  detail::tls_current_core = nullptr;
}

detail::task_core* loop::start(std::coroutine_handle<> frame, detail::promise_base* p) {
  auto* c = detail::pool_new<detail::task_core>();
  try {
    ready_.push(&resume_entry, frame.address(), c);  // on throw the caller destroys the frame
  } catch (...) {
    detail::pool_delete(c);
    throw;
  }
  if (hosted_ && !running_) backend_->poke();
  c->loop_ = this;
  c->promise_ = p;
  c->frame_ = frame.address();
  c->spawned_ns_ = c->last_run_ns_ = now_ns_;
  c->scheduled_ = true;
  ++tasks_spawned_;
  p->core_ = c;
  link_live(c);
  return c;
}

timer_handle loop::arm_callback(timer_handle::node* n, std::int64_t deadline_ns) {
  n->owner = this;
  n->tn.fire = &fire_timer_callback;
  wheel_.arm(n->tn, deadline_ns);
  return timer_handle(n);
}

void loop::call_soon_entry(void (*fn)(void*, void*, bool), void* a) {
  ready_.push(fn, a, nullptr);
  if (hosted_ && !running_) poke_host();
}

void loop::poke_host() noexcept { backend_->poke(); }

bool detail::submit_op(loop& l, io_op& op) {
  const auto k = static_cast<std::size_t>(op.code);
  ++l.ops_submitted_[k < loop_metrics::op_kinds ? k : loop_metrics::op_kinds - 1];
  return l.backend_->submit(op);
}

void detail::cancel_op(loop& l, io_op& op) noexcept { l.backend_->cancel(op); }

void loop::expect_remote(std::int64_t within_ns) noexcept {
  if (offload_spin_ns_ == 0) return;
  const std::int64_t until = clock_ns() + (within_ns < offload_spin_ns_ ? within_ns : offload_spin_ns_);
  if (until > remote_watch_until_ns_) remote_watch_until_ns_ = until;
}

void loop::set_exception_handler(std::function<void(std::exception_ptr)> h) {
  exception_handler_ = std::move(h);
}

void loop::report_exception(std::exception_ptr e) noexcept {
  if (exception_handler_) {
    try {
      exception_handler_(e);
      return;
    } catch (...) {
      std::fputs("eddy: the exception handler threw; falling back to stderr\n", stderr);
    }
  }
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "eddy: unhandled exception in a task or callback: %s\n", ex.what());
  } catch (const cancelled_error&) {
  } catch (...) {
    std::fputs("eddy: unhandled non-standard exception in a task or callback\n", stderr);
  }
}

io_capabilities loop::io_caps() const noexcept {
  io_capabilities c;
  if (backend_) {
    const detail::backend_caps& b = backend_->caps();
    c.batched_submission = b.batched_submission;
    c.poll_holds_file = b.poll_holds_file;
    c.receive_read_ahead = b.multishot_recv;
  }
  return c;
}

loop_stats loop::stats() const noexcept {
  loop_stats s;
  s.live_tasks = live_count_;
  s.in_flight_io = backend_ ? backend_->in_flight() : 0;
  s.armed_timers = wheel_.size();
  s.ready = ready_.size();
  s.iterations = iterations_;
  s.leaked_io = leaked_io_;
  s.wakeups = shared_ ? shared_->wakeups.load(std::memory_order_relaxed) : 0;
  return s;
}

void loop::drain_remote() {
  if (shared_->head.load(std::memory_order_relaxed) == nullptr) return;
  detail::remote_node* n = shared_->take_all();
  std::uint64_t progress = progress_.load(std::memory_order_relaxed);
  while (n != nullptr) {
    detail::remote_node* next = n->next;
    detail::tls_current_core = nullptr;
    ++remote_posts_;
    progress_.store(++progress, std::memory_order_relaxed);
    try {
      n->fn(n, true);
    } catch (...) {
      report_exception(std::current_exception());
    }
    n = next;
  }
}

std::size_t loop::run_ready_batch() {
  if (poll_times_) return run_ready_batch_timed();
  const std::size_t budget = ready_batch_ != 0 ? ready_batch_ : default_ready_budget;
  // After stop() the batch ends with what was queued when it began (asyncio's
  // iteration); after stop_now() it ends at once. One load of stop_ per entry.
  const std::size_t queued = ready_.size();
  std::size_t n = budget;
  coop_exhausted_ = false;  // a yield outside a batch (a posted callback) ends none
  // One relaxed store per entry: the stall detector's heartbeat and the
  // `callbacks` metric.
  std::uint64_t progress = progress_.load(std::memory_order_relaxed);
  // loop_options::submit_after: queued I/O goes out after an entry that ran this
  // long, or once the batch has run 40 times as long (io_uring only; 0 otherwise).
  const std::uint64_t submit_after = submit_after_ticks_;
  std::uint64_t last = submit_after != 0 ? detail::cycle_count() : 0;
  std::uint64_t submitted_at = last;
  while (n != 0 && !ready_.empty()) {
    if (stop_ && (cut_batch_ || budget - n >= queued)) break;
    --n;
    const detail::ready_entry e = ready_.pop();
    detail::tls_coop_left = coop_budget_;
    progress_.store(++progress, std::memory_order_relaxed);
    try {
      e.fn(e.a, e.b, true);
    } catch (...) {
      report_exception(std::current_exception());
    }
    if (submit_after != 0) {
      const std::uint64_t now = detail::cycle_count();
      if (now - last >= submit_after || now - submitted_at >= submit_after * batch_submit_factor) {
        backend_->flush();
        submitted_at = now;
      }
      last = now;
    }
    if (coop_exhausted_) {
      // A task ran out of budget (it is queued again): timers and I/O first.
      coop_exhausted_ = false;
      break;
    }
  }
  detail::tls_current_core = nullptr;
  cut_batch_ = false;
  return budget - n;
}

void loop::run_once(bool block) {
  check_not_hosted("run_once");
  running_scope scope(*this, "run_once");
  iterate(block, false);
}

void loop::iterate(bool block, bool block_after_work) {
  ++iterations_;
  if (live_count_ > trim_peak_) trim_peak_ = live_count_;
  // One clock read per iteration for task ages, skipped where the running scope
  // or the last wait read it a moment ago: run_once pays two, not three.
  if (metrics_on_ && !std::exchange(now_fresh_, false)) now_ns_ = clock_ns();
  drain_remote();
  const std::size_t ran = run_ready_batch();
  if (!wheel_.empty()) wheel_.advance(clock_ns());

  constexpr unsigned budget = 1024;
  const bool must_not_block = !block || (!block_after_work && ran != 0) || stop_ || !ready_.empty() ||
                              (until_ != nullptr && until_->done_) ||
                              (closing_ && live_count_ == 0) ||
                              shared_->head.load(std::memory_order_relaxed) != nullptr ||
                              shared_->stop_requested.load(std::memory_order_relaxed);
  if (must_not_block) {
    if (backend_->in_flight() != 0) io_completions_ += backend_->reap(budget);
    return;
  }
  // Nothing to do: before blocking, watch the cross-thread queue for a while if
  // asked to (idle_spin), or if an offloaded result is due (offload_spin).
  if (idle_spin_ns_ != 0 || remote_watch_until_ns_ != 0) {
    const std::int64_t now = clock_ns();
    std::int64_t until = idle_spin_ns_ != 0 ? now + idle_spin_ns_ : 0;
    if (remote_watch_until_ns_ > until) until = remote_watch_until_ns_;
    remote_watch_until_ns_ = 0;
    if (until > now) {
      phase_.store(2, std::memory_order_relaxed);  // watching, not stalled
      const bool work = spin_for_remote_work(until);
      phase_.store(1, std::memory_order_relaxed);
      if (work) return;
    }
  }
  std::int64_t timeout = -1;
  if (!wheel_.empty()) {
    const std::uint64_t t = wheel_.next_tick();
    const std::int64_t now = clock_ns();
    const std::int64_t at = static_cast<std::int64_t>(t) * detail::timer_wheel::tick_ns;
    timeout = at > now ? at - now : 0;
  }
  if (trim_after_tasks_ != 0) {
    // A burst ends in waves: after a trim with tasks still live, trim again each
    // time those have halved (down to a few dozen), so the last wave is given
    // back too.
    if (live_count_ + trim_after_tasks_ <= trim_peak_ || (trim_floor_ >= 64 && live_count_ * 2 <= trim_floor_))
      trim_when_idle(timeout);
    else
      trim_at_ns_ = 0;  // busy again before the trim: the idle wait starts over
  }
  shared_->sleeping.store(true, std::memory_order_seq_cst);
  if (shared_->head.load(std::memory_order_seq_cst) != nullptr ||
      shared_->stop_requested.load(std::memory_order_seq_cst)) {
    shared_->sleeping.store(hosted_, std::memory_order_relaxed);
    return;
  }
  {
    // The after hook runs on every way out of the wait, a throw included: an
    // embedding that released a lock (Python: the GIL) must get it back before
    // anything else runs on this thread.
    struct block_scope {
      loop& l;
      explicit block_scope(loop& lp) : l(lp) {
        if (l.before_block_ != nullptr) l.before_block_(l.block_hook_arg_);
      }
      ~block_scope() {
        l.phase_.store(1, std::memory_order_relaxed);
        if (l.after_block_ != nullptr) l.after_block_(l.block_hook_arg_);
        l.shared_->sleeping.store(l.hosted_, std::memory_order_relaxed);
      }
    } scope(*this);
    const std::int64_t wait_start = metrics_on_ ? clock_ns() : 0;
    phase_.store(2, std::memory_order_relaxed);
    io_completions_ += backend_->wait(timeout, budget);
    ++blocking_waits_;
    if (metrics_on_) {
      now_ns_ = clock_ns();
      now_fresh_ = true;
      idle_ns_ += now_ns_ - wait_start;
    }
  }
  if (!wheel_.empty()) wheel_.advance(clock_ns());
}

// A burst is over (live tasks fell by trim_after_tasks from their peak) and the
// loop is about to block: trim once it has been idle for trim_idle_ns, waking
// for it if nothing else would (memory_trim.hpp).
void loop::trim_when_idle(std::int64_t& timeout) noexcept {
  const std::int64_t now = clock_ns();
  if (trim_at_ns_ == 0) trim_at_ns_ = now + detail::trim_idle_ns;
  if (now >= trim_at_ns_) {
    backend_->release_idle_memory();
    detail::release_idle_memory();
    trim_peak_ = live_count_;
    trim_floor_ = live_count_;
    trim_at_ns_ = 0;
    return;
  }
  if (timeout < 0 || timeout > trim_at_ns_ - now) timeout = trim_at_ns_ - now;
}

loop::running_scope::running_scope(loop& l, const char* what, const detail::task_core* until) : l_(l) {
  if (l.running_) throw std::logic_error(std::string("eddy::loop::") + what + ": the loop is already running");
  if (l.closed_) throw loop_closed_error(what);
  l.enter_thread();
  l.until_ = until;
}

loop::running_scope::~running_scope() {
  l_.until_ = nullptr;
  if (l_.backend_ != nullptr) l_.backend_->settle();
  l_.leave_thread();
}

// The idle watch (idle_spin, offload_spin): the loop has nothing else to do, so
// watch the cross-thread queue (one relaxed load per round, no system call) until
// work arrives, a timer falls due, I/O completes, or `until_ns`. Completions are
// checked every 64 rounds through backend::completions_pending(), which is a
// memory read on io_uring and a poll(2) of the epoll fd; any that are waiting are
// reaped at once, so a watch never delays I/O by more than a few microseconds.
// Returns true when there is work to run.
bool loop::spin_for_remote_work(std::int64_t until_ns) {
  std::int64_t limit = until_ns;
  if (!wheel_.empty()) {
    const auto due = static_cast<std::int64_t>(wheel_.next_tick()) * detail::timer_wheel::tick_ns;
    if (due < limit) limit = due;
  }
  for (unsigned round = 0;; ++round) {
    if (shared_->head.load(std::memory_order_relaxed) != nullptr ||
        shared_->stop_requested.load(std::memory_order_relaxed))
      return true;
    if ((round & 63) == 63) {
      if (backend_->completions_pending()) {
        const unsigned got = backend_->reap(1024);
        io_completions_ += got;
        if (got != 0) return true;
      }
      if (!ready_.empty()) return true;
      if (clock_ns() >= limit) return false;
    }
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
}

void loop::check_not_hosted(const char* what) const {
  if (hosted_)
    throw std::logic_error(std::string("eddy::loop::") + what +
                           ": this loop is attached to a host's uv_loop_t (loop_options::uv_loop); "
                           "spawn tasks with loop::spawn and let the host call uv_run");
}

// One turn for a host's event loop: what iterate() does before it would block.
// Outside close() (which drives the host loop itself) and never re-entered.
void loop::host_turn(void* self, std::int64_t& next_ns, bool& live) noexcept {
  loop& l = *static_cast<loop*>(self);
  next_ns = -1;
  live = l.live_count_ != 0;
  if (l.running_ || l.closed_) return;
  try {
    running_scope scope(l, "host turn");
    ++l.iterations_;
    l.drain_remote();
    l.run_ready_batch();
    if (!l.wheel_.empty()) l.wheel_.advance(l.clock_ns());
  } catch (...) {
    // A turn from the wrong thread: the host runs its loop on another thread
    // than the one that first ran this eddy loop.
    l.report_exception(std::current_exception());
    return;
  }
  live = l.live_count_ != 0;
  if (!l.ready_.empty() || l.shared_->head.load(std::memory_order_seq_cst) != nullptr) {
    next_ns = 0;
  } else if (!l.wheel_.empty()) {
    const std::int64_t at =
        static_cast<std::int64_t>(l.wheel_.next_tick()) * detail::timer_wheel::tick_ns;
    const std::int64_t now = l.clock_ns();
    next_ns = at > now ? at - now : 0;
  }
}

void loop::run_until(detail::task_core* main) {
  check_not_hosted("run");
  running_scope scope(*this, "run", main);
  while (!main->done_) {
    if (stop_ || shared_->stop_requested.exchange(false)) {
      stop_ = false;
      cut_batch_ = false;
      throw std::runtime_error("eddy::loop::run: the loop was stopped before the task finished");
    }
    iterate(true);
  }
}

void loop::run_forever() {
  check_not_hosted("run_forever");
  running_scope scope(*this, "run_forever");
  while (!stop_ && !shared_->stop_requested.exchange(false)) iterate(true);
  stop_ = false;
  cut_batch_ = false;
}

void loop::close() {
  if (closed_) return;
  running_scope scope(*this, "close");

  // 1. Cancel every live task (each once, including tasks spawned while closing)
  //    and run until all have finished.
  closing_ = true;
  while (live_count_ != 0) {
    for (detail::task_core* c = live_head_; c != nullptr; c = c->live_next_) {
      if (!c->close_cancelled_) {
        c->close_cancelled_ = true;
        c->request_cancel();
      }
    }
    iterate(true);
  }
  // 1b. Ops no task awaits (a receiver's multishot recv whose socket was
  //     destroyed: close_now cancelled it, its owner state waits for the final
  //     completion) may still be in flight: reap them, bounded to about 1 s.
  for (int i = 0; i < 1000 && backend_->in_flight() != 0; ++i) backend_->wait(1'000'000, 1024);
  // 2. Run what finishing those tasks queued, once, then refuse new work.
  run_ready_batch();
  closed_ = true;
  while (!ready_.empty()) {
    const detail::ready_entry e = ready_.pop();
    e.fn(e.a, e.b, false);
  }
  wheel_.clear([](detail::timer_node* tn) {
    if (tn->fire == &fire_timer_callback) {
      auto* n = detail::outer_of(tn, &timer_handle::node::tn);
      n->cancelled = true;
      n->release();
    }
  });
  // 3. No poster may touch the backend after this point.
  shared_->closed.store(true, std::memory_order_seq_cst);
  // seq_cst, not acquire: with the store of `closed` above this is the loop's half
  // of a Dekker handshake (posters: increment `posters`, then load `closed`), and
  // only seq_cst on both sides forbids each missing the other's write.
  while (shared_->posters.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
  drain_remote();
  leaked_io_ = backend_->in_flight();
  if (leaked_io_ != 0) {
    std::fprintf(stderr, "eddy: loop::close: %zu I/O operations still owned by the backend\n",
                 backend_->in_flight());
  }
  shared_->be = nullptr;
  backend_.reset();
  stall_.reset();
}

bool timer_handle::cancel() noexcept {
  if (n_ == nullptr || n_->cancelled) return false;
  n_->cancelled = true;
  if (detail::timer_wheel::armed(n_->tn)) {
    detail::loop_timers(*n_->owner).cancel(n_->tn);
    n_->release();  // the wheel's reference
  }
  return true;
}

bool timer_handle::pending() const noexcept { return n_ != nullptr && !n_->cancelled; }

void timer_handle::reset() noexcept {
  if (n_ != nullptr) std::exchange(n_, nullptr)->release();
}

}  // namespace eddy
