// Closing sockets with operations in flight, on every backend:
//  - RELIABILITY row 8: close with a recv pending, immediately open a socket that
//    gets the same fd number, 10,000 times: no completion reaches the new owner.
//  - row 1 (scaled): connection churn, 10,000 connect → echo → close cycles, 128
//    at a time; fds back to baseline (the fixture checks) and RSS flat after
//    warm-up. The full 100,000 cycles are a stress run, not a suite test:
//    EDDY_CHURN_CYCLES=100000 build/tests/io/io_socket_close_test --gtest_filter='*churn*'
//  - row 7 for socket ops: accept, recv, send, recv_from and stream reads, each
//    cancelled after a random 0-2 ms: each completes exactly once.
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <fstream>
#include <random>

#include "io/net_support.hpp"
#include "support/loop_fixture.hpp"

using namespace std::chrono_literals;
using eddy::task;

namespace {

class socket_close_test : public eddy_test::loop_test {};

long rss_kib() {
  std::ifstream f("/proc/self/statm");
  long pages = 0, rss = 0;
  f >> pages >> rss;
  return rss * (::sysconf(_SC_PAGESIZE) / 1024);
}

task<int> pending_recv(eddy::unix_stream* s) {
  std::array<std::byte, 8> b;
  try {
    (void)co_await s->read_some(b);
    co_return 1;
  } catch (const eddy::cancelled_error&) {
    co_return 0;
  }
}

// Closes with linger 0 (RST): no TIME_WAIT, so churn cannot run out of ports.
void reset_on_close(int fd) {
  linger lg{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
}

}  // namespace

TEST_P(socket_close_test,
       close_with_a_recv_pending_and_a_reused_fd_number_gets_no_stray_completion) {
  auto f = []() -> task<int> {
    int wrong_owner = 0, reused = 0;
    for (int i = 0; i < 10'000; ++i) {
      auto [a, b] = eddy::unix_stream::pair();
      const int num = a.fd();
      auto h = eddy::spawn(pending_recv(&a));
      co_await eddy::yield_now();
      if (i % 2 == 0)
        co_await a.close();
      else
        a = eddy::unix_stream();                // the destructor path: close_now
      auto [c, d] = eddy::unix_stream::pair();  // takes the lowest free number: `num`
      co_await d.write_all(eddy_test::payload(1, 1));
      wrong_owner += co_await h;
      if (c.fd() == num) {
        ++reused;
        std::array<std::byte, 8> buf;
        EXPECT_EQ(co_await c.read_some(buf), 1u);  // the byte is still there for its owner
      }
    }
    EXPECT_GT(reused, 5000);
    co_return wrong_owner;
  };
  EXPECT_EQ(run(f()), 0);
}

TEST_P(socket_close_test, closing_a_listener_with_accepts_pending_wakes_them_and_frees_the_number) {
  auto f = []() -> task<int> {
    int ok = 0;
    for (int i = 0; i < 200; ++i) {
      auto l = eddy_test::loopback_listener();
      auto acc = [](eddy::tcp_listener* l) -> task<int> {
        try {
          (void)co_await l->accept();
        } catch (const eddy::cancelled_error&) {
          co_return 1;
        } catch (const std::system_error&) {
          co_return 1;
        }
        co_return 0;
      };
      auto h1 = eddy::spawn(acc(&l));
      auto h2 = eddy::spawn(acc(&l));
      co_await eddy::yield_now();
      if (i % 2 == 0)
        co_await l.close();
      else
        l = eddy::tcp_listener();
      ok += co_await h1 + co_await h2;
    }
    co_return ok;
  };
  EXPECT_EQ(run(f()), 400);
}

TEST_P(socket_close_test, connection_churn_returns_to_the_fd_baseline_with_flat_memory) {
  auto f = []() -> task<long> {
    // EDDY_CHURN_CYCLES=100000 runs the full row as a stress run.
    const char* env = std::getenv("EDDY_CHURN_CYCLES");
    const int total = env != nullptr ? std::max(1000, std::atoi(env)) : 10'000;
    constexpr int parallel = 128;
    auto l = eddy_test::loopback_listener();
    auto srv = eddy::spawn(eddy_test::echo_server(&l, total));
    auto worker = [](eddy::socket_address a, int cycles, long* growth_base) -> task<int> {
      int ok = 0;
      const auto msg = eddy_test::payload(64, 3);
      std::array<std::byte, 64> buf;
      const char* step = "connect";
      int i = 0;
      try {
        for (; i < cycles; ++i) {
          step = "connect";
          auto c = co_await eddy::tcp_stream::connect(a);
          step = "write_all";
          co_await c.write_all(msg);
          step = "read_some";
          std::size_t got = 0;
          while (got < msg.size()) got += co_await c.read_some(std::span(buf).subspan(got));
          ok += std::equal(buf.begin(), buf.end(), msg.begin());
          reset_on_close(c.fd());
          step = "close";
          co_await c.close();
          if (growth_base != nullptr && i == cycles / 5) *growth_base = rss_kib();
        }
      } catch (const eddy::cancelled_error&) {
        // Nothing here cancels: seen once in a parallel suite run on io_uring
        // (2026-12-08), not reproduced since; this names where it came from.
        ADD_FAILURE() << "cancelled_error with no cancel requested, in " << step << " of cycle " << i;
      }
      co_return ok;
    };
    long base = 0;
    std::vector<eddy::join_handle<int>> hs;
    for (int i = 0; i < parallel; ++i)
      hs.push_back(eddy::spawn(worker(l.local_address(), total / parallel + (i < total % parallel),
                                      i == 0 ? &base : nullptr)));
    int ok = 0;
    for (auto& h : hs) ok += co_await h;
    co_await srv;
    co_await l.close();
    EXPECT_EQ(ok, total);
    co_return rss_kib() - base;
  };
  const long growth_kib = run(f());
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // ASan's quarantine keeps freed memory resident: RSS says nothing there (its
  // leak checker does the job instead).
  (void)growth_kib;
#else
  // Flat: well under a kilobyte per cycle would still be 8 MiB; a leak of one
  // buffer per connection is 64 KiB × 8,000.
  EXPECT_LT(growth_kib, 8 * 1024);
#endif
}

TEST_P(socket_close_test, a_cancellation_storm_over_socket_ops_completes_each_exactly_once) {
  auto f = []() -> task<int> {
    std::mt19937 rng(7);
    auto l = eddy_test::loopback_listener();
    auto udp = eddy::udp_socket::bind(eddy::socket_address::loopback(0));
    auto [a, b] = eddy::unix_stream::pair();
    auto [sa, sb] = eddy::unix_stream::pair();
    eddy::stream st(std::move(sa));
    // A full socket, so sends wait.
    auto [fa, fb] = eddy::unix_stream::pair();
    const int small = 4096;
    ::setsockopt(fa.fd(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    auto send_block = [](eddy::unix_stream* s) -> task<std::size_t> {
      co_return co_await s->write_some(eddy_test::payload(4096, 1));
    };
    try {
      for (int i = 0; i < 1000; ++i) (void)co_await eddy::with_timeout(1ms, send_block(&fa));
    } catch (const eddy::timeout_error&) {
    }
    int completions = 0;
    struct ctx {
      eddy::tcp_listener* l;
      eddy::udp_socket* udp;
      eddy::unix_stream* a;
      eddy::unix_stream* fa;
      eddy::stream* st;
    } c{&l, &udp, &a, &fa, &st};
    auto op = [](int kind, ctx c, int* done) -> task<void> {
      struct once {
        int* d;
        ~once() { ++*d; }
      } o{done};
      std::array<std::byte, 64> buf;
      const auto block = eddy_test::payload(4096, 2);
      switch (kind) {
        case 0:
          (void)co_await c.l->accept();
          break;
        case 1:
          (void)co_await c.a->read_some(buf);
          break;
        case 2:
          (void)co_await c.udp->recv_from(buf);
          break;
        case 3:
          (void)co_await c.fa->write_some(block);
          break;
        default:
          (void)co_await c.st->read_line();
          break;
      }
    };
    constexpr int n = 5'000;
    std::vector<eddy::join_handle<void>> hs;
    std::vector<eddy::timer_handle> cancels;
    for (int i = 0; i < n; ++i) {
      // eddy::stream has a single reader: one read_line, the rest plain recvs.
      const int kind = i % 5 == 4 && i != 4 ? 1 : i % 5;
      hs.push_back(eddy::spawn(op(kind, c, &completions)));
      auto* core = hs.back().core();
      cancels.push_back(eddy::loop::current().call_later(std::chrono::microseconds(rng() % 2000),
                                                         [core] { core->request_cancel(); }));
    }
    int cancelled = 0;
    for (auto& h : hs) {
      try {
        co_await h;
      } catch (const eddy::cancelled_error&) {
        ++cancelled;
      }
    }
    EXPECT_EQ(completions, n);
    co_await l.close();
    co_await udp.close();
    co_await st.close();
    co_return cancelled;
  };
  EXPECT_EQ(run(f()), 5'000);
}

EDDY_BACKEND_TEST_SUITE(socket_close_test);
