// eddy::interval's missed-tick policies under a stalled loop, with_deadline /
// timeout_at, and with_timeout's clock starting when it is awaited.
#include <thread>
#include <vector>

#include "support/loop_fixture.hpp"

namespace {

using namespace std::chrono_literals;

class interval : public eddy_test::loop_test {};

constexpr auto period = 20ms;
constexpr auto stall = 110ms;

struct ticks {
  eddy::clock::time_point start;
  eddy::clock::time_point stall_end;
  std::vector<eddy::clock::time_point> at;  // each tick's scheduled time
};

// Tick once, block the loop thread for `stall` (the loop cannot run), then tick
// four more times.
eddy::task<ticks> stalled_ticks(eddy::missed_tick policy) {
  ticks t;
  t.start = eddy::clock::now();
  eddy::interval every(period, policy, t.start);
  t.at.push_back(co_await every.tick());
  std::this_thread::sleep_for(stall);
  t.stall_end = eddy::clock::now();
  for (int i = 0; i < 4; ++i) t.at.push_back(co_await every.tick());
  co_return t;
}

TEST_P(interval, the_first_tick_is_at_start) {
  const auto t = run(stalled_ticks(eddy::missed_tick::burst));
  EXPECT_EQ(t.at[0], t.start);
}

TEST_P(interval, burst_fires_the_missed_ticks_on_the_grid) {
  const ticks t = run(stalled_ticks(eddy::missed_tick::burst));
  for (std::size_t k = 0; k < t.at.size(); ++k) EXPECT_EQ(t.at[k], t.start + k * period) << k;
}

TEST_P(interval, delay_restarts_the_schedule_after_the_late_tick) {
  const ticks t = run(stalled_ticks(eddy::missed_tick::delay));
  EXPECT_EQ(t.at[1], t.start + period);  // the late tick itself
  EXPECT_GE(t.at[2], t.stall_end + period);
  EXPECT_GE(t.at[3], t.at[2] + period);
}

TEST_P(interval, skip_drops_the_missed_ticks_and_stays_on_the_grid) {
  const ticks t = run(stalled_ticks(eddy::missed_tick::skip));
  EXPECT_EQ(t.at[1], t.start + period);
  EXPECT_GT(t.at[2], t.stall_end);
  EXPECT_EQ((t.at[2] - t.start) % period, eddy::clock::duration::zero());
  EXPECT_GE((t.at[2] - t.start) / period, 6);  // 110 ms stalled: ticks 2..5 dropped
  EXPECT_EQ(t.at[3], t.at[2] + period);
}

TEST_P(interval, a_cancelled_tick_consumes_nothing) {
  run([]() -> eddy::task<void> {
    const auto start = eddy::clock::now();
    eddy::interval every(30ms, eddy::missed_tick::burst, start);
    EXPECT_EQ(co_await every.tick(), start);
    EXPECT_THROW(co_await eddy::with_timeout(1ms, every.tick()), eddy::timeout_error);
    EXPECT_EQ(co_await every.tick(), start + 30ms);
  }());
}

TEST_P(interval, rejects_a_period_that_is_not_positive) {
  EXPECT_THROW(eddy::interval(0ms), std::invalid_argument);
  EXPECT_THROW(eddy::interval(-5ms), std::invalid_argument);
}

eddy::task<int> short_job() {
  co_await eddy::sleep_for(50ms);
  co_return 7;
}

// Regression: the limit used to count from with_timeout's call, so a task made
// and awaited later timed out before it had started.
TEST_P(interval, with_timeout_counts_from_the_first_await) {
  run([]() -> eddy::task<void> {
    auto t = eddy::with_timeout(500ms, short_job());
    co_await eddy::sleep_for(600ms);
    EXPECT_EQ(co_await std::move(t), 7);
  }());
}

TEST_P(interval, with_deadline_cancels_at_the_time_point) {
  run([]() -> eddy::task<void> {
    const auto deadline = eddy::clock::now() + 30ms;
    EXPECT_THROW(co_await eddy::with_deadline(deadline, eddy::sleep_for(10s)), eddy::timeout_error);
    EXPECT_GE(eddy::clock::now(), deadline);
    EXPECT_EQ(co_await eddy::timeout_at(eddy::clock::now() + 10s, short_job()), 7);
    // A deadline already past: the operation starts and is cancelled at once.
    EXPECT_THROW(co_await eddy::timeout_at(eddy::clock::now() - 1s, eddy::sleep_for(10s), "late"),
                 eddy::timeout_error);
  }());
}

EDDY_BACKEND_TEST_SUITE(interval);

}  // namespace
