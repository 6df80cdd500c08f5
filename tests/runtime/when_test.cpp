// when_all and when_any.
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "support/loop_fixture.hpp"

using namespace std::chrono_literals;
using eddy::task;

namespace {

class when_test : public eddy_test::loop_test {};

task<int> value_after(std::chrono::milliseconds d, int v) {
  co_await eddy::sleep_for(d);
  co_return v;
}
task<void> void_after(std::chrono::milliseconds d) { co_await eddy::sleep_for(d); }
task<int> fail_after(std::chrono::milliseconds d) {
  co_await eddy::sleep_for(d);
  throw std::runtime_error("failed");
}

}  // namespace

TEST_P(when_test, when_all_returns_every_result_in_order) {
  auto f = []() -> task<int> {
    auto [a, b, c] = co_await eddy::when_all(value_after(3ms, 1), void_after(1ms), value_after(2ms, 3));
    static_assert(std::is_same_v<decltype(b), std::monostate>);
    std::vector<task<int>> v;
    for (int i = 0; i < 10; ++i) v.push_back(value_after(std::chrono::milliseconds(10 - i), i));
    auto all = co_await eddy::when_all(std::move(v));
    int s = 0;
    for (int i = 0; i < 10; ++i) s += (all[static_cast<std::size_t>(i)] == i);
    co_return a + c + s;
  };
  EXPECT_EQ(run(f()), 14);
}

TEST_P(when_test, when_all_cancels_the_rest_on_failure) {
  auto f = []() -> task<std::string> {
    try {
      (void)co_await eddy::when_all(value_after(1h, 1), fail_after(1ms));
    } catch (const std::runtime_error& e) {
      co_return e.what();
    }
    co_return "";
  };
  EXPECT_EQ(run(f()), "failed");
  EXPECT_EQ(lp().stats().live_tasks, 0u);
}

TEST_P(when_test, when_any_returns_the_first_and_cancels_the_rest) {
  auto f = []() -> task<int> {
    auto r = co_await eddy::when_any(value_after(1h, 1), value_after(1ms, 2), void_after(1h));
    EXPECT_EQ(r.index(), 1u);
    std::vector<task<int>> v;
    v.push_back(value_after(1h, 0));
    v.push_back(value_after(2ms, 5));
    auto [i, val] = co_await eddy::when_any(std::move(v));
    EXPECT_EQ(i, 1u);
    co_return std::get<1>(r) + val;
  };
  EXPECT_EQ(run(f()), 7);
  EXPECT_EQ(lp().stats().live_tasks, 0u);
}

TEST_P(when_test, when_any_rethrows_a_failure_that_finished_first) {
  auto f = []() -> task<void> { (void)co_await eddy::when_any(value_after(1h, 1), fail_after(1ms)); };
  EXPECT_THROW(run(f()), std::runtime_error);
}

TEST_P(when_test, when_any_of_nothing_is_an_error) {
  auto f = []() -> task<void> { (void)co_await eddy::when_any(std::vector<task<int>>{}); };
  EXPECT_THROW(run(f()), std::invalid_argument);
}

EDDY_BACKEND_TEST_SUITE(when_test);
