// Fork-join: eddy::join and eddy::parallel_for on a thread_pool.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <eddy/sched/fork_join.hpp>
#include <eddy/sched/thread_pool.hpp>
#include <stdexcept>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

long fib_serial(long n) {
  return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2);
}

long fib(eddy::thread_pool& pool, long n) {
  if (n < 12) return fib_serial(n);
  auto [a, b] = eddy::join(
      pool, [&] { return fib(pool, n - 1); }, [&] { return fib(pool, n - 2); });
  return a + b;
}

TEST(ForkJoin, RecursiveFibonacciMatchesTheSerialResult) {
  eddy::thread_pool pool(4);
  EXPECT_EQ(fib(pool, 27), fib_serial(27));
  EXPECT_EQ(pool.submit([&] { return fib(pool, 25); }).get(), fib_serial(25));
  EXPECT_TRUE(pool.shutdown(10s));
}

TEST(ForkJoin, RecursiveFibonacciOnASingleWorkerPool) {
  eddy::thread_pool pool(1);  // every child is popped back and run inline
  EXPECT_EQ(fib(pool, 22), fib_serial(22));
}

TEST(ForkJoin, JoinReturnsBothResultsAndMapsVoidToMonostate) {
  eddy::thread_pool pool(2);
  auto [x, y] = eddy::join(
      pool, [] { return 1; }, [] {});
  EXPECT_EQ(x, 1);
  static_assert(std::is_same_v<decltype(y), std::monostate>);
  // From outside any pool, join() without a pool runs on cpu_pool().
  auto [p, q] = eddy::join([] { return eddy::thread_pool::current(); },
                           [] { return eddy::thread_pool::current(); });
  EXPECT_EQ(p, &eddy::cpu_pool());
  EXPECT_EQ(q, &eddy::cpu_pool());
}

// Spins until `flag` is set; the limit only turns a hang (the bug) into a failure.
void spin_until(const std::atomic<bool>& flag) {
  const auto give_up = std::chrono::steady_clock::now() + 60s;
  while (!flag && std::chrono::steady_clock::now() < give_up) std::this_thread::yield();
}

TEST(ForkJoin, AWaitingWorkerHelpsInsteadOfBlocking) {
  // Two workers. The root forks `c`, then (as `a`) waits until `c` has started, which
  // only the other worker can do, by stealing it. `c` forks `d` onto its own deque and
  // then spins until `d` has run. The only thread free to run `d` is the root's worker,
  // waiting for `c`: the join completes only if that wait steals and runs `d` instead of
  // blocking.
  eddy::thread_pool pool(2);
  std::atomic<bool> c_started{false}, d_ran{false};
  std::thread::id root_thread, d_thread;
  auto root = pool.submit([&] {
    root_thread = std::this_thread::get_id();
    eddy::join(
        pool, [&] { spin_until(c_started); },
        [&] {
          c_started = true;
          eddy::join(
              pool, [&] { spin_until(d_ran); },
              [&] {
                d_thread = std::this_thread::get_id();
                d_ran = true;
              });
        });
  });
  root.get();
  EXPECT_TRUE(c_started.load());
  EXPECT_TRUE(d_ran.load());
  EXPECT_EQ(d_thread, root_thread);
  EXPECT_GE(pool.stats().stolen, 2u);
}

TEST(ForkJoin, ExceptionsFromEitherSideAreRethrownAfterBothFinish) {
  eddy::thread_pool pool(2);
  std::atomic<bool> other_done{false};
  EXPECT_THROW(eddy::join(
                   pool, []() -> int { throw std::runtime_error("left"); },
                   [&] {
                     std::this_thread::sleep_for(5ms);
                     other_done = true;
                   }),
               std::runtime_error);
  EXPECT_TRUE(other_done.load());
  try {
    eddy::join(
        pool, [] {}, [] { throw std::out_of_range("right"); });
    FAIL() << "expected out_of_range";
  } catch (const std::out_of_range& e) {
    EXPECT_STREQ(e.what(), "right");
  }
}

TEST(ForkJoin, ParallelForVisitsEveryIndexExactlyOnce) {
  eddy::thread_pool pool(4);
  constexpr std::size_t n = 200'000;
  std::vector<std::atomic<int>> visits(n);
  eddy::parallel_for(pool, std::size_t{0}, n, 64, [&](std::size_t i) { visits[i].fetch_add(1); });
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(visits[i].load(), 1) << "index " << i;
}

TEST(ForkJoin, ParallelForHandlesEmptyTinyAndNegativeRanges) {
  eddy::thread_pool pool(2);
  std::atomic<long> sum{0};
  eddy::parallel_for(pool, 5, 5, 1, [&](int i) { sum += i; });
  EXPECT_EQ(sum.load(), 0);
  eddy::parallel_for(pool, -100, 100, 1, [&](int i) { sum += i; });
  EXPECT_EQ(sum.load(), -100);
}

TEST(ForkJoin, ParallelForNestsInsideParallelFor) {
  eddy::thread_pool pool(3);
  std::atomic<long> cells{0};
  eddy::parallel_for(pool, 0, 64, 1,
                     [&](int) { eddy::parallel_for(0, 64, 4, [&](int) { cells.fetch_add(1); }); });
  EXPECT_EQ(cells.load(), 64 * 64);
}

TEST(ForkJoin, ParallelForRejectsBadArguments) {
  eddy::thread_pool pool(1);
  auto noop = [](int) {};
  EXPECT_THROW(eddy::parallel_for(pool, 0, 10, 0, noop), std::invalid_argument);
  EXPECT_THROW(eddy::parallel_for(pool, 10, 0, 1, noop), std::invalid_argument);
  EXPECT_THROW(eddy::parallel_for(pool, -1, 10u, 1, [](unsigned) {}), std::invalid_argument);
}

TEST(ForkJoin, ParallelForRethrowsAnExceptionFromABody) {
  eddy::thread_pool pool(2);
  std::atomic<int> calls{0};
  EXPECT_THROW(eddy::parallel_for(pool, 0, 1000, 10,
                                  [&](int i) {
                                    calls.fetch_add(1);
                                    if (i == 500) throw std::runtime_error("500");
                                  }),
               std::runtime_error);
  EXPECT_GE(calls.load(), 1);
}

}  // namespace
