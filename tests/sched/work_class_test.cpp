// work_class: a cap on how many jobs of one kind a pool runs at once.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <eddy/sched/thread_pool.hpp>
#include <future>
#include <latch>
#include <thread>
#include <vector>

#include "pool_test_support.hpp"

namespace {

using namespace std::chrono_literals;

TEST(WorkClass, JobsOverTheCapWaitInTheBacklogWithoutAThread) {
  eddy::thread_pool pool(4);
  eddy::work_class slow(pool, "slow", 2);
  std::promise<void> gate;
  std::shared_future<void> open = gate.get_future().share();
  std::atomic<int> now{0}, peak{0};
  std::vector<std::future<void>> jobs;
  for (int i = 0; i < 10; ++i)
    jobs.push_back(pool.submit(eddy::job_options{.work = &slow}, [&, open] {
      const int n = ++now;
      int p = peak.load();
      while (n > p && !peak.compare_exchange_weak(p, n)) {
      }
      open.wait();
      --now;
    }));
  // Admission happens at submission: two hold slots, eight wait.
  EXPECT_EQ(slow.active(), 2u);
  EXPECT_EQ(slow.waiting(), 8u);
  // Both admitted jobs start (the cap is reached, not just allowed)...
  EXPECT_TRUE(eddy_test::eventually([&] { return now.load() == 2; }));
  // ...and the other two threads stay available to unclassed work.
  EXPECT_EQ(pool.submit([] { return 5; }).get(), 5);
  gate.set_value();
  for (auto& j : jobs) j.get();
  EXPECT_EQ(peak.load(), 2);
  // A slot is handed back just after the job's future is made ready.
  EXPECT_TRUE(eddy_test::eventually([&] { return slow.active() == 0 && slow.waiting() == 0; }));
}

TEST(WorkClass, BlockingFloodDoesNotStarveFastJobs) {
  // RELIABILITY.md row 11: 8 blocking 1-s jobs and 100 fast jobs on a pool of 4. The
  // blocking ones are capped at 2 threads, so fast jobs never wait behind them: every
  // fast job finishes before the first blocking job does.
  eddy::thread_pool pool(4);
  eddy::work_class blocking(pool, "blocking", 2);
  std::atomic<int> order{0};
  std::vector<std::future<int>> slow, fast;
  for (int i = 0; i < 8; ++i)
    slow.push_back(pool.submit(eddy::job_options{.work = &blocking}, [&] {
      std::this_thread::sleep_for(1s);
      return order.fetch_add(1);
    }));
  for (int i = 0; i < 100; ++i) fast.push_back(pool.submit([&] { return order.fetch_add(1); }));
  int last_fast = -1, first_slow = 1 << 30;
  for (auto& f : fast) last_fast = std::max(last_fast, f.get());
  for (auto& f : slow) first_slow = std::min(first_slow, f.get());
  EXPECT_EQ(last_fast, 99);    // the fast jobs took the first 100 places...
  EXPECT_EQ(first_slow, 100);  // ...and the blocking ones the rest
}

TEST(WorkClass, ACancelledJobInTheBacklogGivesUpItsPlace) {
  eddy::thread_pool pool(2);
  eddy::work_class one(pool, "one", 1);
  std::promise<void> gate;
  std::latch started(1);
  auto holder = pool.submit(eddy::job_options{.work = &one}, [&, g = gate.get_future()]() mutable {
    started.count_down();
    g.wait();
  });
  started.wait();
  std::stop_source stop;
  std::atomic<bool> cancelled_ran{false};
  auto cancelled = pool.submit(eddy::job_options{.stop = stop.get_token(), .work = &one},
                               [&] { cancelled_ran = true; });
  auto next = pool.submit(eddy::job_options{.work = &one}, [] { return 3; });
  EXPECT_EQ(one.waiting(), 2u);
  stop.request_stop();
  EXPECT_THROW(cancelled.get(), eddy::job_cancelled);
  gate.set_value();
  holder.get();
  EXPECT_EQ(next.get(), 3);
  EXPECT_FALSE(cancelled_ran.load());
  EXPECT_TRUE(eddy_test::eventually([&] { return one.active() == 0; }));
}

TEST(WorkClass, AClassMayBeDestroyedBeforeItsQueuedJobsRun) {
  eddy::thread_pool pool(2);
  std::promise<void> gate;
  std::shared_future<void> open = gate.get_future().share();
  std::vector<std::future<int>> jobs;
  {
    eddy::work_class temp(pool, "temp", 1);
    for (int i = 0; i < 5; ++i)
      jobs.push_back(pool.submit(eddy::job_options{.work = &temp}, [open, i] {
        open.wait();
        return i;
      }));
  }
  gate.set_value();
  int sum = 0;
  for (auto& j : jobs) sum += j.get();
  EXPECT_EQ(sum, 10);
}

TEST(WorkClass, CapsAndOwnershipAreValidated) {
  eddy::thread_pool pool(4), other(1);
  EXPECT_THROW(eddy::work_class(pool, "zero", 0), std::invalid_argument);
  EXPECT_THROW(eddy::work_class(pool, "five", 5), std::invalid_argument);
  EXPECT_THROW(eddy::work_class(pool, "", 1), std::invalid_argument);
  eddy::work_class mine(pool, "mine", 4);
  EXPECT_EQ(mine.name(), "mine");
  EXPECT_EQ(mine.max_concurrent(), 4u);
  EXPECT_EQ(&mine.pool(), &pool);
  EXPECT_THROW((void)other.submit(eddy::job_options{.work = &mine}, [] {}), std::invalid_argument);
}

TEST(WorkClass, ShutdownDrainsTheBacklog) {
  eddy::thread_pool pool(2);
  eddy::work_class one(pool, "one", 1);
  std::atomic<int> ran{0};
  std::vector<std::future<void>> jobs;
  for (int i = 0; i < 20; ++i)
    jobs.push_back(pool.submit(eddy::job_options{.work = &one}, [&] { ++ran; }));
  EXPECT_TRUE(pool.shutdown(60s));
  EXPECT_EQ(ran.load(), 20);
}

}  // namespace
