// Fork-join on a thread_pool: eddy::join (two closures, possibly in parallel) and
// eddy::parallel_for on top of it.
//
// Inside a worker, join() pushes its second closure onto the worker's own deque, runs
// the first inline, then takes the second back if no one stole it. If it was stolen,
// the worker does not block: it runs other jobs (its own deque, then stealing) until the
// child is done, and only sleeps when there is nothing at all to help with. The child
// lives in the caller's stack frame: a fork costs no allocation.
#pragma once

#include <concepts>
#include <cstddef>
#include <eddy/sched/detail/pool_job.hpp>
#include <eddy/sched/thread_pool.hpp>
#include <exception>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace eddy {
namespace detail {

bool fork_push(pool_job* job);     // onto the calling worker's deque; false if not a worker
void fork_wait(job_latch& latch);  // help until the latch is set; calling worker only
bool on_pool_worker(const thread_pool& pool);

template <class F>
using join_result_t = value_or_monostate<std::decay_t<std::invoke_result_t<F&>>>;

template <class F>
join_result_t<F> call_for_value(F& f) {
  if constexpr (std::is_void_v<std::invoke_result_t<F&>>) {
    std::invoke(f);
    return {};
  } else {
    return std::invoke(f);
  }
}

/// The forked half of a join: lives in the joining frame, signals a latch when done.
template <class F>
class join_job final : public pool_job {
 public:
  explicit join_job(F& f) : f_(f) {}

  void run() noexcept override {
    try {
      value_.emplace(call_for_value(f_));
    } catch (...) {
      error_ = std::current_exception();
    }
    latch_.set();  // last access: the joining frame may end right after
  }

  void discard() noexcept override {
    error_ = std::make_exception_ptr(
        job_cancelled("eddy::join: forked job dropped by thread_pool shutdown"));
    latch_.set();
  }

  job_latch& latch() noexcept { return latch_; }
  join_result_t<F> take() {
    if (error_) std::rethrow_exception(error_);
    return std::move(*value_);
  }

 private:
  F& f_;
  std::optional<join_result_t<F>> value_;
  std::exception_ptr error_;
  job_latch latch_;
};

template <class A, class B>
std::pair<join_result_t<A>, join_result_t<B>> join_on_worker(A& a, B& b) {
  join_job<B> forked(b);
  fork_push(&forked);
  std::optional<join_result_t<A>> first;
  std::exception_ptr first_error;
  try {
    first.emplace(call_for_value(a));
  } catch (...) {
    first_error = std::current_exception();
  }
  // Even if `a` threw we must wait: `forked` lives in this frame.
  fork_wait(forked.latch());
  if (first_error) std::rethrow_exception(first_error);
  auto second = forked.take();
  return {std::move(*first), std::move(second)};
}

}  // namespace detail

/// Runs `a()` and `b()`, potentially in parallel on `pool`, and returns both results
/// (void results as std::monostate; results are returned by value). On a worker of
/// `pool` it forks `b` onto the worker's own deque and runs `a` inline; the wait for a
/// stolen `b` runs other jobs instead of blocking the worker. From any other thread it
/// submits the whole join to `pool` and blocks the calling thread until it is done.
/// If either throws, the exception is rethrown after both have finished (`a`'s first).
///
/// **Thread safety:** any thread; `a` and `b` may run concurrently with each other.
/// **Cancel safety:** blocking, not a coroutine: both closures always run to completion,
/// unless the pool shuts down past its deadline (then eddy::job_cancelled is thrown).
///
/// ```cpp
/// long fib(long n) {
///   if (n < 20) return fib_serial(n);
///   auto [x, y] = eddy::join(eddy::cpu_pool(), [=] { return fib(n - 1); },
///                            [=] { return fib(n - 2); });
///   return x + y;
/// }
/// ```
template <class A, class B>
std::pair<detail::join_result_t<A>, detail::join_result_t<B>> join(thread_pool& pool, A&& a,
                                                                   B&& b) {
  if (detail::on_pool_worker(pool)) return detail::join_on_worker(a, b);
  return pool.submit([&a, &b] { return detail::join_on_worker(a, b); }).get();
}

