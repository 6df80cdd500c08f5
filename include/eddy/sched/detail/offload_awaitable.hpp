// The machinery behind eddy::to_thread, run_cpu and run_in (<eddy/sched/offload.hpp>):
// the heap job a pool runs and the awaitable a coroutine suspends on. Installed,
// not API.
//
// How a result comes back: the awaiting coroutine suspends; the job runs on a worker,
// stores its value or exception in the heap job, and posts a callback to the awaiting
// loop with loop_handle::call_soon_threadsafe; that callback, on the loop thread,
// schedules the coroutine, which reads the result. The job is shared by the awaiter and
// the pool through a reference count of two, so whichever side finishes last frees it.
//
// Fast path: a job that finishes within a few microseconds (a worker was spinning, the
// call was short) would still cost the loop a cross-thread wakeup, about as long again
// as everything else put together on a VM. So the awaiter suspends and tells its loop
// that a result is due soon (detail::loop_expect_remote); a loop that then runs out of
// other work watches its cross-thread queue for up to loop_options::offload_spin
// (default 20 µs) instead of blocking, so the worker's post needs no wakeup. The loop
// never watches while it has ready tasks, due timers or completions to deliver. Whether
// to ask is adaptive: only while the recent round trips on this thread were shorter
// than the budget, so long blocking calls never make the loop spin. `phase` decides, by
// one exchange each, whether the worker must post the completion (the awaiter
// suspended) or the awaiter takes it inline (the job finished before it suspended).
//
// Cancellation (the loop's cancel_hook protocol, runtime/detail/task_core.hpp):
//   - not started yet: the job is marked cancelled (the worker that pops it drops it)
//     and the task resumes at once with eddy::cancelled_error;
//   - running: stop is requested on the job's std::stop_token (if its callable takes
//     one) and the task keeps waiting; when the job returns, its result is delivered
//     and the cancellation stays pending for the task's next await (no result is lost,
//     and nothing the job references by address dies while it runs).
#pragma once

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <eddy/runtime/detail/await_traits.hpp>
#include <eddy/runtime/loop.hpp>
#include <eddy/sched/detail/pool_job.hpp>
#include <eddy/sched/thread_pool.hpp>
#include <exception>
#include <memory>
#include <optional>
#include <stop_token>
#include <tuple>
#include <type_traits>
#include <utility>

namespace eddy {
namespace detail {

/// The part of an offloaded job that does not depend on the callable.
template <class R>
class offload_state : public pool_job {
 public:
  using value_type = value_or_monostate<R>;

  // ---- both threads ----
  std::atomic<std::uint32_t> refs{1};  // the awaiter; the pool's is added at enqueue
  start_gate gate;
  static constexpr std::uint8_t running_v = 0, suspended_v = 1, ready_v = 2;
  std::atomic<std::uint8_t> phase{running_v};
  std::int64_t finished_ns = 0;  // steady_clock, written before phase becomes ready_v

  // ---- written by the worker before it posts, read by the loop after ----
  std::optional<value_type> value;
  std::exception_ptr error;

  // ---- set on the loop thread before enqueue; used by the loop thread only ----
  loop_handle home;
  loop* home_loop = nullptr;
  task_core* core = nullptr;
  std::coroutine_handle<> waiter{};
  bool completed = false;  // the completion callback has scheduled the waiter
  bool abandoned = false;  // the waiter left (cancelled): the result is not wanted
  bool abandon_on_cancel = false;

  void unref() noexcept {
    // acq_rel: the side that frees the job sees everything the other side wrote.
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy();
  }

  virtual void request_stop() noexcept = 0;

 protected:
  virtual void destroy() noexcept = 0;

  /// Worker side, after the value or error is stored: if the awaiter has suspended,
  /// hand the pool's reference to a callback on the awaiting loop; if it is still
  /// watching (fast path), it takes the result itself.
  void finish() noexcept {
    finished_ns = std::chrono::steady_clock::now().time_since_epoch().count();
    // acq_rel: publishes the result to the awaiter (fast path) and, on the slow path,
    // sees the loop-side fields it wrote before suspending.
    if (phase.exchange(ready_v, std::memory_order_acq_rel) == suspended_v)
      post_completion();
    else
      unref();
  }

