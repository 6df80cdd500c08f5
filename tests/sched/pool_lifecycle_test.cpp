// thread_pool lifecycle: threads are started, retired and joined; nothing is left behind.
#include <gtest/gtest.h>
#include <pthread.h>

#include <atomic>
#include <eddy/sched/thread_pool.hpp>
#include <future>
#include <latch>
#include <string>
#include <thread>
#include <vector>

#include "pool_test_support.hpp"

namespace {

using namespace std::chrono_literals;

// The thread count before any pool of the test exists, once the process's own helpers
// (such as ThreadSanitizer's background thread, started with the first thread) are up.
std::size_t baseline_threads() {
  static const std::size_t n = [] {
    { eddy::thread_pool warm_up(1); }
    return eddy_test::thread_count();
  }();
  return n;
}

TEST(PoolLifecycle, HundredStartStopCyclesLeaveTheThreadCountAtBaseline) {
  const std::size_t baseline = baseline_threads();
  for (int cycle = 0; cycle < 100; ++cycle) {
    eddy::thread_pool pool(4);
    ASSERT_EQ(pool.stats().threads, 4u);
    std::vector<std::future<int>> fs;
    for (int i = 0; i < 20; ++i) fs.push_back(pool.submit([i] { return i; }));
    for (auto& f : fs) f.get();
    ASSERT_TRUE(pool.shutdown(30s)) << "cycle " << cycle;
    ASSERT_EQ(pool.stats().threads, 0u);
  }
  EXPECT_TRUE(eddy_test::threads_return_to(baseline));
}

TEST(PoolLifecycle, DestroyingAPoolWithoutShutdownJoinsEverything) {
  const std::size_t baseline = baseline_threads();
  std::atomic<int> ran{0};
  for (int cycle = 0; cycle < 100; ++cycle) {
    eddy::thread_pool pool(3);
    for (int i = 0; i < 10; ++i) pool.post([&] { ++ran; });
  }  // the destructor waits for the queued jobs, then joins
  EXPECT_EQ(ran.load(), 1000);
  EXPECT_TRUE(eddy_test::threads_return_to(baseline));
}

TEST(PoolLifecycle, ElasticPoolGrowsOnDemandAndRetiresIdleThreads) {
  const std::size_t baseline = baseline_threads();
  eddy::thread_pool pool(eddy::pool_options::elastic_up_to(4, 20ms, "elastic"));
  EXPECT_EQ(pool.stats().threads, 0u);
  // Four jobs that each wait for all four: they finish only if four threads run at once.
  std::latch together(4);
  std::atomic<std::size_t> seen_threads{0};
  std::vector<std::future<void>> fs;
  for (int i = 0; i < 4; ++i)
    fs.push_back(pool.submit([&] {
      together.arrive_and_wait();
      seen_threads = pool.stats().threads;
    }));
  for (auto& f : fs) f.get();
  EXPECT_EQ(seen_threads.load(), 4u);
  EXPECT_TRUE(eddy_test::eventually([&] { return pool.stats().threads == 0; }));
  EXPECT_TRUE(eddy_test::threads_return_to(baseline));
  // And it grows again after retiring.
  EXPECT_EQ(pool.submit([] { return 9; }).get(), 9);
  EXPECT_TRUE(pool.shutdown(10s));
  EXPECT_TRUE(eddy_test::threads_return_to(baseline));
}

TEST(PoolLifecycle, ElasticPoolKeepsItsMinimum) {
  eddy::pool_options o = eddy::pool_options::elastic_up_to(3, 10ms, "keep");
  o.min_threads = 1;
  eddy::thread_pool pool(o);
  EXPECT_EQ(pool.stats().threads, 1u);
  std::latch together(3);
  std::vector<std::future<void>> fs;
  for (int i = 0; i < 3; ++i) fs.push_back(pool.submit([&] { together.arrive_and_wait(); }));
  for (auto& f : fs) f.get();
  EXPECT_TRUE(eddy_test::eventually([&] { return pool.stats().threads == 1; }));
  // Give the survivor several more idle timeouts: it must stay.
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(pool.stats().threads, 1u);
}

TEST(PoolLifecycle, ElasticStartStopCyclesLeaveTheThreadCountAtBaseline) {
  const std::size_t baseline = baseline_threads();
  for (int cycle = 0; cycle < 100; ++cycle) {
    eddy::thread_pool pool(eddy::pool_options::elastic_up_to(3, 5ms, "cyc"));
    std::vector<std::future<int>> fs;
    for (int i = 0; i < 6; ++i) fs.push_back(pool.submit([i] { return i; }));
    for (auto& f : fs) f.get();
    if (cycle % 10 == 0) std::this_thread::sleep_for(10ms);  // let some retire first
    ASSERT_TRUE(pool.shutdown(30s));
  }
  EXPECT_TRUE(eddy_test::threads_return_to(baseline));
}

TEST(PoolLifecycle, AJobTakenAsThePoolClosesMayStillForkAndWaitForWork) {
  // Regression: a worker that found the closing pool idle could leave while another
  // worker had just taken a job but not yet marked it running; that job then pushed
  // sub-jobs and blocked on them with nobody left to run them. Shutdown starts at once
  // here, so the job is often taken in that window.
  for (int cycle = 0; cycle < 200; ++cycle) {
    eddy::thread_pool pool(2);
    auto parent = pool.submit([&pool] {
      std::vector<std::future<int>> kids;
      for (int i = 0; i < 4; ++i) kids.push_back(pool.submit([i] { return i; }));
      int sum = 0;
      for (auto& k : kids) sum += k.get();  // blocks this worker: others must run them
      return sum;
    });
    ASSERT_TRUE(pool.shutdown(60s)) << "cycle " << cycle;
    ASSERT_EQ(parent.get(), 6);
  }
}

TEST(PoolLifecycle, DestructorWaitsForARunningJob) {
  std::atomic<bool> finished{false};
  {
    eddy::thread_pool pool(1);
    std::latch started(1);
    pool.post([&] {
      started.count_down();
      std::this_thread::sleep_for(30ms);
      finished = true;
    });
    started.wait();
  }
  EXPECT_TRUE(finished.load());
}

TEST(PoolLifecycle, WorkersAreNamedAfterThePool) {
  eddy::thread_pool pool(eddy::pool_options::fixed(1, "namecheck"));
  auto name = pool.submit([] {
    char buf[16] = {};
    pthread_getname_np(pthread_self(), buf, sizeof buf);
    return std::string(buf);
  });
  EXPECT_EQ(name.get(), "namecheck-0");
}

}  // namespace
