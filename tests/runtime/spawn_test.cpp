// spawn and join_handle: results, detach, drop, and exceptions nobody awaited
// (RELIABILITY.md row 14).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <eddy/io/fd.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/loop_fixture.hpp"

using namespace std::chrono_literals;
using eddy::task;

namespace {

class spawn_test : public eddy_test::loop_test {
 protected:
  void collect_errors() {
    lp().set_exception_handler([this](std::exception_ptr e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        errors_.emplace_back(ex.what());
      }
    });
  }
  std::vector<std::string> errors_;
};

task<int> value_after(std::chrono::milliseconds d, int v) {
  co_await eddy::sleep_for(d);
  co_return v;
}
task<void> fail_after(std::chrono::milliseconds d, std::string msg) {
  co_await eddy::sleep_for(d);
  throw std::runtime_error(msg);
}

// The drain pattern: cancel a task, then join it. 3: a cancel of this task that
// came during the join (while the joined task had not yet seen its own) stayed
// here and reached the next await; 2: it was merged into the joined task's and lost.
task<int> cancel_then_join(eddy::join_handle<void>* h) {
  h->cancel();
  try {
    co_await *h;
  } catch (const eddy::cancelled_error&) {
  }
  try {
    co_await eddy::sleep_for(2s);
  } catch (const eddy::cancelled_error&) {
    co_return 3;
  }
  co_return 2;
}

// Ignores its first cancel and waits again; 1 if the second wait was cancelled.
task<int> takes_two_cancels() {
  try {
    co_await eddy::sleep_for(2s);
  } catch (const eddy::cancelled_error&) {
  }
  try {
    co_await eddy::sleep_for(10s);
  } catch (const eddy::cancelled_error&) {
    co_return 1;
  }
  co_return 0;
}

// Cancels the joined task itself, then joins it; returns what the join returned.
task<int> cancel_once_then_join(eddy::join_handle<int>* h) {
  h->cancel();
  co_return co_await *h;
}

}  // namespace

TEST_P(spawn_test, join_returns_the_value_and_tasks_run_concurrently) {
  auto f = []() -> task<int> {
    auto a = eddy::spawn(value_after(20ms, 1));
    auto b = eddy::spawn(value_after(20ms, 2));
    auto c = eddy::spawn(value_after(20ms, 3));
    const auto start = eddy::clock::now();
    int s = co_await a + co_await b + co_await c;
    co_return (eddy::clock::now() - start < 59ms) ? s : -s;  // sequential would take 60 ms
  };
  EXPECT_EQ(run(f()), 6);
}

TEST_P(spawn_test, spawned_tasks_start_on_a_later_turn_not_inline) {
  auto f = []() -> task<bool> {
    bool started = false;
    auto g = [](bool* s) -> task<void> {
      *s = true;
      co_return;
    };
    auto h = eddy::spawn(g(&started));
    const bool inline_start = started;
    co_await h;
    co_return !inline_start && started;
  };
  EXPECT_TRUE(run(f()));
}

TEST_P(spawn_test, joining_a_finished_task_returns_at_once) {
  auto f = []() -> task<int> {
    auto h = eddy::spawn(value_after(0ms, 9));
    co_await eddy::sleep_for(2ms);
    EXPECT_TRUE(h.done());
    co_return co_await h;
  };
  EXPECT_EQ(run(f()), 9);
}

TEST_P(spawn_test, exceptions_cross_the_join) {
  auto f = []() -> task<std::string> {
    auto h = eddy::spawn(fail_after(1ms, "child failed"));
    try {
      co_await h;
    } catch (const std::runtime_error& e) {
      co_return e.what();
    }
    co_return "";
  };
  EXPECT_EQ(run(f()), "child failed");
}

TEST_P(spawn_test, a_thousand_detached_failures_all_reach_the_exception_handler) {
  collect_errors();
  auto f = []() -> task<void> {
    for (int i = 0; i < 1000; ++i) eddy::spawn(fail_after(std::chrono::milliseconds(i % 5), "detached " + std::to_string(i))).detach();
    co_await eddy::sleep_for(20ms);
  };
  run(f());
  EXPECT_EQ(errors_.size(), 1000u);
}

TEST_P(spawn_test, a_dropped_handle_detaches_and_an_unretrieved_failure_is_reported) {
  collect_errors();
  auto f = []() -> task<void> {
    { auto h = eddy::spawn(fail_after(1ms, "dropped")); }
    co_await eddy::sleep_for(10ms);
  };
  run(f());
  ASSERT_EQ(errors_.size(), 1u);
  EXPECT_EQ(errors_[0], "dropped");
}

TEST_P(spawn_test, a_failure_that_was_awaited_is_not_reported_again) {
  collect_errors();
  auto f = []() -> task<void> {
    auto h = eddy::spawn(fail_after(1ms, "seen"));
    try {
      co_await h;
    } catch (const std::runtime_error&) {
    }
  };
  run(f());
  EXPECT_TRUE(errors_.empty());
}

TEST_P(spawn_test, cancelled_detached_tasks_are_not_reported) {
  collect_errors();
  auto f = []() -> task<void> {
    auto h = eddy::spawn(value_after(1h, 0));
    h.cancel();
    h.detach();
    co_await eddy::sleep_for(2ms);
  };
  run(f());
  EXPECT_TRUE(errors_.empty());
}

