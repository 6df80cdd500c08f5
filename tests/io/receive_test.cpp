// receive(): bytes in loop-lent buffers (io_uring: multishot recv with the
// provided-buffer ring; epoll: pooled blocks), on every backend. Round trips with
// checksums, many connections against a ring of 256 buffers (so the per-socket
// cap and -ENOBUFS re-arming are exercised), buffers held by a slow consumer,
// cancel safety, and close with a receive pending followed by fd reuse.
#include <sys/socket.h>

#include <array>
#include <vector>

#include "io/net_support.hpp"
#include "support/loop_fixture.hpp"

using namespace std::chrono_literals;
using eddy::task;
using eddy_test::checksum;
using eddy_test::payload;

namespace {

class receive_test : public eddy_test::loop_test {};

template <class Stream>
task<void> echo_by_receive(Stream s) {
  try {
    for (;;) {
      eddy::recv_buffer b = co_await s.receive();
      if (b.empty()) break;
      co_await s.write_all(b.data());
    }
    s.shutdown_write();
  } catch (const std::system_error&) {
  }
  co_await s.close();
}

task<std::uint64_t> drain_by_receive(eddy::tcp_stream* c, std::size_t* total) {
  std::uint64_t h = checksum({});
  for (;;) {
    eddy::recv_buffer b = co_await c->receive();
    if (b.empty()) break;
    h = checksum(b.data(), h);
    *total += b.size();
  }
  co_return h;
}

}  // namespace

TEST_P(receive_test, echo_through_lent_buffers_keeps_every_byte) {
  auto f = []() -> task<int> {
    auto l = eddy_test::loopback_listener();
    const std::size_t sizes[] = {0, 1, 4096, 16 * 1024 + 1, 1u << 20, 8u << 20};
    auto srv = [](eddy::tcp_listener* l, std::size_t n) -> task<void> {
      for (std::size_t i = 0; i < n; ++i) co_await echo_by_receive(co_await l->accept());
    };
    auto h = eddy::spawn(srv(&l, std::size(sizes)));
    int ok = 0;
    for (std::size_t sz : sizes) {
      auto c = co_await eddy::tcp_stream::connect(l.local_address());
      const auto data = payload(sz, static_cast<std::uint32_t>(sz + 1));
      auto writer = [](eddy::tcp_stream* c, std::span<const std::byte> d) -> task<void> {
        co_await c->write_all(d);
        c->shutdown_write();
      };
      auto w = eddy::spawn(writer(&c, data));
      std::size_t total = 0;
      const std::uint64_t got = co_await drain_by_receive(&c, &total);
      co_await w;
      ok += got == checksum(data) && total == sz;
      co_await c.close();
    }
    co_await h;
    co_await l.close();
    co_return ok;
  };
  EXPECT_EQ(run(f()), 6);
}

TEST_P(receive_test, many_connections_share_the_ring_and_a_dry_ring_is_re_armed) {
  // 400 connections each get 10 chunks before anyone reads: far more than the
  // ring's 256 buffers. Per-socket caps and -ENOBUFS must cost nothing but time.
  auto f = []() -> task<int> {
    constexpr int n = 400;
    auto l = eddy_test::loopback_listener();
    std::vector<eddy::tcp_stream> clients, servers;
    for (int i = 0; i < n; ++i) {
      clients.push_back(co_await eddy::tcp_stream::connect(l.local_address()));
      servers.push_back(co_await l.accept());
    }
    // Arm every receiver first, so the data lands in ring buffers.
    auto first = [](eddy::tcp_stream* s) -> task<std::size_t> {
      co_return (co_await s->receive()).size();
    };
    std::vector<eddy::join_handle<std::size_t>> firsts;
    for (auto& s : servers) firsts.push_back(eddy::spawn(first(&s)));
    co_await eddy::sleep_for(1ms);
    const auto chunk = payload(4000, 1);
    for (auto& c : clients) {
      for (int k = 0; k < 10; ++k) co_await c.write_all(chunk);
      c.shutdown_write();
    }
    int ok = 0;
    for (int i = 0; i < n; ++i) {
      std::size_t total = co_await firsts[static_cast<std::size_t>(i)];
      for (;;) {
        eddy::recv_buffer b = co_await servers[static_cast<std::size_t>(i)].receive();
        if (b.empty()) break;
        total += b.size();
      }
      ok += total == 40'000;
    }
    for (auto& c : clients) co_await c.close();
    for (auto& s : servers) co_await s.close();
    co_await l.close();
    co_return ok;
  };
  EXPECT_EQ(run(f()), 400);
}

