// call_soon_threadsafe and the loop handle: any thread may post; wakeups coalesce.
#include <atomic>
#include <thread>
#include <vector>

#include "support/loop_fixture.hpp"

using namespace std::chrono_literals;
using eddy::task;

namespace {

class threadsafe_test : public eddy_test::loop_test {};

}  // namespace

TEST_P(threadsafe_test, four_threads_post_and_every_callback_runs_in_per_thread_order) {
  constexpr int per_thread = 20'000;
  std::vector<std::vector<int>> seen(4);
  std::atomic<int> total{0};
  eddy::event all_done;
  eddy::loop_handle h = lp().handle();
  auto main = [](eddy::event* done) -> task<void> { co_await done->wait(); };
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        const bool ok = h.call_soon_threadsafe([&, t, i] {
          seen[static_cast<std::size_t>(t)].push_back(i);
          if (++total == 4 * per_thread) all_done.set();
        });
        ASSERT_TRUE(ok);
      }
    });
  }
  run(main(&all_done));
  for (auto& th : ts) th.join();
  for (auto& v : seen) {
    ASSERT_EQ(v.size(), static_cast<std::size_t>(per_thread));
    for (int i = 0; i < per_thread; ++i) ASSERT_EQ(v[static_cast<std::size_t>(i)], i);
  }
  // Coalescing: far fewer eventfd writes than posts.
  EXPECT_LT(lp().stats().wakeups, static_cast<std::uint64_t>(4 * per_thread));
}

TEST_P(threadsafe_test, a_post_wakes_a_sleeping_loop) {
  eddy::loop_handle h = lp().handle();
  auto main = [](eddy::loop_handle h) -> task<bool> {
    eddy::event e;
    std::thread t([h, &e] {
      std::this_thread::sleep_for(20ms);
      (void)h.call_soon_threadsafe([&e] { e.set(); });
    });
    co_await e.wait();  // the loop blocks with no timer: only the post can wake it
    t.join();
    co_return true;
  };
  EXPECT_TRUE(run(main(h)));
  EXPECT_GE(lp().stats().wakeups, 1u);
}

TEST_P(threadsafe_test, a_spinning_idle_loop_still_runs_posts_and_timers) {
  loop_.reset();
  opts_.idle_spin = std::chrono::microseconds(300);
  make_loop();
  eddy::loop_handle h = lp().handle();
  auto main = [](eddy::loop_handle h) -> task<int> {
    eddy::event e;
    int got = 0;
    std::thread t([h, &e, &got] {
      for (int i = 0; i < 100; ++i) {
        std::this_thread::sleep_for(std::chrono::microseconds(i % 2 ? 50 : 500));
        (void)h.call_soon_threadsafe([&got, &e, i] {
          ++got;
          if (i == 99) e.set();
        });
      }
    });
    co_await eddy::sleep_for(1ms);  // a timer inside the spin window still fires
    co_await e.wait();
    t.join();
    co_return got;
  };
  EXPECT_EQ(run(main(h)), 100);
}

TEST_P(threadsafe_test, stop_from_another_thread_ends_run_forever) {
  eddy::loop_handle h = lp().handle();
  std::thread t([h] {
    std::this_thread::sleep_for(10ms);
    EXPECT_TRUE(h.stop());
  });
  lp().run_forever();
  t.join();
}

TEST_P(threadsafe_test, posting_to_a_closed_loop_returns_false_and_drops_the_callback) {
  eddy::loop_handle h = lp().handle();
  auto token = std::make_shared<int>(0);
  lp().close();
  EXPECT_FALSE(h.call_soon_threadsafe([token] {}));
  EXPECT_EQ(token.use_count(), 1) << "the rejected callback was destroyed";
  EXPECT_FALSE(h.stop());
  loop_.reset();
  EXPECT_FALSE(h.call_soon_threadsafe([] {})) << "the handle outlives the loop";
}

TEST_P(threadsafe_test, posts_racing_close_either_run_or_are_refused_never_lost) {
  for (int round = 0; round < 20; ++round) {
    eddy::loop l(opts_);
    eddy::loop_handle h = l.handle();
    std::atomic<int> accepted{0};
    std::atomic<int> ran{0};
    std::thread t([&] {
      for (int i = 0; i < 2000; ++i)
        if (h.call_soon_threadsafe([&ran] { ++ran; })) ++accepted;
    });
    l.run_once();
    l.close();
    t.join();
    EXPECT_EQ(ran.load(), accepted.load());
  }
}

EDDY_BACKEND_TEST_SUITE(threadsafe_test);
