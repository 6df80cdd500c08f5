// event, mutex, semaphore, channel: semantics on one loop.
#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/loop_fixture.hpp"

using namespace std::chrono_literals;
using eddy::task;

namespace {

class sync_test : public eddy_test::loop_test {};

}  // namespace

TEST_P(sync_test, event_wakes_every_waiter_and_stays_set_until_cleared) {
  auto f = []() -> task<int> {
    eddy::event e;
    int woken = 0;
    auto w = [](eddy::event* e, int* n) -> task<void> {
      co_await e->wait();
      ++*n;
    };
    std::vector<eddy::join_handle<void>> hs;
    for (int i = 0; i < 10; ++i) hs.push_back(eddy::spawn(w(&e, &woken)));
    co_await eddy::sleep_for(1ms);
    EXPECT_EQ(woken, 0);
    e.set();
    for (auto& h : hs) co_await h;
    co_await e.wait();  // set: immediate
    e.clear();
    EXPECT_FALSE(e.is_set());
    co_return woken;
  };
  EXPECT_EQ(run(f()), 10);
}

TEST_P(sync_test, mutex_excludes_and_hands_over_in_fifo_order) {
  auto f = []() -> task<std::vector<int>> {
    eddy::mutex m;
    std::vector<int> order;
    int inside = 0;
    auto worker = [](eddy::mutex* m, std::vector<int>* order, int* inside, int id) -> task<void> {
      auto g = co_await m->scoped_lock();
      EXPECT_EQ(++*inside, 1);
      order->push_back(id);
      co_await eddy::sleep_for(1ms);
      --*inside;
    };
    std::vector<eddy::join_handle<void>> hs;
    for (int i = 0; i < 5; ++i) hs.push_back(eddy::spawn(worker(&m, &order, &inside, i)));
    for (auto& h : hs) co_await h;
    EXPECT_FALSE(m.is_locked());
    co_return order;
  };
  EXPECT_EQ(run(f()), (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST_P(sync_test, unlocking_an_unlocked_mutex_is_an_error) {
  eddy::mutex m;
  EXPECT_THROW(m.unlock(), std::logic_error);
}

TEST_P(sync_test, semaphore_bounds_concurrency) {
  auto f = []() -> task<int> {
    eddy::semaphore s(3);
    int inside = 0;
    int peak = 0;
    auto worker = [](eddy::semaphore* s, int* inside, int* peak) -> task<void> {
      co_await s->acquire();
      *peak = std::max(*peak, ++*inside);
      co_await eddy::sleep_for(1ms);
      --*inside;
      s->release();
    };
    std::vector<eddy::join_handle<void>> hs;
    for (int i = 0; i < 20; ++i) hs.push_back(eddy::spawn(worker(&s, &inside, &peak)));
    for (auto& h : hs) co_await h;
    EXPECT_EQ(s.available(), 3u);
    co_return peak;
  };
  EXPECT_EQ(run(f()), 3);
}

TEST_P(sync_test, semaphore_rejects_bad_counts) {
  EXPECT_THROW(eddy::semaphore(eddy::semaphore::max_permits + 1), std::invalid_argument);
  eddy::semaphore s(1);
  EXPECT_THROW(s.release(0), std::invalid_argument);
}

TEST_P(sync_test, channel_is_fifo_and_bounded) {
  auto f = []() -> task<std::vector<int>> {
    eddy::channel<int> ch(4);
    std::size_t max_size = 0;
    auto producer = [](eddy::channel<int>* ch, std::size_t* mx) -> task<void> {
      for (int i = 0; i < 100; ++i) {
        co_await ch->send(i);
        *mx = std::max(*mx, ch->size());
      }
      ch->close();
    };
    auto p = eddy::spawn(producer(&ch, &max_size));
    std::vector<int> got;
    while (auto v = co_await ch.recv()) {
      got.push_back(*v);
      if (got.size() % 10 == 0) co_await eddy::sleep_for(1ms);
    }
    co_await p;
    EXPECT_LE(max_size, 4u);
    co_return got;
  };
  std::vector<int> expect(100);
  for (int i = 0; i < 100; ++i) expect[static_cast<std::size_t>(i)] = i;
  EXPECT_EQ(run(f()), expect);
}

TEST_P(sync_test, channel_close_drains_then_ends_and_refuses_sends) {
  auto f = []() -> task<void> {
    eddy::channel<std::string> ch(8);
    co_await ch.send("a");
    co_await ch.send("b");
    ch.close();
    EXPECT_THROW(co_await ch.send("c"), eddy::channel_closed_error);
    EXPECT_THROW(ch.try_send("c"), eddy::channel_closed_error);
    EXPECT_EQ(co_await ch.recv(), "a");
    EXPECT_EQ(co_await ch.recv(), "b");
    EXPECT_EQ(co_await ch.recv(), std::nullopt);
    EXPECT_EQ(co_await ch.recv(), std::nullopt);
  };
  run(f());
}

TEST_P(sync_test, channel_close_wakes_waiting_receivers_and_senders) {
  auto f = []() -> task<void> {
    eddy::channel<int> ch(1);
    auto rx = [](eddy::channel<int>* ch) -> task<std::optional<int>> { co_return co_await ch->recv(); };
    auto r = eddy::spawn(rx(&ch));
    co_await eddy::sleep_for(1ms);
    ch.close();
    EXPECT_EQ(co_await r, std::nullopt);

    eddy::channel<int> ch2(1);
    co_await ch2.send(1);
    auto tx = [](eddy::channel<int>* ch) -> task<void> { co_await ch->send(2); };
    auto t = eddy::spawn(tx(&ch2));
    co_await eddy::sleep_for(1ms);
    ch2.close();
    EXPECT_THROW(co_await t, eddy::channel_closed_error);
    EXPECT_EQ(ch2.try_recv(), 1);
  };
  run(f());
}

TEST_P(sync_test, channel_capacity_is_checked) {
  EXPECT_THROW(eddy::channel<int>(0), std::invalid_argument);
  EXPECT_THROW(eddy::channel<int>(eddy::channel<int>::max_capacity + 1), std::invalid_argument);
}

TEST_P(sync_test, channel_hands_values_directly_to_a_waiting_receiver) {
  auto f = []() -> task<int> {
    eddy::channel<std::unique_ptr<int>> ch(1);
    auto rx = [](eddy::channel<std::unique_ptr<int>>* ch) -> task<int> { co_return **co_await ch->recv(); };
    auto r = eddy::spawn(rx(&ch));
    co_await eddy::sleep_for(1ms);
    co_await ch.send(std::make_unique<int>(11));
    EXPECT_EQ(ch.size(), 0u);
    co_return co_await r;
  };
  EXPECT_EQ(run(f()), 11);
}

TEST_P(sync_test, a_scoped_semaphore_permit_is_released_at_the_end_of_its_scope) {
  auto f = []() -> task<int> {
    eddy::semaphore s(2);
    int peak = 0, inside = 0;
    auto worker = [](eddy::semaphore* s, int* inside, int* peak, bool fail) -> task<void> {
      auto permit = co_await s->scoped_acquire();
      EXPECT_TRUE(permit.owns_permit());
      *peak = std::max(*peak, ++*inside);
      co_await eddy::sleep_for(std::chrono::milliseconds(1));
      --*inside;
      if (fail) throw std::runtime_error("the permit is still released");
    };
    std::vector<task<void>> ws;
    for (int i = 0; i < 8; ++i) ws.push_back(worker(&s, &inside, &peak, i % 3 == 0));
    (void)co_await eddy::when_all_settled(std::move(ws));
    EXPECT_EQ(s.available(), 2u);
    {
      auto p = co_await s.scoped_acquire();
      p.release();  // early, once
      p.release();
      EXPECT_FALSE(p.owns_permit());
    }
    EXPECT_EQ(s.available(), 2u);
    co_return peak;
  };
  EXPECT_EQ(run(f()), 2);
}

EDDY_BACKEND_TEST_SUITE(sync_test);
