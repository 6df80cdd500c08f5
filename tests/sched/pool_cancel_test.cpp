// thread_pool cancellation: a stop request before a job starts drops it; a running job
// sees its stop token; shutdown past its deadline drops what is queued.
#include <gtest/gtest.h>

#include <atomic>
#include <eddy/sched/fork_join.hpp>
#include <eddy/sched/thread_pool.hpp>
#include <future>
#include <latch>
#include <stop_token>
#include <thread>
#include <vector>

#include "pool_test_support.hpp"

namespace {

using namespace std::chrono_literals;

// Occupies the only worker of a 1-thread pool until release() is called.
class blocker {
 public:
  explicit blocker(eddy::thread_pool& pool) {
    done_ = pool.submit([this] {
      started_.count_down();
      gate_.get_future().wait();
    });
    started_.wait();
  }
  void release() {
    gate_.set_value();
    done_.get();
  }

 private:
  std::latch started_{1};
  std::promise<void> gate_;
  std::future<void> done_;
};

TEST(PoolCancel, AJobCancelledBeforeItStartsNeverRuns) {
  eddy::thread_pool pool(1);
  blocker busy(pool);
  std::stop_source stop;
  std::atomic<bool> ran{false};
  auto f = pool.submit(eddy::job_options{.stop = stop.get_token()}, [&] { ran = true; });
  EXPECT_EQ(f.wait_for(0s), std::future_status::timeout);
  stop.request_stop();
  // The future is completed by the stop request itself, with the worker still busy.
  ASSERT_EQ(f.wait_for(0s), std::future_status::ready);
  EXPECT_THROW(f.get(), eddy::job_cancelled);
  busy.release();
  EXPECT_TRUE(pool.shutdown(10s));
  EXPECT_FALSE(ran.load());
  EXPECT_EQ(pool.stats().completed, 2u);  // the blocker and the dropped job
}

TEST(PoolCancel, AnAlreadyStoppedTokenCancelsAtSubmission) {
  eddy::thread_pool pool(1);
  std::stop_source stop;
  stop.request_stop();
  std::atomic<bool> ran{false};
  auto f = pool.submit(eddy::job_options{.stop = stop.get_token()}, [&] { ran = true; });
  EXPECT_THROW(f.get(), eddy::job_cancelled);
  EXPECT_TRUE(pool.shutdown(10s));
  EXPECT_FALSE(ran.load());
}

TEST(PoolCancel, ARunningJobSeesItsStopToken) {
  eddy::thread_pool pool(1);
  std::stop_source stop;
  std::latch started(1);
  auto f = pool.submit(
      eddy::job_options{.stop = stop.get_token()},
      [&](std::stop_token st, int base) {
        started.count_down();
        int spins = 0;
        while (!st.stop_requested()) {
          ++spins;
          std::this_thread::yield();
        }
        return base + (spins >= 0 ? 1 : 0);
      },
      41);
  started.wait();
  stop.request_stop();
  EXPECT_EQ(f.get(), 42);  // it ran to completion: a started job is never dropped
}

TEST(PoolCancel, AStopRequestAfterTheJobFinishedChangesNothing) {
  eddy::thread_pool pool(1);
  std::stop_source stop;
  auto f = pool.submit(eddy::job_options{.stop = stop.get_token()}, [] { return 7; });
  f.wait();
  stop.request_stop();
  EXPECT_EQ(f.get(), 7);
}

TEST(PoolCancel, ConcurrentCancelsDecideEachJobExactlyOnce) {
  eddy::thread_pool pool(2);
  constexpr int n = 5'000;
  std::vector<std::stop_source> stops(n);
  std::vector<std::atomic<int>> runs(n);
  std::vector<std::future<int>> results;
  results.reserve(n);
  for (int i = 0; i < n; ++i)
    results.push_back(pool.submit(eddy::job_options{.stop = stops[i].get_token()}, [&runs, i] {
      runs[i].fetch_add(1);
      return i;
    }));
  std::thread canceller([&] {
    for (int i = 0; i < n; i += 2) stops[i].request_stop();
  });
  canceller.join();
  int ran = 0, cancelled = 0;
  for (int i = 0; i < n; ++i) {
    try {
      EXPECT_EQ(results[i].get(), i);
      EXPECT_EQ(runs[i].load(), 1);
      ++ran;
    } catch (const eddy::job_cancelled&) {
      EXPECT_EQ(runs[i].load(), 0) << "job " << i << " ran but reported cancelled";
      EXPECT_EQ(i % 2, 0) << "job " << i << " was never cancelled";
      ++cancelled;
    }
  }
  EXPECT_EQ(ran + cancelled, n);
  EXPECT_TRUE(pool.shutdown(10s));
}

TEST(PoolCancel, ShutdownPastItsDeadlineDropsQueuedJobsAndStopsRunningOnes) {
  eddy::thread_pool pool(1);
  std::latch started(1);
  // Runs until the pool's shutdown token is requested, which happens only once
  // shutdown() has passed its deadline: so the deadline is certain to pass.
  auto stubborn = pool.submit([&](std::stop_token st) {
    started.count_down();
    while (!st.stop_requested()) std::this_thread::sleep_for(1ms);
    return 1;
  });
  started.wait();
  std::vector<std::future<int>> queued;
  std::atomic<int> ran{0};
  for (int i = 0; i < 5; ++i) queued.push_back(pool.submit([&] { return ++ran; }));
  EXPECT_FALSE(pool.shutdown(20ms));
  EXPECT_TRUE(pool.shutdown_token().stop_requested());
  for (auto& f : queued) EXPECT_THROW(f.get(), eddy::job_cancelled);
  EXPECT_EQ(stubborn.get(), 1);  // a running job is never cut off
  EXPECT_EQ(ran.load(), 0);
}

TEST(PoolCancel, ShutdownPastItsDeadlineDropsAForkedChildAndTheJoinThrows) {
  eddy::thread_pool pool(2);
  std::latch started(1);
  // Occupies one worker until the deadline, so the forked child below stays queued.
  auto stubborn = pool.submit([&](std::stop_token st) {
    started.count_down();
    while (!st.stop_requested()) std::this_thread::sleep_for(1ms);
  });
  started.wait();
  std::atomic<bool> child_ran{false};
  std::latch forked(1);
  auto root = pool.submit([&] {
    eddy::join(
        pool,
        [&] {
          forked.count_down();
          const std::stop_token st = pool.shutdown_token();
          while (!st.stop_requested()) std::this_thread::sleep_for(1ms);
        },
        [&] { child_ran = true; });
  });
  forked.wait();
  EXPECT_FALSE(pool.shutdown(20ms));
  EXPECT_THROW(root.get(), eddy::job_cancelled);
  stubborn.get();
  EXPECT_FALSE(child_ran.load());
}

TEST(PoolCancel, GracefulShutdownRunsEverythingAlreadyQueued) {
  eddy::thread_pool pool(2);
  std::vector<std::future<int>> results;
  for (int i = 0; i < 2'000; ++i) results.push_back(pool.submit([i] { return i; }));
  EXPECT_TRUE(pool.shutdown(60s));
  long sum = 0;
  for (auto& f : results) sum += f.get();
  EXPECT_EQ(sum, 1999L * 2000 / 2);
}

TEST(PoolCancel, JobsMaySubmitSubJobsWhileThePoolDrains) {
  eddy::thread_pool pool(2);
  std::atomic<int> children{0};
  std::promise<void> gate;
  auto parent = pool.submit([&, g = gate.get_future()]() mutable {
    g.wait();  // shutdown has begun by now
    std::vector<std::future<void>> kids;
    for (int i = 0; i < 10; ++i) kids.push_back(pool.submit([&] { children.fetch_add(1); }));
    for (auto& k : kids) k.get();
  });
  std::thread closer([&] { EXPECT_TRUE(pool.shutdown(60s)); });
  // Open the gate only once outside submissions are refused.
  EXPECT_TRUE(eddy_test::eventually([&] {
    try {
      pool.post([] {});
      return false;
    } catch (const eddy::pool_closed&) {
      return true;
    }
  }));
  gate.set_value();
  closer.join();
  parent.get();
  EXPECT_EQ(children.load(), 10);
}

}  // namespace
