// thread_pool: construction and option checks, submission, stats and shutdown.
//
// Shutdown protocol (shutdown()):
//   1. Close the injection queue and set closed_: outside submissions now throw
//      pool_closed. Workers may still submit (fork-join children, class hand-offs), so
//      jobs already running can finish the work they started.
//   2. Wake every sleeper. A worker that finds no work while closed_ is set exits once
//      no job runs anywhere in the pool (a running job may still fork work that needs
//      the others), else it sleeps; each exiting worker wakes the sleepers to re-check.
//      An elastic pool with no live worker but queued work gets one started, so the
//      work is not stranded.
//   3. Wait (futex on live_) until no worker is live, or the deadline.
//   4. Past the deadline: request stop on the shutdown token, switch workers to
//      discarding (every job they pick up is dropped, its future gets job_cancelled),
//      and drop what the queues hold from this thread. Running jobs are not waited for.
//   5. Join every thread that has exited. The destructor runs the same protocol without
//      a deadline, so it returns only when every thread is joined.
#include <climits>
#include <eddy/sched/thread_pool.hpp>
#include <stdexcept>
#include <string>

#include "sched/class_state.hpp"
#include "sched/futex.hpp"
#include "sched/pool_core.hpp"

namespace eddy {
namespace {

[[noreturn]] void bad_option(const char* what, const std::string& limit, const std::string& got) {
  throw std::invalid_argument(std::string("eddy::thread_pool: pool_options::") + what +
                              " must be " + limit + " (got " + got + ")");
}

const pool_options& checked(const pool_options& o) {
  using std::to_string;
  if (o.name.empty() || o.name.size() > 64)
    bad_option("name", "1 to 64 bytes long", to_string(o.name.size()) + " bytes");
  if (o.threads < 1 || o.threads > max_pool_threads)
    bad_option("threads", "between 1 and " + to_string(max_pool_threads), to_string(o.threads));
  if (o.min_threads > o.threads)
    bad_option("min_threads", "at most threads (" + to_string(o.threads) + ")",
               to_string(o.min_threads));
  if (o.elastic &&
      (o.idle_timeout < std::chrono::milliseconds(1) || o.idle_timeout > std::chrono::hours(1)))
    bad_option("idle_timeout", "between 1 ms and 1 hour",
               to_string(o.idle_timeout.count()) + " ms");
  if (o.spin_before_park < std::chrono::microseconds(0) ||
      o.spin_before_park > std::chrono::milliseconds(10))
    bad_option("spin_before_park", "between 0 and 10 ms",
               to_string(o.spin_before_park.count()) + " us");
  return o;
}

}  // namespace

namespace detail {

pool_core::pool_core(thread_pool& own, const pool_options& opts)
    : owner(own),
      options(checked(opts)),
      slots_(std::make_unique<std::atomic<worker*>[]>(opts.threads)) {
  const std::size_t eager = options.elastic ? options.min_threads : options.threads;
  try {
    for (std::size_t i = 0; i < eager; ++i) spawn_worker(true);
  } catch (...) {
    shutdown(std::chrono::nanoseconds::max());
    for (std::size_t i = 0; i < high_water(); ++i) delete slots_[i].load();
    throw;
  }
}

pool_core::~pool_core() {
  shutdown(std::chrono::nanoseconds::max());
  for (std::size_t i = 0; i < high_water(); ++i) delete slots_[i].load(std::memory_order_relaxed);
}

void pool_core::enqueue(pool_job* job, class_state* cls) {
  const bool inside = current_worker(this) != nullptr;
  if (!inside && closed_.load(std::memory_order_acquire))
    throw pool_closed("eddy::thread_pool '" + options.name + "': submit after shutdown");
  // Stamped here, before a work class's backlog, so queue_wait is what the submitter
  // waited. A clock read never is 0, which marks untimed (forked) jobs.
  if (options.metrics) job->queued_ns_ = steady_ns();
  if (cls) {
    if (!cls->admit(job)) return;  // waits in the class backlog; a finishing job starts it
    // Admitted: the slot is taken, so the job must not be refused any more.
    enqueue_admitted(job, true);
    return;
  }
  enqueue_admitted(job, false);
}

void pool_core::enqueue_admitted(pool_job* job, bool force) {
  if (push_local(job)) return;
  if (!inject_.push(job, force))
    throw pool_closed("eddy::thread_pool '" + options.name + "': submit after shutdown");
  notify_after_push();
}

void pool_core::spawn_worker(bool force) {
  worker* w = nullptr;
  {
    std::lock_guard lock(spawn_mu_);
    if (closed_.load(std::memory_order_acquire) && !force) return;
    if (live_.load(std::memory_order_relaxed) >= options.threads) return;
    // live_ counts live and claimed slots, so below the limit there is an exited slot or
    // room for a new one.
    const std::size_t hw = high_water();
    for (std::size_t i = 0; i < hw && !w; ++i) {
      worker* s = slots_[i].load(std::memory_order_relaxed);
      if (s->state.load(std::memory_order_relaxed) == worker::slot::exited) w = s;
    }
    if (!w) {
      w = new worker(static_cast<std::uint32_t>(hw));
      slots_[hw].store(w, std::memory_order_release);
      high_water_.store(hw + 1, std::memory_order_release);
    }
    w->state.store(worker::slot::claimed, std::memory_order_relaxed);
    live_.fetch_add(1, std::memory_order_relaxed);
    // A new worker starts out searching (see the parking protocol).
    searching_.fetch_add(1, std::memory_order_seq_cst);
  }
  // Joined outside the lock: the previous thread of the slot may still be on its way out
  // and need spawn_mu_ (see park()). Once joined, the new thread is the deque's only owner.
  if (w->thread.joinable()) w->thread.join();
  w->state.store(worker::slot::live, std::memory_order_relaxed);
  try {
    w->thread = std::thread([this, w] { worker_main(*w); });
  } catch (...) {
    std::lock_guard lock(spawn_mu_);
    searching_.fetch_sub(1, std::memory_order_seq_cst);
    live_.fetch_sub(1, std::memory_order_relaxed);
    w->state.store(worker::slot::exited, std::memory_order_relaxed);
    throw;
  }
}

void pool_core::discard_outside(pool_job* job) {
  class_state* cls = job->class_;
  job->discard();
  dropped_any_.store(true, std::memory_order_relaxed);
  discarded_outside_.fetch_add(1, std::memory_order_relaxed);
  if (cls)
    if (pool_job* next = cls->release()) inject_.push(next, true);
}

bool pool_core::drain_and_discard() {
  bool any = false;
  for (;;) {
    pool_job* job = inject_.pop();
    if (!job) job = steal_any(nullptr);
    if (!job) return any;
    discard_outside(job);
    any = true;
  }
}

bool pool_core::shutdown(std::chrono::nanoseconds timeout) {
  if (current_worker(this))
    throw std::logic_error("eddy::thread_pool '" + options.name +
                           "': shutdown from one of its own workers would wait for itself");
  inject_.close();
  closed_.store(true, std::memory_order_release);
  wake_all();
  if (options.elastic && live_.load(std::memory_order_acquire) == 0 && work_visible()) {
    try {
      spawn_worker(true);
    } catch (const std::system_error&) {
      // No thread to run the queued work: it is dropped below, as past a deadline.
    }
  }

  const bool unlimited = timeout == std::chrono::nanoseconds::max();
  const auto deadline = unlimited ? std::chrono::steady_clock::time_point::max()
                                  : std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const std::uint32_t live = live_.load(std::memory_order_acquire);
    if (live == 0) break;
    if (unlimited) {
      sched_detail::futex_wait(live_, live);
      continue;
    }
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= std::chrono::nanoseconds::zero()) break;
    sched_detail::futex_wait(live_, live, left);
  }