 private:
  void post_completion() noexcept {
    // If the loop is closed the callback is destroyed unrun, and its destructor drops
    // the reference; the waiting task is then being torn down with its loop.
    try {
      (void)home.call_soon_threadsafe(completion{this});
    } catch (...) {
      // Allocation failure while posting: nobody can be told; free our side.
      unref();
    }
  }

  struct completion {
    offload_state* job;
    explicit completion(offload_state* j) noexcept : job(j) {}
    completion(completion&& o) noexcept : job(std::exchange(o.job, nullptr)) {}
    completion& operator=(completion&&) = delete;
    ~completion() {
      if (job) job->unref();
    }
    void operator()() noexcept {  // on the loop thread
      offload_state* j = std::exchange(job, nullptr);
      if (!j->abandoned) {
        j->completed = true;
        detail::loop_schedule(*j->home_loop, j->core, j->waiter);
      }
      j->unref();
    }
  };
};

template <class R, class Fn, class... Args>
class offload_job final : public offload_state<R> {
  static constexpr bool wants_token = takes_stop_token_v<Fn, Args...>;

 public:
  template <class F, class... A>
  explicit offload_job(F&& f, A&&... args)
      : fn_(std::forward<F>(f)), args_(std::forward<A>(args)...) {}

  void run() noexcept override {
    if (!this->gate.try_start()) {  // cancelled before it started
      this->unref();
      return;
    }
    try {
      this->value.emplace(call());
    } catch (...) {
      this->error = std::current_exception();
    }
    this->finish();
  }

  void discard() noexcept override {
    if (this->gate.try_cancel()) {
      this->error = std::make_exception_ptr(
          job_cancelled("eddy: offloaded job dropped by thread_pool shutdown"));
      this->finish();
    } else {
      this->unref();
    }
  }

  void request_stop() noexcept override {
    if constexpr (wants_token) stop_.request_stop();
  }

 private:
  void destroy() noexcept override { delete this; }

  value_or_monostate<R> call() {
    auto invoke = [this](auto&&... a) -> decltype(auto) {
      if constexpr (wants_token)
        return std::invoke(std::move(fn_), stop_.get_token(), std::move(a)...);
      else
        return std::invoke(std::move(fn_), std::move(a)...);
    };
    if constexpr (std::is_void_v<R>) {
      std::apply(invoke, std::move(args_));
      return {};
    } else {
      return std::apply(invoke, std::move(args_));
    }
  }

  Fn fn_;
  std::tuple<Args...> args_;
  struct no_stop {};
  [[no_unique_address]] std::conditional_t<wants_token, std::stop_source, no_stop> stop_;
};

/// The longest a loop is asked to watch for an offloaded result (further capped by
/// loop_options::offload_spin).
inline constexpr std::int64_t inline_wait_budget_ns = 20'000;

/// Per loop thread: a moving average of recent offload round trips (queue to result),
/// which decides whether watching is worth it. Starts optimistic.
inline thread_local std::int64_t round_trip_average_ns = 0;

inline std::int64_t recent_round_trip_ns() noexcept {
  return round_trip_average_ns;
}
inline void learn_round_trip(std::int64_t sample_ns) noexcept {
  if (sample_ns < 0) sample_ns = 0;
  round_trip_average_ns += (sample_ns - round_trip_average_ns) / 4;  // EWMA, weight 1/4
}

/// What to_thread / run_cpu / run_in return: await it once, on a loop thread.
template <class R>
class [[nodiscard]] offload_awaitable {
 public:
  offload_awaitable(thread_pool& pool, work_class* work, offload_state<R>* job) noexcept
      : pool_(&pool), work_(work), job_(job) {}
  offload_awaitable(offload_awaitable&& o) noexcept
      : pool_(o.pool_), work_(o.work_), job_(std::exchange(o.job_, nullptr)) {}
  offload_awaitable& operator=(offload_awaitable&&) = delete;
  ~offload_awaitable() {
    if (job_) job_->unref();
  }

