// thread_pool under load: a million tiny jobs sum exactly; a single producer's deque is
// drained by stealing.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <eddy/sched/thread_pool.hpp>
#include <future>
#include <latch>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

constexpr std::uint64_t million = 1'000'000;
constexpr std::uint64_t sum_below(std::uint64_t n) {
  return n * (n - 1) / 2;
}

TEST(PoolSteal, AMillionTinyJobsFromOutsideSumExactly) {
  eddy::thread_pool pool(4);
  std::atomic<std::uint64_t> sum{0};
  std::latch done(static_cast<std::ptrdiff_t>(million));
  for (std::uint64_t i = 0; i < million; ++i)
    pool.post([&sum, &done, i] {
      sum.fetch_add(i, std::memory_order_relaxed);
      done.count_down();
    });
  done.wait();
  EXPECT_EQ(sum.load(), sum_below(million));
  EXPECT_TRUE(pool.shutdown(60s));
  EXPECT_EQ(pool.stats().completed, million);
}

TEST(PoolSteal, AMillionTinyJobsFromInsideAWorkerSumExactly) {
  eddy::thread_pool pool(4);
  std::atomic<std::uint64_t> sum{0};
  std::latch done(static_cast<std::ptrdiff_t>(million));
  pool.post([&] {
    for (std::uint64_t i = 0; i < million; ++i)
      pool.post([&sum, &done, i] {
        sum.fetch_add(i, std::memory_order_relaxed);
        done.count_down();
      });
  });
  done.wait();
  EXPECT_EQ(sum.load(), sum_below(million));
  EXPECT_TRUE(pool.shutdown(60s));
}

TEST(PoolSteal, ResultsOfManySubmissionsFromSeveralThreadsAllArrive) {
  eddy::thread_pool pool(3);
  constexpr int producers = 4, each = 25'000;
  std::vector<std::uint64_t> partial(producers);
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p)
    threads.emplace_back([&, p] {
      std::vector<std::future<std::uint64_t>> fs;
      fs.reserve(each);
      for (int i = 0; i < each; ++i)
        fs.push_back(pool.submit([](std::uint64_t v) { return v; },
                                 static_cast<std::uint64_t>(p * each + i)));
      for (auto& f : fs) partial[p] += f.get();
    });
  for (auto& t : threads) t.join();
  std::uint64_t total = 0;
  for (auto v : partial) total += v;
  EXPECT_EQ(total, sum_below(producers * each));
}

TEST(PoolSteal, ASingleProducersDequeIsDrainedByThieves) {
  eddy::thread_pool pool(4);
  constexpr int children = 200;
  std::latch all_ran(children);
  std::mutex mu;
  std::set<std::thread::id> runners;
  std::atomic<bool> ran_on_producer{false};
  auto producer = pool.submit([&] {
    const auto me = std::this_thread::get_id();
    for (int i = 0; i < children; ++i)
      pool.post([&, me] {  // onto this worker's own deque
        if (std::this_thread::get_id() == me) ran_on_producer = true;
        {
          std::lock_guard lock(mu);
          runners.insert(std::this_thread::get_id());
        }
        all_ran.count_down();
      });
    // Block this worker: its deque can only be emptied by the others stealing.
    all_ran.wait();
  });
  producer.get();
  EXPECT_FALSE(ran_on_producer.load());
  EXPECT_GE(pool.stats().stolen, static_cast<std::uint64_t>(children));
  EXPECT_GE(runners.size(), 1u);
  EXPECT_TRUE(pool.shutdown(10s));
}

}  // namespace