  const bool all_exited = live_.load(std::memory_order_acquire) == 0;
  if (!all_exited) {
    // Discarding first: a job that sees the stop request and then looks for its forked
    // children must find them already dropped, not run them.
    discarding_.store(true, std::memory_order_relaxed);
    stop.request_stop();
  }
  // Anything still queued is dropped: past the deadline, or stranded by a submission
  // that raced with close() after the last worker left.
  drain_and_discard();

  if (all_exited) {
    for (std::size_t i = 0; i < high_water(); ++i) {
      std::thread t;
      {
        std::lock_guard lock(spawn_mu_);
        t = std::move(slots_[i].load(std::memory_order_relaxed)->thread);
      }
      if (t.joinable()) t.join();  // outside the lock, as in spawn_worker
    }
  }
  return all_exited && !dropped_any_.load(std::memory_order_relaxed);
}

pool_stats pool_core::stats() const {
  pool_stats s;
  s.threads = live_.load(std::memory_order_relaxed);
  s.parked = sleepers_.load(std::memory_order_relaxed);
  s.queued = inject_.size_hint();
  s.completed = discarded_outside_.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < high_water(); ++i) {
    const worker* w = slots_[i].load(std::memory_order_acquire);
    s.queued += w->deque.size_hint();
    s.running += w->running.load(std::memory_order_relaxed);
    s.stolen += w->stolen.load(std::memory_order_relaxed);
    s.completed += w->executed.load(std::memory_order_relaxed);
    w->queue_wait.read_into(s.queue_wait);
    w->run_time.read_into(s.run_time);
  }
  return s;
}

}  // namespace detail

