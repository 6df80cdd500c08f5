// Cancellation is delivered to whatever the task awaits, at every kind of await
// point, and the task resumes with cancelled_error; nothing handed over is lost.
#include <poll.h>

#include <array>
#include <stdexcept>
#include <string>

#include "support/loop_fixture.hpp"

using namespace std::chrono_literals;
using eddy::task;

namespace {

class cancel_test : public eddy_test::loop_test {};

enum class outcome { none, completed, cancelled, other };

// Spawns `body`, lets it reach its await, cancels it, and reports how it ended.
template <class T>
task<outcome> cancel_while_waiting(task<T> body) {
  auto h = eddy::spawn(std::move(body));
  co_await eddy::sleep_for(2ms);
  h.cancel();
  try {
    (void)co_await h;
    co_return outcome::completed;
  } catch (const eddy::cancelled_error&) {
    co_return outcome::cancelled;
  } catch (...) {
    co_return outcome::other;
  }
}

task<void> wait_forever_on_event(eddy::event* e) { co_await e->wait(); }

}  // namespace

TEST_P(cancel_test, at_sleep) {
  EXPECT_EQ(run(cancel_while_waiting([]() -> task<void> { co_await eddy::sleep_for(1h); }())), outcome::cancelled);
  EXPECT_EQ(lp().stats().armed_timers, 0u);
}

TEST_P(cancel_test, at_yield_now_when_requested_while_running) {
  auto f = []() -> task<outcome> {
    auto spin = []() -> task<void> {
      for (;;) co_await eddy::yield_now();
    };
    co_return co_await cancel_while_waiting(spin());
  };
  EXPECT_EQ(run(f()), outcome::cancelled);
}

TEST_P(cancel_test, at_event_wait) {
  eddy::event e;
  EXPECT_EQ(run(cancel_while_waiting(wait_forever_on_event(&e))), outcome::cancelled);
  EXPECT_EQ(e.waiters(), 0u);
}

TEST_P(cancel_test, at_mutex_lock_without_taking_the_lock) {
  eddy::mutex m;
  ASSERT_TRUE(m.try_lock());
  auto body = [](eddy::mutex* m) -> task<void> {
    auto g = co_await m->scoped_lock();
  };
  EXPECT_EQ(run(cancel_while_waiting(body(&m))), outcome::cancelled);
  m.unlock();
  EXPECT_FALSE(m.is_locked()) << "the cancelled waiter must not have been handed the lock";
}

TEST_P(cancel_test, at_semaphore_acquire) {
  eddy::semaphore s(0);
  auto body = [](eddy::semaphore* s) -> task<void> { co_await s->acquire(); };
  EXPECT_EQ(run(cancel_while_waiting(body(&s))), outcome::cancelled);
  s.release();
  EXPECT_EQ(s.available(), 1u);
}

TEST_P(cancel_test, at_channel_recv_and_send) {
  eddy::channel<int> ch(1);
  auto rx = [](eddy::channel<int>* ch) -> task<void> { (void)co_await ch->recv(); };
  EXPECT_EQ(run(cancel_while_waiting(rx(&ch))), outcome::cancelled);
  ASSERT_TRUE(ch.try_send(1));
  auto tx = [](eddy::channel<int>* ch) -> task<void> { co_await ch->send(2); };
  EXPECT_EQ(run(cancel_while_waiting(tx(&ch))), outcome::cancelled);
  EXPECT_EQ(ch.size(), 1u);
  EXPECT_EQ(ch.try_recv(), 1);
  EXPECT_EQ(ch.try_recv(), std::nullopt);
}

TEST_P(cancel_test, at_pipe_read_and_poll) {
  auto [r, w] = eddy::make_pipe();
  auto rd = [](int fd) -> task<void> {
    std::array<std::byte, 16> b;
    (void)co_await eddy::read(fd, b);
  };
  EXPECT_EQ(run(cancel_while_waiting(rd(r.get()))), outcome::cancelled);
  auto pl = [](int fd) -> task<void> { (void)co_await eddy::poll(fd, POLLIN); };
  EXPECT_EQ(run(cancel_while_waiting(pl(r.get()))), outcome::cancelled);
  EXPECT_EQ(lp().stats().in_flight_io, 0u);
  // The pipe still works afterwards: no cancelled read consumed anything.
  auto io = [](int rfd, int wfd) -> task<std::size_t> {
    const std::array<std::byte, 3> out{std::byte{1}, std::byte{2}, std::byte{3}};
    co_await eddy::write_all(wfd, out);
    std::array<std::byte, 16> in;
    co_return co_await eddy::read(rfd, in);
  };
  EXPECT_EQ(run(io(r.get(), w.get())), 3u);
}

TEST_P(cancel_test, at_join_forwards_to_the_joined_task) {
  auto f = []() -> task<bool> {
    auto child = eddy::spawn([]() -> task<void> { co_await eddy::sleep_for(1h); }());
    auto* core = child.core();
    auto waiter = [](eddy::join_handle<void> c) -> task<void> { co_await c; };
    auto w = eddy::spawn(waiter(std::move(child)));
    co_await eddy::sleep_for(2ms);
    w.cancel();
    try {
      co_await w;
    } catch (const eddy::cancelled_error&) {
      co_return core != nullptr;  // the child was cancelled too, or w would hang
    }
    co_return false;
  };
  EXPECT_TRUE(run(f()));
}

