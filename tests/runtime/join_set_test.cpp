// join_set (issue 13, point 2): tasks that do not fail together. A failure
// cancels no sibling and not the owner; outcomes come back in finishing order or
// go to a handler; the set is cancellable and awaitable as a whole; an outside
// cancellation (as Ctrl-C delivers) is told apart from a task's failure.
#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/loop_fixture.hpp"

using namespace std::chrono_literals;
using eddy::task;

namespace {

class join_set_test : public eddy_test::loop_test {};

task<int> value_after(std::chrono::milliseconds d, int v) {
  co_await eddy::sleep_for(d);
  co_return v;
}
task<int> fail_after(std::chrono::milliseconds d, std::string why) {
  co_await eddy::sleep_for(d);
  throw std::runtime_error(why);
}
task<void> sleep_forever() { co_await eddy::sleep_for(3600s); }

}  // namespace

TEST_P(join_set_test, a_failure_cancels_no_sibling_and_outcomes_come_in_finishing_order) {
  int reported = 0;
  lp().set_exception_handler([&](std::exception_ptr) { ++reported; });
  auto f = []() -> task<std::string> {
    eddy::join_set<int> set;
    set.spawn(value_after(30ms, 3));
    set.spawn(fail_after(10ms, "boom"));
    set.spawn(value_after(20ms, 2));
    EXPECT_EQ(set.size(), 3u);
    std::string order;
    while (auto o = co_await set.next()) {
      if (o->ok()) order += std::to_string(o->value());
      else if (o->failed()) order += "F(" + o->message() + ")";
      else order += "C";
    }
    EXPECT_TRUE(set.empty());
    co_return order;
  };
  EXPECT_EQ(run(f()), "F(boom)23");
  EXPECT_EQ(reported, 0) << "a failure taken through next() is not unhandled";
}

TEST_P(join_set_test, a_handler_gets_each_outcome_and_the_set_keeps_only_live_tasks) {
  auto f = []() -> task<std::vector<std::string>> {
    std::vector<std::string> seen;
    eddy::join_set<int> set([&seen](eddy::outcome<int> o) { seen.push_back(o.message()); });
    for (int i = 0; i < 50; ++i) set.spawn(i % 10 == 0 ? fail_after(1ms, "bad") : value_after(1ms, i));
    co_await set.join();
    EXPECT_EQ(set.size(), 0u);
    EXPECT_THROW((void)co_await set.next(), std::logic_error);
    co_return seen;
  };
  const auto seen = run(f());
  ASSERT_EQ(seen.size(), 50u);
  EXPECT_EQ(std::count(seen.begin(), seen.end(), "bad"), 5);
  EXPECT_EQ(std::count(seen.begin(), seen.end(), "ok"), 45);
}

TEST_P(join_set_test, a_tasks_failure_never_cancels_the_owner) {
  auto f = []() -> task<bool> {
    eddy::join_set<int> set([](eddy::outcome<int>) {});
    set.spawn(fail_after(1ms, "x"));
    co_await eddy::sleep_for(20ms);  // would see cancelled_error under a task_group
    co_return set.running() == 0;
  };
  EXPECT_TRUE(run(f()));
}

TEST_P(join_set_test, shutdown_cancels_every_task_and_waits_for_all) {
  auto f = []() -> task<int> {
    eddy::join_set<void> set;
    for (int i = 0; i < 10; ++i) set.spawn(sleep_forever());
    co_await eddy::sleep_for(1ms);
    co_await set.shutdown();
    EXPECT_EQ(set.running(), 0u);
    int cancelled = 0;
    while (auto o = co_await set.next()) cancelled += o->cancelled();
    co_return cancelled;
  };
  EXPECT_EQ(run(f()), 10);
}