TEST_P(spawn_test, a_task_has_one_awaiter) {
  auto f = []() -> task<void> {
    auto h = eddy::spawn(value_after(5ms, 1));
    auto other = [](eddy::join_handle<int>* h) -> task<void> { (void)co_await *h; };
    auto o = eddy::spawn(other(&h));
    co_await eddy::sleep_for(1ms);
    (void)co_await h;
  };
  EXPECT_THROW(run(f()), std::logic_error);
}

EDDY_BACKEND_TEST_SUITE(spawn_test);

// A spawned task's core is a block of its own (loop::start); a task that is only
// awaited carries none. It used to sit in every frame's promise, 152 bytes in each
// (for an idle connection's pending receive, a third of its frame).
TEST(task_layout, an_awaited_tasks_promise_carries_no_task_core) {
  EXPECT_LT(sizeof(task<int>::promise_type), sizeof(eddy::detail::task_core));
  EXPECT_LT(sizeof(task<void>::promise_type), sizeof(eddy::detail::task_core));
}

// Many spawned tasks, each with its own core, finish, are joined or detached, and
// leave nothing behind (ASan checks each core is freed once, with its frame).
TEST_P(spawn_test, ten_thousand_spawned_cores_are_freed_with_their_frames) {
  auto f = []() -> task<long> {
    std::vector<eddy::join_handle<int>> hs;
    long sum = 0;
    for (int i = 0; i < 10'000; ++i) {
      auto h = eddy::spawn(value_after(0ms, i));
      if (i % 3 == 0) h.detach();
      else hs.push_back(std::move(h));
    }
    for (auto& h : hs) sum += co_await h;
    co_return sum;
  };
  long expect = 0;
  for (int i = 0; i < 10'000; ++i)
    if (i % 3 != 0) expect += i;
  EXPECT_EQ(run(f()), expect);
}

namespace {

task<void> sleep_2s() { co_await eddy::sleep_for(2s); }

// 1: the join threw (the joined task was cancelled); 3: the next await threw too.
task<int> join_then_sleep(eddy::join_handle<void>* h) {
  int stage = 0;
  try {
    co_await *h;
  } catch (const eddy::cancelled_error&) {
    stage = 1;
  }
  try {
    co_await eddy::sleep_for(2s);
    stage = 2;
  } catch (const eddy::cancelled_error&) {
    stage = 3;
  }
  co_return stage;
}

// Cancels itself while running (the cancel is pending), then closes fd: 2 when the
// close closed it and the cancel came at the next await.
task<int> close_with_cancel_pending(eddy::join_handle<int>* self, int fd) {
  self->cancel();
  co_await eddy::close(fd);
  const bool closed = ::fcntl(fd, F_GETFD) == -1 && errno == EBADF;
  try {
    co_await eddy::sleep_for(1ms);
  } catch (const eddy::cancelled_error&) {
    co_return closed ? 2 : 1;
  }
  co_return 0;
}

}  // namespace

// Two cancels of a task that awaits a join: the first goes on to the joined task,
// the second stays with the awaiting task and reaches its next await. (Both used
// to go to the joined task, and the second was lost: a server's second signal.)
TEST_P(spawn_test, a_second_cancel_of_a_task_awaiting_a_join_reaches_its_next_await) {
  auto f = []() -> task<int> {
    auto inner = eddy::spawn(sleep_2s());
    auto outer = eddy::spawn(join_then_sleep(&inner));
    co_await eddy::sleep_for(1ms);  // outer now waits on the join
    outer.cancel();
    outer.cancel();
    co_return co_await outer;
  };
  EXPECT_EQ(run(f()), 3);
}

// `h.cancel(); co_await h;` and a cancel of the joining task in the same turn,
// before the joined task has resumed from its own: merged into that one, it was
// lost (a multi-loop server's second signal during its accept loop's stop). It
// stays with the joining task and reaches its next await.
TEST_P(spawn_test, a_cancel_during_a_join_of_a_task_already_cancelled_stays_with_the_joiner) {
  auto f = [this]() -> task<int> {
    auto inner = eddy::spawn(sleep_2s());
    co_await eddy::sleep_for(1ms);  // inner waits in its sleep
    auto outer = eddy::spawn(cancel_then_join(&inner));
    // Runs after outer's first step (inner cancelled, outer joining), before inner
    // resumes from that cancel, which outer's step queued behind this callback.
    lp().call_soon([&outer] { outer.cancel(); });
    co_return co_await outer;
  };
  EXPECT_EQ(run(f()), 3);
}

// Once the joined task has taken its cancel (caught it and waits again), a cancel
// of the joining task is forwarded to it again.
TEST_P(spawn_test, a_joined_task_that_caught_its_cancel_gets_the_next_one) {
  auto f = []() -> task<int> {
    auto inner = eddy::spawn(takes_two_cancels());
    co_await eddy::sleep_for(1ms);
    auto outer = eddy::spawn(cancel_once_then_join(&inner));
    co_await eddy::sleep_for(5ms);  // inner caught the first and waits 10 s
    outer.cancel();
    co_return co_await outer;
  };
  EXPECT_EQ(run(f()), 1);
}

// eddy::close is not a cancellation point: a task with a cancel pending closes its
// fd (it used to throw first and leak it) and meets the cancel at its next await.
TEST_P(spawn_test, close_in_a_task_with_a_cancel_pending_closes_the_fd) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
  auto f = [](int fd) -> task<int> {
    eddy::join_handle<int> h;
    h = eddy::spawn(close_with_cancel_pending(&h, fd));
    co_return co_await h;
  };
  EXPECT_EQ(run(f(p[0])), 2);
  ::close(p[1]);
}
