// task_group: asyncio TaskGroup semantics.
#include <stdexcept>
#include <string>
#include <vector>

#include "support/loop_fixture.hpp"

using namespace std::chrono_literals;
using eddy::task;

namespace {

class task_group_test : public eddy_test::loop_test {};

task<void> sleep_then(std::chrono::milliseconds d, int* counter) {
  co_await eddy::sleep_for(d);
  ++*counter;
}
task<void> fail_after(std::chrono::milliseconds d, const char* msg) {
  co_await eddy::sleep_for(d);
  throw std::runtime_error(msg);
}
task<void> count_cancel(int* cancelled) {
  try {
    co_await eddy::sleep_for(1h);
  } catch (const eddy::cancelled_error&) {
    ++*cancelled;
    throw;
  }
}

}  // namespace

TEST_P(task_group_test, leaving_the_scope_waits_for_every_child) {
  int done = 0;
  auto f = [](int* done) -> task<void> {
    co_await eddy::with_task_group([done](eddy::task_group& g) -> task<void> {
      for (int i = 0; i < 50; ++i) g.spawn(sleep_then(std::chrono::milliseconds(i % 7), done)).detach();
      co_return;
    });
    EXPECT_EQ(*done, 50);
  };
  run(f(&done));
  EXPECT_EQ(done, 50);
}

TEST_P(task_group_test, the_first_failure_cancels_siblings_and_is_rethrown) {
  int cancelled = 0;
  auto f = [](int* cancelled) -> task<std::string> {
    try {
      co_await eddy::with_task_group([cancelled](eddy::task_group& g) -> task<void> {
        for (int i = 0; i < 10; ++i) g.spawn(count_cancel(cancelled)).detach();
        g.spawn(fail_after(2ms, "first")).detach();
        co_return;
      });
    } catch (const std::runtime_error& e) {
      co_return e.what();
    }
    co_return "nothing thrown";
  };
  EXPECT_EQ(run(f(&cancelled)), "first");
  EXPECT_EQ(cancelled, 10);
}

TEST_P(task_group_test, a_child_failure_cancels_the_body_too) {
  bool body_cancelled = false;
  auto f = [](bool* bc) -> task<std::string> {
    try {
      co_await eddy::with_task_group([bc](eddy::task_group& g) -> task<void> {
        g.spawn(fail_after(1ms, "child")).detach();
        try {
          co_await eddy::sleep_for(1h);
        } catch (const eddy::cancelled_error&) {
          *bc = true;
          throw;
        }
      });
    } catch (const std::runtime_error& e) {
      co_return e.what();
    }
    co_return "";
  };
  EXPECT_EQ(run(f(&body_cancelled)), "child");
  EXPECT_TRUE(body_cancelled);
}

TEST_P(task_group_test, later_failures_go_to_the_exception_handler) {
  std::vector<std::string> reported;
  lp().set_exception_handler([&](std::exception_ptr e) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      reported.emplace_back(ex.what());
    }
  });
  auto f = []() -> task<std::string> {
    try {
      co_await eddy::with_task_group([](eddy::task_group& g) -> task<void> {
        g.spawn(fail_after(1ms, "a")).detach();
        g.spawn(fail_after(1ms, "b")).detach();
        co_return;
      });
    } catch (const std::runtime_error& e) {
      co_return e.what();
    }
    co_return "";
  };
  EXPECT_EQ(run(f()), "a");
  EXPECT_EQ(reported, (std::vector<std::string>{"b"}));
}

TEST_P(task_group_test, a_body_exception_cancels_children_and_wins) {
  int cancelled = 0;
  auto f = [](int* c) -> task<std::string> {
    try {
      co_await eddy::with_task_group([c](eddy::task_group& g) -> task<void> {
        g.spawn(count_cancel(c)).detach();
        co_await eddy::sleep_for(1ms);
        throw std::logic_error("body");
      });
    } catch (const std::logic_error& e) {
      co_return e.what();
    }
    co_return "";
  };
  EXPECT_EQ(run(f(&cancelled)), "body");
  EXPECT_EQ(cancelled, 1);
}

TEST_P(task_group_test, cancelling_the_joiner_cancels_children_and_waits_for_them) {
  int cancelled = 0;
  auto f = [](int* c) -> task<void> {
    auto scope = [](int* c) -> task<void> {
      co_await eddy::with_task_group([c](eddy::task_group& g) -> task<void> {
        for (int i = 0; i < 5; ++i) g.spawn(count_cancel(c)).detach();
        co_return;
      });
    };
    auto h = eddy::spawn(scope(c));
    co_await eddy::sleep_for(2ms);
    h.cancel();
    EXPECT_THROW(co_await h, eddy::cancelled_error);
    EXPECT_EQ(*c, 5);
  };
  run(f(&cancelled));
  EXPECT_EQ(cancelled, 5);
}

TEST_P(task_group_test, a_cancelled_join_is_delivered_once_and_a_later_join_just_waits) {
  auto f = []() -> task<bool> {
    eddy::task_group g;
    g.spawn([]() -> task<void> { co_await eddy::sleep_for(1h); }()).detach();
    auto joiner = [](eddy::task_group* g) -> task<void> { co_await g->join(); };
    auto h = eddy::spawn(joiner(&g));
    co_await eddy::sleep_for(1ms);
    h.cancel();
    bool first_cancelled = false;
    try {
      co_await h;
    } catch (const eddy::cancelled_error&) {
      first_cancelled = true;
    }
    co_await g.join();  // nothing left, nothing cancelled: returns
    co_return first_cancelled;
  };
  EXPECT_TRUE(run(f()));
}

TEST_P(task_group_test, the_body_value_is_returned_and_handles_work) {
  auto f = []() -> task<int> {
    co_return co_await eddy::with_task_group([](eddy::task_group& g) -> task<int> {
      auto h = g.spawn([]() -> task<int> { co_return 20; }());
      co_return 22 + co_await h;
    });
  };
  EXPECT_EQ(run(f()), 42);
}

TEST_P(task_group_test, spawning_into_a_joined_group_is_an_error) {
  auto f = []() -> task<void> {
    eddy::task_group g;
    co_await g.join();
    g.spawn([]() -> task<void> { co_return; }()).detach();
  };
  EXPECT_THROW(run(f()), std::logic_error);
}

EDDY_BACKEND_TEST_SUITE(task_group_test);
