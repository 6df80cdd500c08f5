// Installed but not API: the type-erased job that thread_pool queues hold, and the small
// pieces the public templates (submit, join, to_thread) build on.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <stdexcept>
#include <stop_token>
#include <type_traits>
#include <utility>
#include <variant>

namespace eddy {

/// The error a job's result carries when the job will never run: it was cancelled through
/// its stop token before a worker started it, or its pool shut down (past the shutdown
/// deadline) with the job still queued.
///
/// **Thread safety:** an exception object; copy it freely.
/// **Cancel safety:** not an operation.
///
/// ```cpp
/// try { fut.get(); } catch (const eddy::job_cancelled&) { /* never started */ }
/// ```
class job_cancelled : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Thrown by `submit`/`post` on a pool that is shutting down or shut down.
///
/// **Thread safety:** an exception object; copy it freely.
/// **Cancel safety:** not an operation.
///
/// ```cpp
/// pool.shutdown(1s);
/// try { pool.submit(f); } catch (const eddy::pool_closed&) { /* too late */ }
/// ```
class pool_closed : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {

struct class_state;

/// A unit of work in a pool queue. The queue owns it; exactly one of run() or discard()
/// is called, once, and that call ends the job's life (heap jobs delete themselves,
/// stack jobs signal their owner). Both are noexcept: a job publishes its own errors.
class pool_job {
 public:
  pool_job* next_ = nullptr;      // intrusive link: injection queue or a class's backlog
  class_state* class_ = nullptr;  // the work-class slot this job holds, if any
  // steady_clock ns when it was submitted (pool_options::metrics); 0: not timed.
  std::int64_t queued_ns_ = 0;

  virtual void run() noexcept = 0;
  virtual void discard() noexcept = 0;

 protected:
  ~pool_job() = default;
};

/// Once-only "done" flag of a forked job. A worker waiting for it may sleep: it arms the
/// latch with its own futex word, which set() then wakes. The word lives in the worker
/// (as long as the pool), so set() never touches the latch after marking it done, when
/// the joining frame that holds it may already be gone.
class job_latch {
 public:
  /// The bit set() adds to the sleeper's word (bit 0 belongs to the pool's wakeups).
  static constexpr std::uint32_t wake_bit = 2;

  bool done() const noexcept { return state_.load(std::memory_order_acquire) == done_v; }
  void set() noexcept;  // sched/fork_join.cpp
  /// Registers `word` to be woken by set(); false if the latch is already set.
  bool arm(std::atomic<std::uint32_t>* word) noexcept {
    std::uintptr_t expected = pending_v;
    return state_.compare_exchange_strong(expected, reinterpret_cast<std::uintptr_t>(word),
                                          std::memory_order_acq_rel, std::memory_order_acquire);
  }

 private:
  // pending_v, done_v, or the address of the sleeping worker's futex word.
  static constexpr std::uintptr_t pending_v = 0, done_v = 1;
  std::atomic<std::uintptr_t> state_{pending_v};
};

/// Cancellation state of a heap job: decided once, by CAS, between the worker that
/// starts it and a stop request (or shutdown) that drops it.
class start_gate {
 public:
  bool try_start() noexcept { return transition(running_v); }
  bool try_cancel() noexcept { return transition(cancelled_v); }

 private:
  bool transition(std::uint8_t to) noexcept {
    std::uint8_t expected = pending_v;
    // acq_rel: the winner's later writes (result or error) are ordered after the decision,
    // and the loser sees the decision.
    return state_.compare_exchange_strong(expected, to, std::memory_order_acq_rel,
                                          std::memory_order_acquire);
  }
  static constexpr std::uint8_t pending_v = 0, running_v = 1, cancelled_v = 2;
  std::atomic<std::uint8_t> state_{pending_v};
};

/// `void` as a value, so that join() and friends can hold any result.
template <class R>
using value_or_monostate = std::conditional_t<std::is_void_v<R>, std::monostate, R>;

/// Calls f(token, args...) when f accepts a stop token first, else f(args...).
template <class F, class... Args>
inline constexpr bool takes_stop_token_v = std::is_invocable_v<F, std::stop_token, Args...>;

template <class F, class... Args>
decltype(auto) invoke_maybe_with_token(const std::stop_token& token, F&& f, Args&&... args) {
  if constexpr (takes_stop_token_v<F, Args...>)
    return std::invoke(std::forward<F>(f), token, std::forward<Args>(args)...);
  else
    return std::invoke(std::forward<F>(f), std::forward<Args>(args)...);
}

template <class F, class... Args>
struct job_result {
  using type = typename std::conditional_t<takes_stop_token_v<F, Args...>,
                                           std::invoke_result<F, std::stop_token, Args...>,
                                           std::invoke_result<F, Args...>>::type;
};

template <class F, class... Args>
using job_result_t = typename job_result<F, Args...>::type;

}  // namespace detail
}  // namespace eddy