TEST_P(receive_test, buffers_held_by_a_slow_consumer_do_not_stop_other_connections) {
  auto f = []() -> task<bool> {
    auto l = eddy_test::loopback_listener();
    std::vector<eddy::tcp_stream> clients, servers;
    for (int i = 0; i < 300; ++i) {
      clients.push_back(co_await eddy::tcp_stream::connect(l.local_address()));
      servers.push_back(co_await l.accept());
    }
    std::vector<eddy::recv_buffer> held;  // more than the ring has
    const auto one = payload(100, 2);
    for (int i = 0; i < 300; ++i) {
      co_await clients[static_cast<std::size_t>(i)].write_all(one);
      held.push_back(co_await servers[static_cast<std::size_t>(i)].receive());
    }
    bool ok = true;
    for (auto& b : held) ok = ok && b.size() == 100;
    // With every ring buffer held, a new message still gets through.
    co_await clients[0].write_all(one);
    eddy::recv_buffer more = co_await servers[0].receive();
    ok = ok && more.size() == 100;
    held.clear();
    more.reset();
    for (auto& c : clients) co_await c.close();
    for (auto& s : servers) co_await s.close();
    co_await l.close();
    co_return ok;
  };
  EXPECT_TRUE(run(f()));
}

// try_receive() hands over what the multishot read queued while nobody waited,
// without waiting: several chunks for one gathered write, no copy. It never
// reports end of stream (receive() does), and is empty on a socket that never
// used receive().
TEST_P(receive_test, try_receive_takes_queued_chunks_for_a_gathered_write_and_leaves_eof_to_receive) {
  const bool ahead = lp().io_caps().receive_read_ahead;
  auto f = [ahead]() -> task<bool> {
    auto l = eddy_test::loopback_listener();
    auto c = co_await eddy::tcp_stream::connect(l.local_address());
    auto s = co_await l.accept();
    bool ok = s.try_receive().empty();  // receive() never used: nothing queued
    const auto data = payload(4u << 20, 11);
    auto writer = [](eddy::tcp_stream* c, std::span<const std::byte> d) -> task<void> {
      co_await c->write_all(d);
      c->shutdown_write();
    };
    auto w = eddy::spawn(writer(&c, data));
    auto l2 = eddy_test::loopback_listener();  // where the gathered writes go
    auto out_c = co_await eddy::tcp_stream::connect(l2.local_address());
    auto out_s = co_await l2.accept();
    std::vector<std::byte> echoed;
    auto reader = [](eddy::tcp_stream* r, std::vector<std::byte>* into) -> task<void> {
      co_await r->read_to_end(*into);
    };
    auto rd = eddy::spawn(reader(&out_s, &echoed));
    std::size_t most = 0;
    for (;;) {
      eddy::recv_buffer chunk[8];
      chunk[0] = co_await s.receive();
      if (chunk[0].empty()) break;
      co_await eddy::sleep_for(5ms);  // let more arrive and queue
      std::size_t n = 1;
      while (n < 8 && !(chunk[n] = s.try_receive()).empty()) ++n;
      most = std::max(most, n);
      std::span<const std::byte> parts[8];
      for (std::size_t i = 0; i < n; ++i) parts[i] = chunk[i].data();
      co_await out_c.write_all(std::span<const std::span<const std::byte>>(parts, n));
    }
    ok = ok && s.try_receive().empty();  // after end of stream: still nothing, no throw
    out_c.shutdown_write();
    co_await w;
    co_await rd;
    // Without read-ahead (io_uring's 5.11 baseline) nothing ever queues.
    ok = ok && (ahead ? most > 1 : most == 1) && echoed.size() == data.size() && checksum(echoed) == checksum(data);
    co_await out_c.close();
    co_await out_s.close();
    co_await l2.close();
    co_await c.close();
    co_await s.close();
    co_await l.close();
    co_return ok;
  };
  EXPECT_TRUE(run(f()));
}

