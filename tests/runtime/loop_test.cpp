// The loop: call_soon ordering, call_later/call_at, stop, close, errors.
#include <array>
#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/loop_fixture.hpp"

using namespace std::chrono_literals;
using eddy::task;

namespace {

class loop_test : public eddy_test::loop_test {};

task<void> sleep_a_bit(std::chrono::milliseconds d) { co_await eddy::sleep_for(d); }

}  // namespace

TEST_P(loop_test, call_soon_runs_callbacks_in_fifo_order) {
  std::vector<int> order;
  for (int i = 0; i < 1000; ++i) lp().call_soon([&order, i] { order.push_back(i); });
  while (order.size() < 1000) lp().run_once();
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(order[static_cast<std::size_t>(i)], i);
}

TEST_P(loop_test, callbacks_scheduled_by_callbacks_run_after_those_already_queued) {
  std::vector<int> order;
  lp().call_soon([&] {
    order.push_back(1);
    lp().call_soon([&] { order.push_back(3); });
  });
  lp().call_soon([&] { order.push_back(2); });
  lp().run_once();
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST_P(loop_test, a_task_that_always_yields_does_not_starve_timers_or_io) {
  auto spinner = [](bool* stop, long* spins) -> task<void> {
    while (!*stop) {
      ++*spins;
      co_await eddy::yield_now();
    }
  };
  auto main = [](decltype(spinner) sp) -> task<long> {
    bool stop = false;
    long spins = 0;
    auto h = eddy::spawn(sp(&stop, &spins));
    auto [r, w] = eddy::make_pipe();
    const std::array<std::byte, 1> one{std::byte{1}};
    co_await eddy::write_all(w.get(), one);
    std::array<std::byte, 4> b;
    (void)co_await eddy::read(r.get(), b);  // I/O completes while the spinner spins
    co_await eddy::sleep_for(5ms);          // and so does a timer
    stop = true;
    co_await h;
    co_return spins;
  };
  EXPECT_GT(run(main(spinner)), 0);
}

TEST_P(loop_test, the_ready_budget_bounds_one_turn) {
  loop_.reset();
  opts_.ready_batch = 10;
  make_loop();
  int ran = 0;
  for (int i = 0; i < 25; ++i) lp().call_soon([&] { ++ran; });
  lp().run_once();
  EXPECT_EQ(ran, 10);
  lp().run_once();
  EXPECT_EQ(ran, 20);
  lp().run_once();
  EXPECT_EQ(ran, 25);
}

TEST_P(loop_test, call_later_fires_in_deadline_order_and_cancel_prevents_it) {
  std::vector<int> order;
  auto h3 = lp().call_later(30ms, [&] { order.push_back(3); });
  auto h1 = lp().call_later(10ms, [&] { order.push_back(1); });
  auto hx = lp().call_later(20ms, [&] { order.push_back(99); });
  auto h2 = lp().call_later(20ms, [&] { order.push_back(2); });
  EXPECT_TRUE(hx.pending());
  EXPECT_TRUE(hx.cancel());
  EXPECT_FALSE(hx.cancel());
  EXPECT_FALSE(hx.pending());
  run(sleep_a_bit(40ms));
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
  EXPECT_FALSE(h1.pending());
  EXPECT_FALSE(h1.cancel()) << "cancel after the callback ran does nothing";
}

TEST_P(loop_test, call_at_in_the_past_runs_soon) {
  bool ran = false;
  auto h = lp().call_at(eddy::clock::now() - 1s, [&] { ran = true; });
  run(sleep_a_bit(2ms));
  EXPECT_TRUE(ran);
}

TEST_P(loop_test, dropping_a_timer_handle_does_not_cancel) {
  bool ran = false;
  { auto h = lp().call_later(1ms, [&] { ran = true; }); }
  run(sleep_a_bit(5ms));
  EXPECT_TRUE(ran);
}

TEST_P(loop_test, negative_delays_are_rejected) {
  EXPECT_THROW(lp().call_later(-1ms, [] {}), std::invalid_argument);
  auto f = []() -> task<void> { co_await eddy::sleep_for(-5ms); };
  EXPECT_THROW(run(f()), std::invalid_argument);
  auto g = []() -> task<int> { co_return co_await eddy::with_timeout(-1s, []() -> task<int> { co_return 1; }()); };
  EXPECT_THROW(run(g()), std::invalid_argument);
}

TEST_P(loop_test, stop_ends_run_forever) {
  int n = 0;
  lp().call_soon([&] { ++n; });
  lp().call_later(5ms, [&] { lp().stop(); });
  lp().run_forever();
  EXPECT_EQ(n, 1);
}

// asyncio's rule: stop() from a callback ends the iteration with the callbacks
// that were queued when it began; what they queue runs in the next run.
TEST_P(loop_test, stop_inside_a_callback_finishes_the_iteration_and_no_more) {
  std::vector<int> order;
  lp().call_soon([&] {
    order.push_back(1);
    lp().stop();
    lp().call_soon([&] { order.push_back(3); });
  });
  lp().call_soon([&] { order.push_back(2); });
  lp().run_forever();
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  lp().call_soon([&] { lp().stop(); });
  lp().run_forever();
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

// stop_now(): the entry that called it is the last one; the rest stays queued,
// in order, for the next run (Python's SystemExit leaves run_forever this way).
TEST_P(loop_test, stop_now_leaves_the_rest_of_the_ready_queue_in_order) {
  std::vector<int> order;
  lp().call_soon([&] {
    order.push_back(1);
    lp().stop_now();
  });
  for (int i = 2; i <= 4; ++i) lp().call_soon([&order, i] { order.push_back(i); });
  lp().run_forever();
  EXPECT_EQ(order, (std::vector<int>{1}));
  lp().call_soon([&] { lp().stop(); });
  lp().run_forever();
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3, 4}));
  // A plain stop() afterwards is not cut short by the earlier stop_now().
  lp().call_soon([&] { lp().stop(); });
  lp().call_soon([&] { order.push_back(5); });
  lp().run_forever();
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3, 4, 5}));
}