TEST_P(cancel_test, at_when_all_and_when_any) {
  auto sleepy = []() -> task<int> {
    co_await eddy::sleep_for(1h);
    co_return 1;
  };
  auto all = [](auto s) -> task<void> { (void)co_await eddy::when_all(s(), s()); };
  EXPECT_EQ(run(cancel_while_waiting(all(sleepy))), outcome::cancelled);
  auto any = [](auto s) -> task<void> { (void)co_await eddy::when_any(s(), s()); };
  EXPECT_EQ(run(cancel_while_waiting(any(sleepy))), outcome::cancelled);
  EXPECT_EQ(lp().stats().live_tasks, 0u);
}

TEST_P(cancel_test, at_with_timeout_gives_cancelled_not_timeout) {
  auto body = []() -> task<void> {
    (void)co_await eddy::with_timeout(1h, []() -> task<int> {
      co_await eddy::sleep_for(1h);
      co_return 0;
    }());
  };
  EXPECT_EQ(run(cancel_while_waiting(body())), outcome::cancelled);
}

TEST_P(cancel_test, before_start_the_body_never_runs) {
  auto f = []() -> task<bool> {
    bool ran_past_first_await = false;
    auto g = [](bool* r) -> task<void> {
      co_await eddy::yield_now();
      *r = true;
    };
    auto h = eddy::spawn(g(&ran_past_first_await));
    h.cancel();
    try {
      co_await h;
    } catch (const eddy::cancelled_error&) {
    }
    co_return !ran_past_first_await;
  };
  EXPECT_TRUE(run(f()));
}

TEST_P(cancel_test, a_task_may_catch_cancellation_clean_up_and_finish) {
  auto f = []() -> task<int> {
    auto g = []() -> task<int> {
      bool cancelled = false;
      try {
        co_await eddy::sleep_for(1h);
      } catch (const eddy::cancelled_error&) {
        cancelled = true;
      }
      if (cancelled) {
        co_await eddy::sleep_for(1ms);  // cleanup may await: cancellation was delivered once
        co_return 7;
      }
      co_return 0;
    };
    auto h = eddy::spawn(g());
    co_await eddy::sleep_for(1ms);
    h.cancel();
    co_return co_await h;
  };
  EXPECT_EQ(run(f()), 7);
}

TEST_P(cancel_test, cancelled_error_is_not_a_std_exception) {
  bool caught_as_std = false;
  auto f = [](bool* c) -> task<void> {
    try {
      co_await eddy::sleep_for(1h);
    } catch (const std::exception&) {
      *c = true;
    }
  };
  EXPECT_EQ(run(cancel_while_waiting(f(&caught_as_std))), outcome::cancelled);
  EXPECT_FALSE(caught_as_std);
}

TEST_P(cancel_test, with_timeout_expires_and_stops_the_operation) {
  auto f = []() -> task<std::string> {
    bool finished = false;
    auto op = [](bool* fin) -> task<int> {
      co_await eddy::sleep_for(1h);
      *fin = true;
      co_return 1;
    };
    try {
      (void)co_await eddy::with_timeout(5ms, op(&finished));
    } catch (const eddy::timeout_error& e) {
      co_return finished ? "ran" : e.what();
    }
    co_return "no timeout";
  };
  EXPECT_EQ(run(f()), "eddy: operation timed out after 5 ms");  // what, and after how long
  EXPECT_EQ(lp().stats().armed_timers, 0u);
}

TEST_P(cancel_test, with_timeout_returns_the_value_in_time_and_accepts_any_awaitable) {
  auto f = []() -> task<int> {
    int a = co_await eddy::with_timeout(1s, []() -> task<int> { co_return 5; }());
    eddy::event e;
    e.set();
    co_await eddy::with_timeout(1s, e.wait());
    co_return a;
  };
  EXPECT_EQ(run(f()), 5);
}

// sleep_for and fd operations are awaiters that cannot be copied; with_timeout
// takes them directly (it moves them, unawaited, into its child task).
TEST_P(cancel_test, with_timeout_takes_a_sleep_or_an_fd_operation_directly) {
  auto f = []() -> task<std::string> {
    std::string out;
    co_await eddy::with_timeout(1s, eddy::sleep_for(1ms));
    out += "slept;";
    try {
      co_await eddy::with_timeout(5ms, eddy::sleep_for(10s));
    } catch (const eddy::timeout_error&) {
      out += "sleep timed out;";
    }
    auto [r, w] = eddy::make_pipe();
    std::array<std::byte, 8> buf{};
    try {
      (void)co_await eddy::with_timeout(5ms, eddy::read(r.get(), buf));
    } catch (const eddy::timeout_error&) {
      out += "read timed out;";
    }
    const std::array<std::byte, 3> abc{std::byte{'a'}, std::byte{'b'}, std::byte{'c'}};
    (void)co_await eddy::write(w.get(), abc);
    const std::size_t n = co_await eddy::with_timeout(1s, eddy::read(r.get(), buf));
    out += std::string(reinterpret_cast<const char*>(buf.data()), n);
    co_return out;
  };
  EXPECT_EQ(run(f()), "slept;sleep timed out;read timed out;abc");
  EXPECT_EQ(lp().stats().armed_timers, 0u);
  EXPECT_EQ(lp().stats().in_flight_io, 0u);
}

EDDY_BACKEND_TEST_SUITE(cancel_test);