// ---- thread_pool ------------------------------------------------------------------

thread_pool::thread_pool(const pool_options& options)
    : core_(std::make_unique<detail::pool_core>(*this, options)) {}

thread_pool::thread_pool(std::size_t threads) : thread_pool(pool_options::fixed(threads)) {}

thread_pool::~thread_pool() = default;  // ~pool_core shuts down without a deadline

void thread_pool::enqueue(detail::pool_job* job, work_class* work) {
  detail::class_state* cls = nullptr;
  if (work) {
    if (&work->state_->pool != core_.get())
      throw std::invalid_argument("eddy::thread_pool '" + core_->options.name + "': work_class '" +
                                  work->state_->name + "' belongs to another pool");
    cls = work->state_;
  }
  core_->enqueue(job, cls);
}

bool thread_pool::shutdown_for(std::chrono::nanoseconds timeout) {
  if (timeout < std::chrono::nanoseconds::zero())
    throw std::invalid_argument("eddy::thread_pool::shutdown: timeout must be >= 0 (got " +
                                std::to_string(timeout.count()) + " ns)");
  return core_->shutdown(timeout);
}

pool_stats thread_pool::stats() const {
  return core_->stats();
}
std::size_t thread_pool::max_threads() const noexcept {
  return core_->options.threads;
}
const std::string& thread_pool::name() const noexcept {
  return core_->options.name;
}
std::stop_token thread_pool::shutdown_token() const noexcept {
  return core_->stop.get_token();
}

// ---- work_class ---------------------------------------------------------------------

work_class::work_class(thread_pool& pool, std::string name, std::size_t max_concurrent) {
  if (name.empty() || name.size() > 64)
    throw std::invalid_argument("eddy::work_class: name must be 1 to 64 bytes long (got " +
                                std::to_string(name.size()) + " bytes)");
  if (max_concurrent < 1 || max_concurrent > pool.max_threads())
    throw std::invalid_argument("eddy::work_class '" + name +
                                "': max_concurrent must be between 1 and the pool's threads (" +
                                std::to_string(pool.max_threads()) + ") (got " +
                                std::to_string(max_concurrent) + ")");
  state_ = new detail::class_state(*pool.core_, std::move(name), max_concurrent);
}

work_class::~work_class() {
  state_->unref();
}

const std::string& work_class::name() const noexcept {
  return state_->name;
}
std::size_t work_class::max_concurrent() const noexcept {
  return state_->max;
}
thread_pool& work_class::pool() const noexcept {
  return state_->pool.owner;
}

std::size_t work_class::active() const {
  std::lock_guard lock(state_->mu);
  return state_->active;
}

std::size_t work_class::waiting() const {
  std::lock_guard lock(state_->mu);
  return state_->waiting;
}

}  // namespace eddy
