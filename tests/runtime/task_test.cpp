// task<T>: values, references, void, exceptions, laziness, deep synchronous chains.
#include <stdexcept>
#include <string>

#include "support/loop_fixture.hpp"

using eddy::task;

namespace {

class task_test : public eddy_test::loop_test {};

task<int> forty_two() { co_return 42; }
task<std::string> text() { co_return std::string(100, 'x'); }
task<void> nothing(int* hits) {
  ++*hits;
  co_return;
}
task<int&> ref_to(int* p) { co_return *p; }
task<int> thrower() {
  throw std::runtime_error("boom");
  co_return 0;
}
task<int> completes_synchronously() { co_return 1; }

task<long> million_sync_awaits() {
  long sum = 0;
  for (int i = 0; i < 1'000'000; ++i) sum += co_await completes_synchronously();
  co_return sum;
}

task<int> nested(int depth) {
  if (depth == 0) co_return 0;
  co_return 1 + co_await nested(depth - 1);
}

}  // namespace

TEST_P(task_test, returns_values_references_and_void) {
  EXPECT_EQ(run(forty_two()), 42);
  EXPECT_EQ(run(text()), std::string(100, 'x'));
  int hits = 0;
  run(nothing(&hits));
  EXPECT_EQ(hits, 1);
  int x = 7;
  int& r = run(ref_to(&x));
  EXPECT_EQ(&r, &x);
}

TEST_P(task_test, is_lazy_until_awaited) {
  int hits = 0;
  {
    task<void> t = nothing(&hits);
    EXPECT_EQ(hits, 0);
  }  // destroyed without running: frame freed, body never ran
  EXPECT_EQ(hits, 0);
}

TEST_P(task_test, exceptions_propagate_to_the_awaiter) {
  EXPECT_THROW(run(thrower()), std::runtime_error);
  auto outer = []() -> task<std::string> {
    try {
      co_await thrower();
    } catch (const std::runtime_error& e) {
      co_return e.what();
    }
    co_return "no";
  };
  EXPECT_EQ(run(outer()), "boom");
}

TEST_P(task_test, a_million_synchronously_completing_awaits_do_not_overflow_the_stack) {
  EXPECT_EQ(run(million_sync_awaits()), 1'000'000);
}

TEST_P(task_test, deep_nesting_resolves) { EXPECT_EQ(run(nested(10'000)), 10'000); }

TEST_P(task_test, awaiting_an_empty_task_is_a_clear_error) {
  auto f = []() -> task<int> {
    task<int> empty;
    co_return co_await std::move(empty);
  };
  try {
    run(f());
    FAIL() << "expected std::logic_error";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("empty task"), std::string::npos);
  }
  EXPECT_THROW(lp().spawn(task<int>{}), std::logic_error);
}

TEST_P(task_test, move_only_results_are_moved_out) {
  auto f = []() -> task<std::unique_ptr<int>> { co_return std::make_unique<int>(5); };
  auto g = [](task<std::unique_ptr<int>> t) -> task<int> {
    std::unique_ptr<int> p = co_await std::move(t);
    co_return *p;
  };
  EXPECT_EQ(run(g(f())), 5);
}

EDDY_BACKEND_TEST_SUITE(task_test);
