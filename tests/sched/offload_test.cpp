// to_thread / run_cpu / run_in: awaiting pool work from coroutines on a loop, on every
// backend this machine has.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <eddy/runtime/loop.hpp>
#include <eddy/runtime/task.hpp>
#include <eddy/runtime/time.hpp>
#include <eddy/sched/offload.hpp>
#include <eddy/sched/thread_pool.hpp>
#include <future>
#include <latch>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "pool_test_support.hpp"

namespace {

using namespace std::chrono_literals;

class Offload : public ::testing::TestWithParam<eddy::backend_kind> {
 protected:
  void SetUp() override {
    std::string why;
    if (!eddy::backend_available(GetParam(), &why)) GTEST_SKIP() << why;
    loop_ = std::make_unique<eddy::loop>(eddy::loop_options{.backend = GetParam()});
  }
  void TearDown() override {
    if (!loop_) return;
    loop_->close();
    EXPECT_EQ(loop_->stats().live_tasks, 0u);
  }
  template <class T>
  T run(eddy::task<T> t) {
    return loop_->run(std::move(t));
  }
  std::unique_ptr<eddy::loop> loop_;
};

eddy::task<int> add_on_blocking_pool(int x) {
  co_return co_await eddy::to_thread([](int v) { return v + 1; }, x);
}

TEST_P(Offload, ToThreadReturnsTheResultFromAnotherThread) {
  EXPECT_EQ(run(add_on_blocking_pool(41)), 42);
  auto where = [](std::thread::id loop_thread) -> eddy::task<bool> {
    auto pool = co_await eddy::to_thread([] { return eddy::thread_pool::current(); });
    auto id = co_await eddy::to_thread([] { return std::this_thread::get_id(); });
    co_return pool == &eddy::blocking_pool() && id != loop_thread;
  };
  EXPECT_TRUE(run(where(std::this_thread::get_id())));
}

TEST_P(Offload, RunCpuRunsOnTheCpuPool) {
  auto t = []() -> eddy::task<eddy::thread_pool*> {
    co_return co_await eddy::run_cpu([] { return eddy::thread_pool::current(); });
  };
  EXPECT_EQ(run(t()), &eddy::cpu_pool());
}

struct custom_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

TEST_P(Offload, ExceptionsCrossBackToTheCoroutineWithTheirType) {
  auto t = []() -> eddy::task<std::string> {
    try {
      co_await eddy::to_thread([]() -> int { throw custom_error("from a worker"); });
    } catch (const custom_error& e) {
      co_return e.what();
    }
    co_return "no exception";
  };
  EXPECT_EQ(run(t()), "from a worker");
}

TEST_P(Offload, MoveOnlyArgumentsAndResultsTravel) {
  auto t = []() -> eddy::task<int> {
    auto p =
        co_await eddy::run_cpu([](std::unique_ptr<int> v) { return v; }, std::make_unique<int>(5));
    co_return *p;
  };
  EXPECT_EQ(run(t()), 5);
}

TEST_P(Offload, TheLoopKeepsRunningWhileAJobBlocks) {
  // The job blocks until a timer on the loop fires: this completes only if the loop
  // goes on serving timers while the coroutine awaits the job.
  auto t = [](eddy::loop& l) -> eddy::task<int> {
    auto fired = std::make_shared<std::promise<void>>();
    auto timer = l.call_later(5ms, [fired] { fired->set_value(); });
    co_return co_await eddy::to_thread(
        [](std::shared_future<void> f) {
          f.wait();
          return 1;
        },
        fired->get_future().share());
  };
  EXPECT_EQ(run(t(*loop_)), 1);
}

TEST_P(Offload, BlockingCallsGetTheirOwnThreadsBeyondTheCoreCount) {
  // Eight calls that each wait until all eight are running: they finish only if the
  // blocking pool runs them on eight threads at once, whatever the number of cores.
  auto one = [](std::latch& all) -> eddy::task<void> {
    co_await eddy::to_thread([&all] { all.arrive_and_wait(); });
  };
  auto eight = [&one]() -> eddy::task<void> {
    std::latch all(8);
    std::vector<eddy::join_handle<void>> hs;
    for (int i = 0; i < 8; ++i) hs.push_back(eddy::spawn(one(all)));
    for (auto& h : hs) co_await h;
  };
  run(eight());
  EXPECT_GE(eddy::blocking_pool().stats().threads, 8u);
}

TEST_P(Offload, ManyConcurrentOffloadsAllReturn) {
  auto one = [](int i) -> eddy::task<int> {
    co_return co_await eddy::to_thread([](int v) { return v * 2; }, i);
  };
  auto many = [&one]() -> eddy::task<long> {
    std::vector<eddy::join_handle<int>> hs;
    for (int i = 0; i < 500; ++i) hs.push_back(eddy::spawn(one(i)));
    long sum = 0;
    for (auto& h : hs) sum += co_await h;
    co_return sum;
  };
  EXPECT_EQ(run(many()), 2L * 499 * 500 / 2);
}

// Occupies the only worker of `pool` until release().
struct busy_worker {
  explicit busy_worker(eddy::thread_pool& pool) {
    done = pool.submit([this] {
      started.count_down();
      gate.get_future().wait();
    });
    started.wait();
  }
  void release() {
    gate.set_value();
    done.get();
  }
  std::latch started{1};
  std::promise<void> gate;
  std::future<void> done;
};

TEST_P(Offload, CancellingBeforeTheJobStartsDropsIt) {
  eddy::thread_pool pool(1);
  busy_worker busy(pool);
  std::atomic<bool> ran{false};
  auto waiter = [](eddy::thread_pool& p, std::atomic<bool>& r) -> eddy::task<void> {
    co_await eddy::run_in(p, [&r] { r = true; });
  };
  auto t = [&]() -> eddy::task<bool> {
    auto h = eddy::spawn(waiter(pool, ran));
    co_await eddy::sleep_for(1ms);  // the waiter is suspended on the queued job
    h.cancel();
    try {
      co_await h;
    } catch (const eddy::cancelled_error&) {
      co_return true;
    }
    co_return false;
  };
  EXPECT_TRUE(run(t()));
  busy.release();
  EXPECT_TRUE(pool.shutdown(10s));
  EXPECT_FALSE(ran.load());
}

TEST_P(Offload, CancellingARunningJobStopsItsTokenAndDeliversItsResult) {
  eddy::thread_pool pool(1);
  std::atomic<bool> started{false};
  auto waiter = [](eddy::thread_pool& p, std::atomic<bool>& s, int& got) -> eddy::task<void> {
    got = co_await eddy::run_in(p, [&s](std::stop_token st) {
      s = true;
      while (!st.stop_requested()) std::this_thread::sleep_for(100us);
      return 7;
    });
    co_await eddy::sleep_for(0ms);  // the pending cancellation is delivered here
    got = -1;
  };
  auto t = [&]() -> eddy::task<int> {
    int got = 0;
    auto h = eddy::spawn(waiter(pool, started, got));
    while (!started) co_await eddy::sleep_for(1ms);
    h.cancel();
    try {
      co_await h;
    } catch (const eddy::cancelled_error&) {
    }
    co_return got;
  };
  EXPECT_EQ(run(t()), 7);
}

TEST_P(Offload, AClosedPoolFailsTheAwait) {
  eddy::thread_pool pool(1);
  EXPECT_TRUE(pool.shutdown(1s));
  auto t = [&]() -> eddy::task<bool> {
    try {
      co_await eddy::run_in(pool, [] { return 1; });
    } catch (const eddy::pool_closed&) {
      co_return true;
    }
    co_return false;
  };
  EXPECT_TRUE(run(t()));
}

TEST_P(Offload, RunInAWorkClassRespectsItsCap) {
  eddy::thread_pool pool(4);
  eddy::work_class one(pool, "one", 1);
  std::atomic<int> now{0}, peak{0};
  auto job = [&] {
    const int n = ++now;
    int p = peak.load();
    while (n > p && !peak.compare_exchange_weak(p, n)) {
    }
    std::this_thread::sleep_for(1ms);
    --now;
  };
  auto t = [&]() -> eddy::task<void> {
    auto one_job = [](eddy::work_class& c, decltype(job)& j) -> eddy::task<void> {
      co_await eddy::run_in(c, j);
    };
    std::vector<eddy::join_handle<void>> hs;
    for (int i = 0; i < 8; ++i) hs.push_back(eddy::spawn(one_job(one, job)));
    for (auto& h : hs) co_await h;
  };
  run(t());
  EXPECT_EQ(peak.load(), 1);
}

TEST_P(Offload, SlowJobsResumeThroughTheLoop) {
  // Longer than the inline-wait budget: the coroutine suspends and the result comes
  // back through call_soon_threadsafe.
  auto t = []() -> eddy::task<int> {
    int sum = 0;
    for (int i = 0; i < 5; ++i)
      sum += co_await eddy::to_thread([] {
        std::this_thread::sleep_for(2ms);
        return 1;
      });
    co_return sum;
  };
  EXPECT_EQ(run(t()), 5);
}

INSTANTIATE_TEST_SUITE_P(Backends, Offload,
                         ::testing::ValuesIn(eddy::backend_kinds()),
                         [](const auto& info) {
                           return std::string(eddy::backend_name(info.param));
                         });

}  // namespace
