// thread_pool: submitting work, results and exceptions crossing back, options, stats.
#include <gtest/gtest.h>

#include <atomic>
#include <eddy/sched/thread_pool.hpp>
#include <latch>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "pool_test_support.hpp"

namespace {

using namespace std::chrono_literals;

TEST(ThreadPool, SubmitReturnsTheResult) {
  eddy::thread_pool pool(2);
  auto f = pool.submit([](int a, int b) { return a * b; }, 6, 7);
  EXPECT_EQ(f.get(), 42);
}

TEST(ThreadPool, SubmitDecayCopiesArgumentsAndAcceptsMoveOnlyOnes) {
  eddy::thread_pool pool(2);
  std::string text = "hello";
  auto copied = pool.submit([](std::string s) { return s + "!"; }, text);
  text = "changed";
  EXPECT_EQ(copied.get(), "hello!");
  auto owned =
      pool.submit([](std::unique_ptr<int> p) { return *p + 1; }, std::make_unique<int>(41));
  EXPECT_EQ(owned.get(), 42);
}

TEST(ThreadPool, VoidJobsComplete) {
  eddy::thread_pool pool(2);
  std::atomic<int> hits{0};
  auto f = pool.submit([&] { hits.fetch_add(1); });
  f.get();
  EXPECT_EQ(hits.load(), 1);
}

struct custom_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

TEST(ThreadPool, ExceptionsCrossBackThroughTheFutureWithTheirType) {
  eddy::thread_pool pool(2);
  auto f = pool.submit([]() -> int { throw custom_error("boom"); });
  try {
    f.get();
    FAIL() << "expected custom_error";
  } catch (const custom_error& e) {
    EXPECT_STREQ(e.what(), "boom");
  }
  // The worker that ran the throwing job keeps working.
  EXPECT_EQ(pool.submit([] { return 1; }).get(), 1);
}

TEST(ThreadPool, JobsSubmittedFromAWorkerRunOnThePool) {
  eddy::thread_pool pool(2);
  auto outer = pool.submit([&pool] {
    EXPECT_EQ(eddy::thread_pool::current(), &pool);
    std::vector<std::future<int>> inner;
    for (int i = 0; i < 100; ++i) inner.push_back(pool.submit([i] { return i; }));
    int sum = 0;
    // get() blocks this worker; the other worker (or stealing) runs the children.
    for (auto& f : inner) sum += f.get();
    return sum;
  });
  EXPECT_EQ(outer.get(), 4950);
  EXPECT_EQ(eddy::thread_pool::current(), nullptr);
}

TEST(ThreadPool, PostRunsFireAndForgetJobs) {
  eddy::thread_pool pool(3);
  constexpr int n = 10'000;
  std::atomic<int> hits{0};
  std::latch all(n);
  for (int i = 0; i < n; ++i)
    pool.post([&] {
      hits.fetch_add(1, std::memory_order_relaxed);
      all.count_down();
    });
  all.wait();
  EXPECT_EQ(hits.load(), n);
}

template <class Fn>
std::string invalid_argument_text(Fn fn) {
  try {
    fn();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(no std::invalid_argument thrown)";
}

TEST(ThreadPool, EveryOptionIsValidatedWithAClearError) {
  auto build = [](eddy::pool_options o) { return [o] { eddy::thread_pool pool(o); }; };
  eddy::pool_options o;

  o = {};
  o.threads = 0;
  EXPECT_NE(invalid_argument_text(build(o)).find("threads must be between 1 and 4096 (got 0)"),
            std::string::npos);
  o.threads = 5000;
  EXPECT_NE(invalid_argument_text(build(o)).find("(got 5000)"), std::string::npos);

  o = eddy::pool_options::elastic_up_to(4, 1s);
  o.min_threads = 5;
  EXPECT_NE(invalid_argument_text(build(o)).find("min_threads must be at most threads (4)"),
            std::string::npos);

  o = eddy::pool_options::elastic_up_to(4, 0ms);
  EXPECT_NE(invalid_argument_text(build(o)).find("idle_timeout must be between 1 ms and 1 hour"),
            std::string::npos);
  o = eddy::pool_options::elastic_up_to(4, 2h);
  EXPECT_NE(invalid_argument_text(build(o)).find("idle_timeout"), std::string::npos);

  o = {};
  o.spin_before_park = 1s;
  EXPECT_NE(invalid_argument_text(build(o)).find("spin_before_park must be between 0 and 10 ms"),
            std::string::npos);
  o.spin_before_park = -1us;
  EXPECT_NE(invalid_argument_text(build(o)).find("spin_before_park"), std::string::npos);

  o = {};
  o.name = "";
  EXPECT_NE(invalid_argument_text(build(o)).find("name must be 1 to 64 bytes"), std::string::npos);
  o.name = std::string(65, 'x');
  EXPECT_NE(invalid_argument_text(build(o)).find("(got 65 bytes)"), std::string::npos);

  eddy::thread_pool pool(1);
  EXPECT_NE(invalid_argument_text([&] { pool.shutdown(-1ms); }).find("timeout must be >= 0"),
            std::string::npos);
}

TEST(ThreadPool, SubmitAfterShutdownThrowsPoolClosed) {
  eddy::thread_pool pool(2);
  EXPECT_TRUE(pool.shutdown(10s));
  EXPECT_THROW((void)pool.submit([] { return 1; }), eddy::pool_closed);
  EXPECT_THROW(pool.post([] {}), eddy::pool_closed);
  EXPECT_TRUE(pool.shutdown(0s));  // idempotent
}

TEST(ThreadPool, ShutdownFromItsOwnWorkerIsALogicError) {
  eddy::thread_pool pool(1);
  auto f = pool.submit([&pool] { pool.shutdown(1s); });
  EXPECT_THROW(f.get(), std::logic_error);
}

TEST(ThreadPool, StatsCountCompletedJobsAndParkedWorkers) {
  eddy::thread_pool pool(3);
  constexpr int n = 500;
  std::vector<std::future<int>> results;
  for (int i = 0; i < n; ++i) results.push_back(pool.submit([i] { return i; }));
  for (auto& f : results) f.get();
  EXPECT_TRUE(eddy_test::eventually([&] { return pool.stats().parked == 3; }));
  const eddy::pool_stats s = pool.stats();
  EXPECT_EQ(s.threads, 3u);
  EXPECT_EQ(s.queued, 0u);
  EXPECT_EQ(s.running, 0u);
  EXPECT_EQ(s.completed, static_cast<std::uint64_t>(n));
}

TEST(ThreadPool, StatsShowQueuedAndRunningJobs) {
  eddy::thread_pool pool(1);
  std::latch started(1);
  std::promise<void> gate;
  auto blocker = pool.submit([&, g = gate.get_future()]() mutable {
    started.count_down();
    g.wait();
  });
  started.wait();
  std::vector<std::future<void>> queued;
  for (int i = 0; i < 5; ++i) queued.push_back(pool.submit([] {}));
  eddy::pool_stats s = pool.stats();
  EXPECT_EQ(s.running, 1u);
  EXPECT_EQ(s.queued, 5u);
  gate.set_value();
  blocker.get();
  for (auto& f : queued) f.get();
}

TEST(ThreadPool, DefaultPoolsHaveTheirDocumentedShape) {
  eddy::thread_pool& cpu = eddy::cpu_pool();
  eddy::thread_pool& blocking = eddy::blocking_pool();
  EXPECT_EQ(&cpu, &eddy::cpu_pool());
  EXPECT_EQ(cpu.name(), "eddy-cpu");
  EXPECT_GE(cpu.max_threads(), 1u);
  EXPECT_EQ(cpu.stats().threads, cpu.max_threads());
  EXPECT_EQ(blocking.name(), "eddy-blk");
  EXPECT_EQ(blocking.max_threads(), 512u);
  EXPECT_EQ(eddy::slow_work_class().max_concurrent(), 16u);
  EXPECT_EQ(&eddy::slow_work_class().pool(), &blocking);
  EXPECT_EQ(eddy::blocking_work_class().max_concurrent(), 512u - 16u);
  EXPECT_EQ(&eddy::blocking_work_class().pool(), &blocking);
  EXPECT_EQ(cpu.submit([] { return eddy::thread_pool::current(); }).get(), &cpu);
  EXPECT_EQ(blocking.submit([] { return eddy::thread_pool::current(); }).get(), &blocking);
}

}  // namespace
