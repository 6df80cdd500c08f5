// RELIABILITY row 4: 10,000 writes into sockets whose peer has reset, with
// SIGPIPE at its default action (which would kill the process): the process
// survives and every write reports EPIPE or ECONNRESET. TCP (reset by SO_LINGER 0)
// and Unix pairs (peer closed), through tcp_stream/unix_stream and eddy::stream.
#include <signal.h>
#include <sys/socket.h>

#include "io/net_support.hpp"
#include "support/loop_fixture.hpp"

using eddy::task;

namespace {

class sigpipe_test : public eddy_test::loop_test {
 protected:
  void SetUp() override {
    loop_test::SetUp();
    // After the loop: the first loop of a process sets SIGPIPE to ignored (as
    // Rust's and Python's runtimes do); the sockets must not depend on that.
    old_ = ::signal(SIGPIPE, SIG_DFL);
  }
  void TearDown() override {
    loop_test::TearDown();
    ::signal(SIGPIPE, old_);
  }
  sighandler_t old_ = SIG_DFL;
};

bool broken(int e) {
  return e == EPIPE || e == ECONNRESET;
}

}  // namespace

TEST_P(sigpipe_test, ten_thousand_writes_into_reset_sockets_raise_no_sigpipe) {
  auto f = []() -> task<int> {
    const auto data = eddy_test::payload(4096, 1);
    int seen = 0;
    auto l = eddy_test::loopback_listener();
    for (int i = 0; i < 1000; ++i) {  // TCP: reset by the peer
      auto c = co_await eddy::tcp_stream::connect(l.local_address());
      auto s = co_await l.accept();
      linger lg{1, 0};
      ::setsockopt(s.fd(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      co_await s.close();
      for (int w = 0; w < 3; ++w) {
        try {
          for (int k = 0; k < 100; ++k) co_await c.write_all(data);
        } catch (const std::system_error& e) {
          seen += broken(e.code().value());
        }
      }
      co_await c.close();
    }
    co_await l.close();
    for (int i = 0; i < 3500; ++i) {  // Unix: the peer is gone
      auto [a, b] = eddy::unix_stream::pair();
      co_await b.close();
      for (int w = 0; w < 2; ++w) {
        try {
          co_await a.write_all(data);
        } catch (const std::system_error& e) {
          seen += broken(e.code().value());
        }
      }
      co_await a.close();
    }
    co_return seen;
  };
  EXPECT_EQ(run(f()), 10'000);
}

TEST_P(sigpipe_test, a_buffered_stream_reports_the_reset_instead_of_dying) {
  auto f = []() -> task<int> {
    int seen = 0;
    for (int i = 0; i < 200; ++i) {
      auto [a, b] = eddy::unix_stream::pair();
      eddy::stream s(std::move(a));
      co_await b.close();
      try {
        s.write(eddy_test::payload(1000, 2));
        co_await s.flush();
      } catch (const std::system_error& e) {
        seen += broken(e.code().value());
      }
      try {
        co_await s.close();
      } catch (const std::system_error&) {
      }
    }
    co_return seen;
  };
  EXPECT_EQ(run(f()), 200);
}

EDDY_BACKEND_TEST_SUITE(sigpipe_test);
