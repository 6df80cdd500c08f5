// loop::metrics() and the loop_metrics value type (include/eddy/runtime/
// metrics.hpp). The loop keeps its counters as plain members written by its own
// thread; this file only reads them. Busy time is the time spent in running
// scopes (run, run_forever, run_once, a host's turn) minus the time blocked in the
// kernel wait; both come from the clock reads iterate() makes anyway when
// loop_options::metrics is on.
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <exception>

#include <eddy/runtime/detail/remote_queue.hpp>

#include "io/backend.hpp"
#include "runtime/cycle_clock.hpp"
#include "runtime/loop_metrics.hpp"

namespace eddy {

static_assert(detail::op_code_count < loop_metrics::op_kinds,
              "loop_metrics::op_kinds must hold every op code and 'other'");

namespace detail {

unsigned next_loop_id() noexcept {
  static std::atomic<unsigned> next{0};
  return next.fetch_add(1, std::memory_order_relaxed);
}

int current_tid() noexcept { return static_cast<int>(::syscall(SYS_gettid)); }

}  // namespace detail

void loop::note_running(bool on) noexcept {
  // Release: the stall detector reads tid_ and the loop's identity after seeing 1.
  phase_.store(on ? 1 : 0, std::memory_order_release);
  if (!metrics_on_) return;
  const std::int64_t now = clock_ns();
  now_ns_ = now;
  now_fresh_ = on;
  if (on) run_started_ns_ = now;
  else running_ns_ += now - run_started_ns_;
}

// run_ready_batch with each entry timed (loop_options::task_poll_times): two clock
// reads per entry, so it is a separate loop and the default path has no branch per
// entry for it.
std::size_t loop::run_ready_batch_timed() {
  const std::size_t budget = ready_batch_ != 0 ? ready_batch_ : default_ready_budget;
  const std::size_t queued = ready_.size();  // stop(): as in run_ready_batch
  std::size_t n = budget;
  coop_exhausted_ = false;
  std::uint64_t progress = progress_.load(std::memory_order_relaxed);
  std::int64_t t0 = clock_ns();
  // loop_options::submit_after, on the clock this loop reads anyway.
  const std::int64_t submit_after_ns = submit_after_ns_;
  std::int64_t submitted_at = t0;
  while (n != 0 && !ready_.empty()) {
    if (stop_ && (cut_batch_ || budget - n >= queued)) break;
    --n;
    const detail::ready_entry e = ready_.pop();
    detail::tls_coop_left = coop_budget_;
    progress_.store(++progress, std::memory_order_relaxed);
    now_ns_ = t0;
    detail::tls_timed_core = static_cast<detail::task_core*>(e.fn == &resume_entry ? e.b : nullptr);
    try {
      e.fn(e.a, e.b, true);
    } catch (...) {
      report_exception(std::current_exception());
    }
    const std::int64_t t1 = clock_ns();
    if (e.fn == &resume_entry) {
      const auto d = static_cast<std::uint64_t>(t1 - t0);
      poll_ns_ += d;
      std::size_t b = 0;
      for (std::uint64_t us = d / 1000; us > 1 && b + 1 < loop_metrics::poll_buckets; us >>= 1) ++b;
      ++poll_hist_[b];
      // on_root_done cleared it if the task finished (its core may be freed).
      if (detail::tls_timed_core != nullptr) detail::tls_timed_core->poll_ns_ += d;
      detail::tls_timed_core = nullptr;
    }
    if (submit_after_ns != 0 &&
        (t1 - t0 >= submit_after_ns || t1 - submitted_at >= submit_after_ns * batch_submit_factor)) {
      backend_->flush();
      submitted_at = t1;
    }
    t0 = t1;
    if (coop_exhausted_) {  // out of budget: timers and I/O first (run_ready_batch)
      coop_exhausted_ = false;
      break;
    }
  }
  detail::tls_current_core = nullptr;
  cut_batch_ = false;
  return budget - n;
}

loop_metrics loop::metrics() const noexcept {
  loop_metrics m;
  if (metrics_on_) {
    std::int64_t running = running_ns_;
    if (running_) running += clock_ns() - run_started_ns_;
    m.idle_ns = static_cast<std::uint64_t>(idle_ns_);
    m.busy_ns = running > idle_ns_ ? static_cast<std::uint64_t>(running - idle_ns_) : 0;
  }
  m.iterations = iterations_;
  m.blocking_waits = blocking_waits_;
  m.callbacks = progress_.load(std::memory_order_relaxed);
  m.io_completions = io_completions_;
  m.remote_posts = remote_posts_;
  m.wakeups = shared_ ? shared_->wakeups.load(std::memory_order_relaxed) : 0;
  m.tasks_spawned = tasks_spawned_;
  m.stalls = detail::stall_count(stall_.get());
  for (std::size_t i = 0; i < loop_metrics::op_kinds; ++i) m.ops_submitted[i] = ops_submitted_[i];
  for (std::size_t i = 0; i < loop_metrics::poll_buckets; ++i) m.poll_time_hist[i] = poll_hist_[i];
  m.poll_ns = poll_ns_;
  m.task_polls = task_polls_;
  m.live_tasks = live_count_;
  m.ready_depth = ready_.size();
  if (backend_) {
    const detail::op_census& c = backend_->in_flight_ops();
    m.in_flight_io = c.total();
    for (std::size_t i = 0; i < detail::op_code_count; ++i)
      m.in_flight[i] = c.of(static_cast<detail::op_code>(i));
  }
  m.armed_timers = wheel_.size();
  m.loops = 1;
  return m;
}

double loop_metrics::utilization() const noexcept {
  const double total = static_cast<double>(busy_ns) + static_cast<double>(idle_ns);
  return total > 0 ? static_cast<double>(busy_ns) / total : 0.0;
}

double loop_metrics::events_per_iteration() const noexcept {
  return iterations != 0 ? static_cast<double>(callbacks + io_completions) / static_cast<double>(iterations)
                         : 0.0;
}

const char* loop_metrics::op_kind_name(std::size_t i) noexcept {
  static constexpr const char* names[] = {"nop",     "read",    "write",    "readv",        "writev",
                                          "poll",    "close",   "accept",   "connect",      "recv",
                                          "send",    "recvmsg", "sendmsg",  "shutdown",     "splice",
                                          "accept_multi", "recv_multi", "openat", "statx",
                                          "fsync",   "renameat", "unlinkat", "mkdirat"};
  if (i < sizeof names / sizeof names[0]) return names[i];
  return i + 1 == op_kinds ? "other" : "op";
}

loop_metrics loop_metrics::delta(const loop_metrics& e) const noexcept {
  loop_metrics d = *this;
  d.busy_ns -= e.busy_ns;
  d.idle_ns -= e.idle_ns;
  d.iterations -= e.iterations;
  d.blocking_waits -= e.blocking_waits;
  d.callbacks -= e.callbacks;
  d.task_polls -= e.task_polls;
  d.io_completions -= e.io_completions;
  d.remote_posts -= e.remote_posts;
  d.wakeups -= e.wakeups;
  d.tasks_spawned -= e.tasks_spawned;
  d.stalls -= e.stalls;
  for (std::size_t i = 0; i < op_kinds; ++i) d.ops_submitted[i] -= e.ops_submitted[i];
  for (std::size_t i = 0; i < poll_buckets; ++i) d.poll_time_hist[i] -= e.poll_time_hist[i];
  d.poll_ns -= e.poll_ns;
  return d;
}

loop_metrics& loop_metrics::operator+=(const loop_metrics& o) noexcept {
  busy_ns += o.busy_ns;
  idle_ns += o.idle_ns;
  iterations += o.iterations;
  blocking_waits += o.blocking_waits;
  callbacks += o.callbacks;
  task_polls += o.task_polls;
  io_completions += o.io_completions;
  remote_posts += o.remote_posts;
  wakeups += o.wakeups;
  tasks_spawned += o.tasks_spawned;
  stalls += o.stalls;
  for (std::size_t i = 0; i < op_kinds; ++i) ops_submitted[i] += o.ops_submitted[i];
  for (std::size_t i = 0; i < poll_buckets; ++i) poll_time_hist[i] += o.poll_time_hist[i];
  poll_ns += o.poll_ns;
  live_tasks += o.live_tasks;
  ready_depth += o.ready_depth;
  in_flight_io += o.in_flight_io;
  for (std::size_t i = 0; i < op_kinds; ++i) in_flight[i] += o.in_flight[i];
  armed_timers += o.armed_timers;
  loops += o.loops;
  return *this;
}

std::string loop_metrics::summary(std::chrono::nanoseconds over) const {
  char buf[320];
  const double secs = std::chrono::duration<double>(over).count();
  int n = std::snprintf(buf, sizeof buf,
                        "busy %.1f%% iters %llu ev/iter %.1f tasks %zu ready %zu io %zu",
                        100.0 * utilization(), static_cast<unsigned long long>(iterations),
                        events_per_iteration(), live_tasks, ready_depth, in_flight_io);
  std::string out(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
  // The kinds in flight, most first: what the loop is waiting on.
  std::size_t order[op_kinds];
  std::size_t shown = 0;
  for (std::size_t i = 0; i < op_kinds; ++i)
    if (in_flight[i] != 0) order[shown++] = i;
  std::sort(order, order + shown, [this](std::size_t a, std::size_t b) {
    return in_flight[a] != in_flight[b] ? in_flight[a] > in_flight[b] : a < b;
  });
  for (std::size_t k = 0; k < shown; ++k) {
    n = std::snprintf(buf, sizeof buf, "%s%s %zu", k == 0 ? " (" : ", ", op_kind_name(order[k]),
                      in_flight[order[k]]);
    if (n > 0) out.append(buf, static_cast<std::size_t>(n));
  }
  if (shown != 0) out += ')';
  n = std::snprintf(buf, sizeof buf, " timers %zu polls %llu posts %llu", armed_timers,
                    static_cast<unsigned long long>(task_polls),
                    static_cast<unsigned long long>(remote_posts));
  if (n > 0) out.append(buf, static_cast<std::size_t>(n));
  if (secs > 0) {
    n = std::snprintf(buf, sizeof buf, " iters/s %.0f", static_cast<double>(iterations) / secs);
    if (n > 0) out.append(buf, static_cast<std::size_t>(n));
  }
  if (stalls != 0) {
    n = std::snprintf(buf, sizeof buf, " stalls %llu", static_cast<unsigned long long>(stalls));
    if (n > 0) out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

}  // namespace eddy