TEST_P(loop_test, stop_before_the_task_finished_makes_run_throw_and_work_resumes_later) {
  auto slow = []() -> task<int> {
    co_await eddy::sleep_for(20ms);
    co_return 5;
  };
  auto h = lp().spawn(slow());
  lp().call_later(2ms, [&] { lp().stop(); });
  EXPECT_THROW(run(sleep_a_bit(50ms)), std::runtime_error);
  EXPECT_FALSE(h.done());
  run(sleep_a_bit(60ms));  // the first main task and `slow` finish meanwhile
  ASSERT_TRUE(h.done());
  EXPECT_EQ(h.result(), 5);
}

TEST_P(loop_test, exceptions_from_callbacks_reach_the_handler_and_the_loop_continues) {
  std::vector<std::string> seen;
  lp().set_exception_handler([&](std::exception_ptr e) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      seen.emplace_back(ex.what());
    }
  });
  bool after = false;
  lp().call_soon([] { throw std::runtime_error("cb failed"); });
  lp().call_soon([&] { after = true; });
  lp().run_once();
  EXPECT_TRUE(after);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], "cb failed");
}

TEST_P(loop_test, use_after_close_is_a_clear_error) {
  lp().close();
  EXPECT_TRUE(lp().is_closed());
  EXPECT_THROW(lp().call_soon([] {}), eddy::loop_closed_error);
  EXPECT_THROW(lp().call_later(1ms, [] {}), eddy::loop_closed_error);
  EXPECT_THROW(lp().spawn([]() -> task<void> { co_return; }()), eddy::loop_closed_error);
  EXPECT_THROW(lp().run_once(), eddy::loop_closed_error);
  EXPECT_FALSE(lp().call_soon_threadsafe([] {}));
  try {
    run([]() -> task<void> { co_return; }());
    FAIL();
  } catch (const eddy::loop_closed_error& e) {
    EXPECT_NE(std::string(e.what()).find("closed"), std::string::npos);
  }
  lp().close();  // idempotent
}

TEST_P(loop_test, close_cancels_and_finishes_every_live_task) {
  int cancelled = 0;
  auto forever = [](int* c) -> task<void> {
    try {
      co_await eddy::sleep_for(1h);
    } catch (const eddy::cancelled_error&) {
      ++*c;
      throw;
    }
  };
  for (int i = 0; i < 100; ++i) lp().spawn(forever(&cancelled)).detach();
  lp().run_once();
  EXPECT_EQ(lp().stats().live_tasks, 100u);
  lp().close();
  EXPECT_EQ(cancelled, 100);
  EXPECT_EQ(lp().stats().live_tasks, 0u);
}