TEST_P(join_set_test, an_outside_cancellation_is_a_cancelled_error_never_a_tasks_failure) {
  // The server pattern: the owner is cancelled from outside (as eddy::run does on
  // Ctrl-C) while its clients fail on their own; the owner sees cancelled_error,
  // shuts the set down, and every client failure reached the handler.
  auto server = []() -> task<int> {
    int failures = 0;
    eddy::join_set<int> clients([&failures](eddy::outcome<int> o) { failures += o.failed(); });
    try {
      for (int i = 0;; ++i) {
        clients.spawn(i % 2 ? fail_after(1ms, "reset") : task<int>(value_after(100s, i)));
        co_await eddy::sleep_for(1ms);
      }
    } catch (const eddy::cancelled_error&) {
      // From outside: a join_set never cancels its owner.
    }
    co_await clients.shutdown();
    co_return failures;
  };
  auto f = [](decltype(server) s) -> task<int> {
    auto h = eddy::spawn(s());
    co_await eddy::sleep_for(20ms);
    h.cancel();
    co_return co_await h;
  };
  EXPECT_GT(run(f(server)), 0);
}

TEST_P(join_set_test, cancelling_a_joiner_cancels_the_tasks_and_still_waits_for_them) {
  auto f = []() -> task<bool> {
    auto owner = []() -> task<void> {
      eddy::join_set<void> set;
      for (int i = 0; i < 5; ++i) set.spawn(sleep_forever());
      co_await set.join();
    };
    auto h = eddy::spawn(owner());
    co_await eddy::sleep_for(2ms);
    h.cancel();
    try {
      co_await h;
    } catch (const eddy::cancelled_error&) {
      co_return eddy::loop::current().stats().live_tasks == 1;  // only this task
    }
    co_return false;
  };
  EXPECT_TRUE(run(f()));
}

TEST_P(join_set_test, next_is_cancel_safe_no_outcome_is_lost) {
  auto f = []() -> task<int> {
    eddy::join_set<int> set;
    set.spawn(value_after(5ms, 7));
    try {
      (void)co_await eddy::with_timeout(1ms, set.next());
    } catch (const eddy::timeout_error&) {
    }
    auto o = co_await set.next();
    co_return o ? o->value() : -1;
  };
  EXPECT_EQ(run(f()), 7);
}

TEST_P(join_set_test, a_destroyed_set_cancels_its_tasks_and_reports_untaken_failures) {
  int reported = 0;
  lp().set_exception_handler([&](std::exception_ptr) { ++reported; });
  auto f = []() -> task<void> {
    {
      eddy::join_set<int> set;
      set.spawn(fail_after(1ms, "nobody took me"));
      set.spawn(value_after(3600s, 1));
      co_await eddy::sleep_for(10ms);
    }
    co_await eddy::sleep_for(1ms);  // the cancelled task finishes
  };
  run(f());
  EXPECT_EQ(reported, 1);
  EXPECT_EQ(lp().stats().live_tasks, 0u);
}

TEST_P(join_set_test, bad_arguments_are_clear_errors) {
  auto f = []() -> task<void> {
    EXPECT_THROW(eddy::join_set<int>(eddy::join_set<int>::handler{}), std::invalid_argument);
    eddy::join_set<int> set;
    EXPECT_THROW(set.spawn(task<int>{}), std::logic_error);
    co_return;
  };
  run(f());
  EXPECT_THROW(eddy::join_set<int>{}, std::logic_error);  // off a loop thread
}

TEST_P(join_set_test, task_group_reports_whether_it_cancelled_its_parent) {
  // task_group, for contrast: a child failure cancels the body; cancelled_parent()
  // and failure() say so, where an outside cancel leaves both unset.
  auto f = []() -> task<int> {
    int seen = 0;
    try {
      co_await eddy::with_task_group([&seen](eddy::task_group& g) -> task<void> {
        g.spawn(fail_after(1ms, "child")).detach();
        try {
          co_await eddy::sleep_for(3600s);
        } catch (const eddy::cancelled_error&) {
          seen = g.cancelled_parent() && g.failure() ? 1 : 2;
          throw;
        }
      });
    } catch (const std::runtime_error&) {
    }
    co_return seen;
  };
  EXPECT_EQ(run(f()), 1);
}

EDDY_BACKEND_TEST_SUITE(join_set_test);