TEST_P(receive_test, a_cancelled_receive_loses_nothing) {
  auto f = []() -> task<bool> {
    auto [a, b] = eddy::unix_stream::pair();
    auto rx = [](eddy::unix_stream* s) -> task<std::size_t> {
      co_return (co_await s->receive()).size();
    };
    bool ok = true;
    for (int i = 0; i < 100; ++i) {
      auto h = eddy::spawn(rx(&b));
      co_await eddy::yield_now();
      h.cancel();
      try {
        (void)co_await h;
        ok = false;
      } catch (const eddy::cancelled_error&) {
      }
    }
    co_await a.write_all(payload(10, 3));
    eddy::recv_buffer got = co_await b.receive();
    ok = ok && got.size() == 10;
    got.reset();
    co_await a.close();
    co_await b.close();
    co_return ok;
  };
  EXPECT_TRUE(run(f()));
}

TEST_P(receive_test, close_with_a_receive_pending_and_fd_reuse_delivers_nothing_stray) {
  auto f = []() -> task<int> {
    int wrong = 0;
    for (int i = 0; i < 2000; ++i) {
      auto [a, b] = eddy::unix_stream::pair();
      auto rx = [](eddy::unix_stream* s) -> task<int> {
        try {
          co_return (co_await s->receive()).empty() ? 0 : 1;
        } catch (const std::system_error&) {
          co_return 0;
        } catch (const eddy::cancelled_error&) {
          co_return 0;
        }
      };
      auto h = eddy::spawn(rx(&a));
      co_await eddy::yield_now();
      if (i % 2 == 0)
        co_await a.close();
      else
        a = eddy::unix_stream();
      auto [c, d] = eddy::unix_stream::pair();
      co_await d.write_all(payload(1, 1));
      wrong += co_await h;
      eddy::recv_buffer got = co_await c.receive();
      EXPECT_EQ(got.size(), 1u);
    }
    co_return wrong;
  };
  EXPECT_EQ(run(f()), 0);
}

TEST_P(receive_test, read_some_after_receive_is_refused_because_the_receiver_owns_the_socket) {
  auto f = []() -> task<bool> {
    auto [a, b] = eddy::unix_stream::pair();
    co_await a.write_all(payload(5, 1));
    (void)co_await b.receive();
    co_await a.write_all(payload(5, 2));
    bool refused = false;
    std::array<std::byte, 8> buf;
    try {
      (void)co_await b.read_some(buf);
    } catch (const std::logic_error&) {
      refused = true;
    }
    co_await a.close();
    co_await b.close();
    // On every backend receive() arms a multishot receive that owns the socket's
    // incoming bytes (io_uring's provided buffers, the readiness engine's blocks).
    co_return refused;
  };
  EXPECT_TRUE(run(f()));
}

EDDY_BACKEND_TEST_SUITE(receive_test);

// Regression (epoll): the data and the FIN arrive in one wakeup, the receiver's
// queue cap pauses the multishot op right after a short read, and the FIN's edge
// has already been consumed. The re-armed receive() must still read to EOF.
TEST_P(receive_test, eof_seen_while_the_queue_cap_paused_the_receive_still_ends_it) {
  auto f = []() -> task<bool> {
    bool ok = true;
    for (int round = 0; round < 20 && ok; ++round) {
      auto [a, b] = eddy::unix_stream::pair();
      auto rx = [](eddy::unix_stream* s) -> task<std::size_t> {
        std::size_t total = (co_await s->receive()).size();
        // Leave the queue alone until the cap has paused the op, then drain.
        co_await eddy::sleep_for(20ms);
        for (;;) {
          eddy::recv_buffer got = co_await s->receive();
          if (got.empty()) break;
          total += got.size();
        }
        co_return total;
      };
      auto h = eddy::spawn(rx(&b));
      co_await eddy::sleep_for(5ms);  // armed, its first read saw EAGAIN
      // All in one go from the loop thread: the next wait sees data and FIN together.
      // 7 full blocks and a short one: the 8th completion fills the cap.
      const std::size_t n = 7 * 16 * 1024 + 100 + static_cast<std::size_t>(round);
      co_await a.write_all(payload(n, 9));
      a.shutdown_write();
      try {
        ok = co_await eddy::with_timeout(5s, std::move(h)) == n;
      } catch (const eddy::timeout_error&) {
        ok = false;  // the EOF was lost
      }
      co_await a.close();
      co_await b.close();
    }
    co_return ok;
  };
  EXPECT_TRUE(run(f()));
}
