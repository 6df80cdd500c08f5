// Timers: the wheel never fires early (checked exhaustively with a fake clock),
// and on a real loop sleeps and callbacks are never early (RELIABILITY.md row 13).
#include <chrono>
#include <cstdint>
#include <algorithm>
#include <random>
#include <thread>
#include <string>
#include <vector>

#include <eddy/runtime/detail/timer_wheel.hpp>

#include "support/loop_fixture.hpp"

using namespace std::chrono_literals;
using eddy::task;
using eddy::detail::timer_node;
using eddy::detail::timer_wheel;

namespace {

struct probe {
  timer_node node;
  std::int64_t fired_at = -1;
  static inline std::int64_t now = 0;
  static void fire(timer_node* n) noexcept { reinterpret_cast<probe*>(n)->fired_at = now; }
};

struct seq_probe {
  timer_node node;
  int id = 0;
  static inline std::vector<int> order;
  static void fire(timer_node* n) noexcept { order.push_back(reinterpret_cast<seq_probe*>(n)->id); }
};

}  // namespace

TEST(timer_wheel_test, every_entry_fires_at_the_first_advance_at_or_after_its_deadline) {
  std::mt19937_64 rng(12345);
  timer_wheel w;
  std::vector<probe> ps(20'000);
  constexpr std::int64_t ms = 1'000'000;
  // Deadlines across every level: up to ~2^33 ms (level 5), plus near ones.
  for (std::size_t i = 0; i < ps.size(); ++i) {
    ps[i].node.fire = &probe::fire;
    std::int64_t d;
    switch (i % 4) {
      case 0: d = static_cast<std::int64_t>(rng() % (100 * ms)); break;
      case 1: d = static_cast<std::int64_t>(rng() % (100'000 * ms)); break;
      case 2: d = static_cast<std::int64_t>(rng() % (100'000'000 * ms)); break;
      default: d = static_cast<std::int64_t>(rng() % (std::int64_t{1} << 33)) * ms; break;
    }
    w.arm(ps[i].node, d + 1);
  }
  // Cancel a few.
  for (std::size_t i = 0; i < ps.size(); i += 97) w.cancel(ps[i].node);
  // Advance in irregular steps, sometimes jumping straight to the next expiry.
  std::vector<std::int64_t> advances;
  std::int64_t now = 0;
  while (!w.empty()) {
    const auto next_ns = static_cast<std::int64_t>(w.next_tick()) * timer_wheel::tick_ns;
    const auto step = static_cast<std::int64_t>(rng() % (3 * ms));
    now = (rng() % 2) ? std::max(now + step, next_ns) : now + step;
    probe::now = now;
    w.advance(now);
    advances.push_back(now);
  }
  for (std::size_t i = 0; i < ps.size(); ++i) {
    const probe& p = ps[i];
    if (i % 97 == 0) {
      EXPECT_EQ(p.fired_at, -1) << "a cancelled entry fired";
      continue;
    }
    // It must fire at the first advance whose tick reached the deadline's tick.
    const std::int64_t due = static_cast<std::int64_t>(timer_wheel::tick_ceil(p.node.deadline_ns)) * timer_wheel::tick_ns;
    const auto first = std::lower_bound(advances.begin(), advances.end(), due);
    ASSERT_NE(first, advances.end());
    ASSERT_GE(p.fired_at, p.node.deadline_ns) << "fired early";
    ASSERT_EQ(p.fired_at, *first) << "fired late: deadline " << p.node.deadline_ns;
  }
}

// What one advance fires comes out in deadline order, ties in arming order
// (asyncio's heap): deadlines sharing a 1 ms tick, and deadlines already past.
TEST(timer_wheel_test, entries_due_together_fire_in_deadline_order) {
  std::vector<int>& order = seq_probe::order;
  order.clear();
  timer_wheel w;
  constexpr std::int64_t ms = 1'000'000;
  w.advance(10 * ms);
  // id: deadline. Past deadlines (the due list), then several inside tick 11.
  const std::vector<std::pair<int, std::int64_t>> arms = {
      {0, 10 * ms - 1}, {1, 5 * ms}, {2, 10 * ms + 700'000}, {3, 1}, {4, 10 * ms + 300'000},
      {5, 10 * ms + 300'000}, {6, 9 * ms}, {7, 10 * ms + 1}};
  std::vector<seq_probe> ps(arms.size());
  for (std::size_t i = 0; i < arms.size(); ++i) {
    ps[i].node.fire = &seq_probe::fire;
    ps[i].id = arms[i].first;
    w.arm(ps[i].node, arms[i].second);
  }
  w.cancel(ps[6].node);
  w.advance(11 * ms);
  EXPECT_EQ(order, (std::vector<int>{3, 1, 0, 7, 4, 5, 2}));
  EXPECT_TRUE(w.empty());
}

TEST(timer_wheel_test, arm_and_cancel_keep_size_exact) {
  timer_wheel w;
  std::vector<probe> ps(1000);
  for (std::size_t i = 0; i < ps.size(); ++i) {
    ps[i].node.fire = &probe::fire;
    w.arm(ps[i].node, static_cast<std::int64_t>(i) * 7'000'000 + 5);
  }
  EXPECT_EQ(w.size(), 1000u);
  for (auto& p : ps) w.cancel(p.node);
  EXPECT_EQ(w.size(), 0u);
  EXPECT_EQ(w.next_tick(), UINT64_MAX);
}

namespace {

class timer_test : public eddy_test::loop_test {};

task<void> sleeper(std::chrono::milliseconds d, int* early, int* done) {
  const auto start = eddy::clock::now();
  co_await eddy::sleep_for(d);
  if (eddy::clock::now() - start < d) ++*early;
  ++*done;
}

}  // namespace

TEST_P(timer_test, ten_thousand_random_sleeps_never_fire_early) {
  std::mt19937 rng(7);
  int early = 0;
  int done = 0;
  auto main = [](std::mt19937* rng, int* early, int* done) -> task<void> {
    std::vector<eddy::join_handle<void>> hs;
    for (int i = 0; i < 10'000; ++i) {
      hs.push_back(eddy::spawn(sleeper(std::chrono::milliseconds(1 + (*rng)() % 100), early, done)));
    }
    for (auto& h : hs) co_await h;
  };
  run(main(&rng, &early, &done));
  EXPECT_EQ(done, 10'000);
  EXPECT_EQ(early, 0);
}

TEST_P(timer_test, a_timer_armed_before_a_long_block_still_waits_its_full_delay) {
  // Block the loop 200 ms, then arm 100 ms: it fires >= 100 ms after it was armed
  // (a cached loop time would fire it at once).
  auto f = []() -> task<bool> {
    co_await eddy::yield_now();
    std::this_thread::sleep_for(200ms);
    const auto armed = eddy::clock::now();
    co_await eddy::sleep_for(100ms);
    co_return eddy::clock::now() - armed >= 100ms;
  };
  EXPECT_TRUE(run(f()));
}

TEST_P(timer_test, call_later_callbacks_are_never_early) {
  int early = 0;
  int fired = 0;
  std::mt19937 rng(3);
  std::vector<eddy::timer_handle> hs;
  for (int i = 0; i < 2000; ++i) {
    const auto d = std::chrono::microseconds(rng() % 30'000);
    const auto armed = eddy::clock::now();
    hs.push_back(lp().call_later(d, [&, d, armed] {
      ++fired;
      if (eddy::clock::now() - armed < d) ++early;
    }));
  }
  auto wait = []() -> task<void> { co_await eddy::sleep_for(40ms); };
  run(wait());
  EXPECT_EQ(fired, 2000);
  EXPECT_EQ(early, 0);
}

TEST_P(timer_test, sleep_until_the_past_yields_once) {
  auto f = []() -> task<int> {
    int n = 0;
    eddy::loop::current().call_soon([&n] { ++n; });
    co_await eddy::sleep_until(eddy::clock::now() - 1s);
    co_return n;
  };
  EXPECT_EQ(run(f()), 1);
}

TEST_P(timer_test, yield_now_lets_other_ready_work_run) {
  auto f = []() -> task<std::vector<int>> {
    std::vector<int> v;
    eddy::loop::current().call_soon([&v] { v.push_back(1); });
    v.push_back(0);
    co_await eddy::yield_now();
    v.push_back(2);
    co_return v;
  };
  EXPECT_EQ(run(f()), (std::vector<int>{0, 1, 2}));
}

TEST_P(timer_test, far_future_timers_can_be_armed_and_cancelled) {
  auto h = lp().call_later(std::chrono::hours(24 * 365 * 5), [] {});
  EXPECT_TRUE(h.pending());
  EXPECT_EQ(lp().stats().armed_timers, 1u);
  EXPECT_TRUE(h.cancel());
  EXPECT_EQ(lp().stats().armed_timers, 0u);
}

TEST_P(timer_test, a_timeout_error_says_what_timed_out_and_after_how_long) {
  auto f = []() -> task<std::string> {
    auto sleep_long = []() -> task<void> { co_await eddy::sleep_for(3600s); };
    std::string named, unnamed;
    try {
      co_await eddy::with_timeout(std::chrono::milliseconds(5), sleep_long(), "reading the request");
    } catch (const eddy::timeout_error& e) {
      named = e.what();
      EXPECT_EQ(e.operation(), "reading the request");
      EXPECT_EQ(e.after(), std::chrono::milliseconds(5));
    }
    try {
      co_await eddy::with_timeout(std::chrono::microseconds(1500), sleep_long());
    } catch (const eddy::timeout_error& e) {
      unnamed = e.what();
    }
    co_return named + "|" + unnamed;
  };
  EXPECT_EQ(run(f()), "eddy: reading the request timed out after 5 ms|eddy: operation timed out after 1.5 ms");
  EXPECT_EQ(eddy::timeout_error::format_duration(std::chrono::seconds(2)), "2 s");
  EXPECT_EQ(eddy::timeout_error::format_duration(std::chrono::minutes(5)), "5 min");
  EXPECT_EQ(eddy::timeout_error::format_duration(std::chrono::microseconds(20)), "20 us");
}

TEST_P(timer_test, a_connect_timeout_names_the_address) {
  // A full backlog of one: further SYNs are dropped, so connect waits.
  auto f = []() -> task<std::string> {
    eddy::tcp_listen_options o;
    o.backlog = 1;
    auto l = eddy::tcp_listener::bind(eddy::socket_address::loopback(0), o);
    std::vector<eddy::tcp_stream> fill;
    std::string msg;
    for (int i = 0; i < 8 && msg.empty(); ++i) {
      try {
        fill.push_back(co_await eddy::tcp_stream::connect(l.local_address(), {.timeout = 100ms}));
      } catch (const eddy::timeout_error& e) {
        msg = e.what();
      }
    }
    for (auto& s : fill) co_await s.close();
    const std::string want = "eddy: connect to " + l.local_address().to_string() + " timed out after 100 ms";
    co_await l.close();
    EXPECT_EQ(msg, want);
    co_return msg;
  };
  run(f());
}

EDDY_BACKEND_TEST_SUITE(timer_test);