  bool await_ready() {
    if (consume_pending_cancel()) {
      cancelled_ = true;  // never submitted
      return true;
    }
    return false;
  }

  bool await_suspend(std::coroutine_handle<> h) {
    loop& l = loop::current();
    job_->home = l.handle();
    job_->home_loop = &l;
    job_->core = current_core();
    job_->waiter = h;
    job_->refs.fetch_add(1, std::memory_order_relaxed);  // the pool's reference
    started_ns_ = now_ns();
    try {
      pool_->enqueue(job_, work_);
    } catch (...) {
      job_->refs.fetch_sub(1, std::memory_order_relaxed);
      throw;  // rethrown into the coroutine (pool_closed, invalid_argument)
    }
    std::uint8_t expected = offload_state<R>::running_v;
    if (!job_->phase.compare_exchange_strong(expected, offload_state<R>::suspended_v,
                                             std::memory_order_acq_rel, std::memory_order_acquire))
      return false;  // the result is here: resume without a trip through the loop
    if (job_->core != nullptr) job_->core->hook_ = &hook_;
    // Ask for a watch only while recent round trips were well inside the budget: on a
    // loaded machine (more runnable threads than cores) they are not, and watching
    // would take the core the worker needs.
    if (recent_round_trip_ns() < inline_wait_budget_ns / 2)
      detail::loop_expect_remote(l, inline_wait_budget_ns);
    return true;
  }

  R await_resume() {
    if (job_->core != nullptr) job_->core->hook_ = nullptr;
    if (cancelled_) throw cancelled_error{};
    if (started_ns_ != 0) learn_round_trip(job_->finished_ns - started_ns_);
    if (job_->error) std::rethrow_exception(job_->error);
    if constexpr (!std::is_void_v<R>) return std::move(*job_->value);
  }

  /// Not API: resolve() sets this; the callable must own everything it uses.
  offload_awaitable&& abandon_on_cancel() && noexcept {
    job_->abandon_on_cancel = true;
    return std::move(*this);
  }

 private:
  static bool on_cancel(cancel_hook* hk) noexcept {
    offload_awaitable* self = outer_of(hk, &offload_awaitable::hook_);
    offload_state<R>* job = self->job_;
    if (job->completed) return false;  // already scheduled with its result
    if (job->gate.try_cancel()) {      // not started: the worker will drop it
      self->cancelled_ = true;
      detail::loop_schedule(*job->home_loop, job->core, job->waiter);
      return true;
    }
    job->request_stop();
    if (job->abandon_on_cancel) {
      job->abandoned = true;
      self->cancelled_ = true;
      detail::loop_schedule(*job->home_loop, job->core, job->waiter);
      return true;
    }
    return false;  // resumes with the result; the cancellation stays pending
  }

  static std::int64_t now_ns() noexcept {
    return std::chrono::steady_clock::now().time_since_epoch().count();
  }

  thread_pool* pool_;
  work_class* work_;
  offload_state<R>* job_;
  cancel_hook hook_{&on_cancel, [](const cancel_hook*, wait_description& d) noexcept {
                      d.kind = "a thread pool job";
                    }};
  std::int64_t started_ns_ = 0;
  bool cancelled_ = false;
};

template <class F, class... Args>
using offload_result_t = job_result_t<std::decay_t<F>, std::decay_t<Args>...>;

template <class F, class... Args>
offload_awaitable<offload_result_t<F, Args...>> make_offload(thread_pool& pool, work_class* work,
                                                             F&& f, Args&&... args) {
  using R = offload_result_t<F, Args...>;
  auto* job = new offload_job<R, std::decay_t<F>, std::decay_t<Args>...>(
      std::forward<F>(f), std::forward<Args>(args)...);
  return offload_awaitable<R>(pool, work, job);
}

}  // namespace detail
}  // namespace eddy