TEST_P(loop_test, current_is_only_set_while_running) {
  EXPECT_EQ(eddy::loop::current_or_null(), nullptr);
  EXPECT_THROW(eddy::loop::current(), std::logic_error);
  auto f = [](eddy::loop* expect) -> task<bool> { co_return &eddy::loop::current() == expect; };
  EXPECT_TRUE(run(f(&lp())));
  EXPECT_EQ(eddy::loop::current_or_null(), nullptr);
}

TEST_P(loop_test, reports_its_backend) {
  EXPECT_EQ(lp().backend(), GetParam());
  EXPECT_FALSE(lp().backend_name().empty());
}

TEST(loop_options_test, invalid_options_are_rejected_with_the_field_named) {
  auto expect_bad = [](eddy::loop_options o, const char* field) {
    try {
      eddy::loop l(o);
      FAIL() << "expected invalid_argument for " << field;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  eddy::loop_options o;
  o.uring_entries = 100;
  expect_bad(o, "uring_entries");
  o = {};
  o.uring_entries = 0;
  expect_bad(o, "uring_entries");
  o = {};
  o.uring_cq_entries = 3;
  expect_bad(o, "uring_cq_entries");
  o = {};
  o.ready_batch = 2'000'000;
  expect_bad(o, "ready_batch");
  o = {};
  o.idle_spin = std::chrono::microseconds(5000);
  expect_bad(o, "idle_spin");
  o = {};
  o.submit_after = std::chrono::microseconds(20'000);
  expect_bad(o, "submit_after");
  o = {};
  o.submit_after = std::chrono::microseconds(-1);
  expect_bad(o, "submit_after");
  o = {};
  o.trim_after_tasks = 200'000'000;
  expect_bad(o, "trim_after_tasks");
  o = {};
  o.uring_features = static_cast<eddy::uring_feature_set>(9);
  expect_bad(o, "uring_features");
  o = {};
  ::setenv("EDDY_URING_FEATURES", "newest", 1);
  expect_bad(o, "EDDY_URING_FEATURES");
  ::unsetenv("EDDY_URING_FEATURES");
}

TEST_P(loop_test, block_hooks_run_around_the_kernel_wait_and_nowhere_else) {
  struct hooks {
    int before = 0;
    int after = 0;
    bool inside = false;
    int callbacks_inside = 0;
  } h;
  lp().set_block_hooks(
      [](void* a) {
        auto* x = static_cast<hooks*>(a);
        ++x->before;
        x->inside = true;
      },
      [](void* a) {
        auto* x = static_cast<hooks*>(a);
        ++x->after;
        x->inside = false;
      },
      &h);
  int fired = 0;
  auto t = lp().call_later(5ms, [&] {
    ++fired;
    if (h.inside) ++h.callbacks_inside;
  });
  run(sleep_a_bit(20ms));
  EXPECT_EQ(fired, 1);
  EXPECT_GE(h.before, 1);  // the loop had nothing to do until the timer: it blocked
  EXPECT_EQ(h.before, h.after);
  EXPECT_EQ(h.callbacks_inside, 0);
  const int blocked = h.before;
  lp().call_soon([] {});
  lp().run_once(false);  // never blocks, so no hook runs
  EXPECT_EQ(h.before, blocked);
  lp().set_block_hooks(nullptr, nullptr, nullptr);
}

EDDY_BACKEND_TEST_SUITE(loop_test);

// `while (!done) run_once(true)`: the iteration that runs the callback setting
// `done` must not then sleep with nothing left to wait for. A watchdog thread
// wakes the loop if it does, and the test fails on that, not on time.
TEST_P(loop_test, blocking_run_once_returns_after_the_callback_it_ran) {
  std::atomic<bool> rounds_done{false};
  std::atomic<bool> watchdog_woke{false};
  eddy::loop_handle h = lp().handle();
  std::thread watchdog([&] {
    for (int i = 0; i < 200 && !rounds_done.load(); ++i) std::this_thread::sleep_for(50ms);
    if (rounds_done.load()) return;
    watchdog_woke = true;
    for (int i = 0; i < 100 && !rounds_done.load(); ++i) {
      (void)h.call_soon_threadsafe([] {});
      std::this_thread::sleep_for(50ms);
    }
  });
  for (int round = 0; round < 20; ++round) {
    bool fired = false;
    auto t = lp().call_later(1ms, [&] { fired = true; });
    for (int n = 0; !fired && n < 100'000; ++n) lp().run_once(true);
    EXPECT_TRUE(fired);
  }
  rounds_done = true;
  watchdog.join();
  EXPECT_FALSE(watchdog_woke) << "run_once(true) slept after running the timer's callback";
}