/// join() on the pool of the calling worker, or on cpu_pool() from any other thread.
///
/// **Thread safety:** as join(pool, a, b).
/// **Cancel safety:** as join(pool, a, b).
///
/// ```cpp
/// auto [left, right] = eddy::join([&] { return sum(lo); }, [&] { return sum(hi); });
/// ```
template <class A, class B>
std::pair<detail::join_result_t<A>, detail::join_result_t<B>> join(A&& a, B&& b) {
  thread_pool* here = thread_pool::current();
  return join(here ? *here : cpu_pool(), std::forward<A>(a), std::forward<B>(b));
}

namespace detail {

template <class I, class F>
void parallel_for_range(I begin, I end, std::size_t grain, F& f) {
  using U = std::make_unsigned_t<I>;
  const U n = static_cast<U>(static_cast<U>(end) - static_cast<U>(begin));
  if (n <= grain) {
    for (I i = begin; i != end; ++i) f(i);
    return;
  }
  const I mid = static_cast<I>(static_cast<U>(begin) + n / 2);
  auto lower = [&] { parallel_for_range(begin, mid, grain, f); };
  auto upper = [&] { parallel_for_range(mid, end, grain, f); };
  join_on_worker(lower, upper);
}

}  // namespace detail

/// Calls `f(i)` for every i in [begin, end), splitting the range in halves with join()
/// down to pieces of at most `grain` indices, which run serially. `f` is called from
/// several threads at once. If calls throw, the first exception seen is rethrown after
/// every piece has finished. On a worker of `pool` it runs there; from another thread it
/// submits to `pool` and blocks the calling thread until done.
///
/// Throws std::invalid_argument if grain < 1, if begin > end, or if begin or end does not
/// fit the common type of the two.
///
/// **Thread safety:** any thread; `f` must tolerate concurrent calls.
/// **Cancel safety:** blocking, not a coroutine: runs to completion.
///
/// ```cpp
/// std::vector<double> v(1'000'000);
/// eddy::parallel_for(eddy::cpu_pool(), std::size_t{0}, v.size(), 4096,
///                    [&](std::size_t i) { v[i] = std::sqrt(double(i)); });
/// ```
template <std::integral B, std::integral E, class F>
void parallel_for(thread_pool& pool, B begin, E end, std::size_t grain, F&& f) {
  using I = std::common_type_t<B, E>;
  if (grain < 1) throw std::invalid_argument("eddy::parallel_for: grain must be >= 1 (got 0)");
  if (!std::in_range<I>(begin) || !std::in_range<I>(end))
    throw std::invalid_argument("eddy::parallel_for: begin and end must fit their common type");
  if (std::cmp_greater(begin, end))
    throw std::invalid_argument("eddy::parallel_for: begin (" + std::to_string(begin) +
                                ") must be <= end (" + std::to_string(end) + ")");
  const I b = static_cast<I>(begin), e = static_cast<I>(end);
  if (detail::on_pool_worker(pool)) {
    detail::parallel_for_range(b, e, grain, f);
    return;
  }
  pool.submit([&] { detail::parallel_for_range(b, e, grain, f); }).get();
}

/// parallel_for() on the pool of the calling worker, or on cpu_pool().
///
/// **Thread safety:** as parallel_for(pool, ...).
/// **Cancel safety:** blocking, not a coroutine.
///
/// ```cpp
/// eddy::parallel_for(0, n, 256, [&](int i) { out[i] = transform(in[i]); });
/// ```
template <std::integral B, std::integral E, class F>
void parallel_for(B begin, E end, std::size_t grain, F&& f) {
  thread_pool* here = thread_pool::current();
  parallel_for(here ? *here : cpu_pool(), begin, end, grain, std::forward<F>(f));
}

}  // namespace eddy
