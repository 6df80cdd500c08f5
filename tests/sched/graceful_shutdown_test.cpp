// eddy::graceful_shutdown: under 1,000 live connections, the ones that end within
// the grace period are counted as finished, the rest are cancelled at the
// deadline, and nothing is left behind.
#include <sys/resource.h>

#include <array>
#include <vector>

#include "support/loop_fixture.hpp"

namespace {

using namespace std::chrono_literals;

class graceful_shutdown_test : public eddy_test::loop_test {
 protected:
  void SetUp() override {
    rlimit rl{};
    ::getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 4096 && rl.rlim_max >= 4096) {
      rl.rlim_cur = 4096;
      ::setrlimit(RLIMIT_NOFILE, &rl);
    }
    eddy_test::loop_test::SetUp();
  }
};

// A connection that lives until its client closes (EOF) or it is cancelled.
eddy::task<void> hold(eddy::tcp_stream s, int* finished) {
  std::array<std::byte, 64> buf{};
  for (;;) {
    if (co_await s.read_some(buf) == 0) break;
  }
  ++*finished;
  co_await s.close();
}

eddy::task<void> accept_all(eddy::tcp_listener* l, eddy::task_group* conns, int* finished) {
  for (;;) conns->spawn(hold(co_await l->accept(), finished)).detach();
}

TEST_P(graceful_shutdown_test, finishes_what_ends_within_the_grace_and_cancels_the_rest) {
  constexpr int n = 1000;
  struct result {
    eddy::shutdown_result r;
    int ended_by_eof = 0;
    std::size_t open_at_start = 0;
  };
  const result res = run([]() -> eddy::task<result> {
    result out;
    eddy::graceful_shutdown shutdown({});  // no signals: request() starts it
    eddy::tcp_listener l = eddy::tcp_listener::bind(eddy::socket_address::ip("127.0.0.1", 0),
                                                    {.backlog = 1024});
    auto acceptor = eddy::spawn(accept_all(&l, &shutdown.connections(), &out.ended_by_eof));
    std::vector<eddy::tcp_stream> clients;
    for (int i = 0; i < n; ++i) clients.push_back(co_await eddy::tcp_stream::connect(l.local_address()));
    while (shutdown.connections().size() < static_cast<std::size_t>(n)) co_await eddy::sleep_for(1ms);

    shutdown.request();
    EXPECT_EQ(co_await shutdown.wait(), 0);
    EXPECT_TRUE(shutdown.stopping());
    acceptor.cancel();
    try {
      co_await acceptor;
    } catch (const eddy::cancelled_error&) {
    }
    co_await l.close();
    out.open_at_start = shutdown.connections().size();
    // Half the clients leave during the grace period; the other half never do.
    auto closer = eddy::spawn([](std::vector<eddy::tcp_stream>* cs) -> eddy::task<void> {
      for (std::size_t i = 0; i < cs->size(); i += 2) co_await (*cs)[i].close();
    }(&clients));
    out.r = co_await shutdown.drain(1s);
    co_await closer;
    EXPECT_EQ(shutdown.connections().size(), 0u);
    for (std::size_t i = 1; i < clients.size(); i += 2) co_await clients[i].close();
    co_return out;
  }());
  EXPECT_EQ(res.open_at_start, static_cast<std::size_t>(n));
  EXPECT_EQ(res.r.finished, static_cast<std::size_t>(n / 2));
  EXPECT_EQ(res.r.cancelled, static_cast<std::size_t>(n / 2));
  EXPECT_EQ(res.ended_by_eof, n / 2);
  EXPECT_FALSE(res.r.second_signal);
}

TEST_P(graceful_shutdown_test, a_drain_with_nothing_open_returns_at_once_and_bad_grace_is_refused) {
  run([]() -> eddy::task<void> {
    eddy::graceful_shutdown shutdown({});
    const auto t0 = eddy::clock::now();
    const eddy::shutdown_result r = co_await shutdown.drain(10s);
    EXPECT_LT(eddy::clock::now() - t0, 5s);
    EXPECT_EQ(r.finished + r.cancelled, 0u);
    EXPECT_THROW(co_await shutdown.drain(-1s), std::invalid_argument);
  }());
}

EDDY_BACKEND_TEST_SUITE(graceful_shutdown_test);

}  // namespace
