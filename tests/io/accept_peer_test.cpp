// accept_with_peer on every backend (issue 13, point 3): the connection and its
// peer's address come back as one value, and a peer that reset before the server
// accepted never turns into an exception (where accept() then peer_address()
// throws ENOTCONN).
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "io/net_support.hpp"
#include "support/loop_fixture.hpp"

using eddy::task;

namespace {

class accept_peer_test : public eddy_test::loop_test {};

// A connected client that resets at once: SO_LINGER 0 makes close() send RST.
eddy::socket_address connect_and_reset(const eddy::socket_address& to) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(::connect(fd, to.data(), to.size()), 0);
  eddy::socket_address local;
  socklen_t len = eddy::socket_address::capacity();
  ::getsockname(fd, local.data(), &len);
  local.resize(len);
  linger lg{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  ::close(fd);
  return local;
}

}  // namespace

TEST_P(accept_peer_test, the_peer_address_is_the_clients_local_address) {
  auto f = []() -> task<bool> {
    auto l = eddy_test::loopback_listener();
    auto c = co_await eddy::tcp_stream::connect(l.local_address());
    auto [s, peer] = co_await l.accept_with_peer();
    const bool ok = peer == c.local_address() && s.local_address() == c.peer_address();
    // The stream works like any accepted one.
    co_await c.write_all(eddy_test::payload(5, 1));
    std::vector<std::byte> buf(16);
    const std::size_t n = co_await s.read_some(buf);
    co_await c.close();
    co_await s.close();
    co_await l.close();
    co_return ok && n == 5;
  };
  EXPECT_TRUE(run(f()));
}

TEST_P(accept_peer_test, a_peer_that_reset_before_the_accept_is_never_an_exception) {
  auto f = []() -> task<int> {
    auto l = eddy_test::loopback_listener();
    const eddy::socket_address dead = connect_and_reset(l.local_address());
    auto live = co_await eddy::tcp_stream::connect(l.local_address());
    // The dead connection may be handed out first, with its address (accept4
    // filled it), or skipped (multishot accept); the live one always comes with
    // its own. No exception either way.
    int handed = 0;
    for (;;) {
      auto [s, peer] = co_await l.accept_with_peer();
      ++handed;
      const bool is_live = peer == live.local_address();
      EXPECT_TRUE(is_live || peer == dead) << peer.to_string();
      co_await s.close();
      if (is_live || handed == 2) break;
    }
    co_await live.close();
    co_await l.close();
    co_return handed;
  };
  const int handed = run(f());
  EXPECT_GE(handed, 1);
  EXPECT_LE(handed, 2);
}

TEST_P(accept_peer_test, several_waiters_each_get_one_connection_with_its_address) {
  auto f = []() -> task<bool> {
    auto l = eddy_test::loopback_listener();
    auto acceptor = [](eddy::tcp_listener* l) -> task<eddy::accepted<eddy::tcp_stream>> {
      co_return co_await l->accept_with_peer();
    };
    auto a = eddy::spawn(acceptor(&l));
    auto b = eddy::spawn(acceptor(&l));
    auto c1 = co_await eddy::tcp_stream::connect(l.local_address());
    auto c2 = co_await eddy::tcp_stream::connect(l.local_address());
    auto ra = co_await a;
    auto rb = co_await b;
    const auto p1 = c1.local_address(), p2 = c2.local_address();
    const bool ok = (ra.peer == p1 && rb.peer == p2) || (ra.peer == p2 && rb.peer == p1);
    co_await ra.stream.close();
    co_await rb.stream.close();
    co_await c1.close();
    co_await c2.close();
    co_await l.close();
    co_return ok;
  };
  EXPECT_TRUE(run(f()));
}

TEST_P(accept_peer_test, unix_listeners_report_a_bound_peers_path) {
  auto f = []() -> task<bool> {
    const std::string name = "eddy-accept-peer-" + std::to_string(::getpid());
    auto l = eddy::unix_listener::bind(eddy::socket_address::unix_abstract(name));
    // A client that binds its own abstract name before connecting has an address.
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const auto mine = eddy::socket_address::unix_abstract(name + "-client");
    EXPECT_EQ(::bind(fd, mine.data(), mine.size()), 0);
    const auto to = l.local_address();
    EXPECT_EQ(::connect(fd, to.data(), to.size()), 0);
    auto [s, peer] = co_await l.accept_with_peer();
    const bool ok = peer == mine;
    ::close(fd);
    co_await s.close();
    co_await l.close();
    co_return ok;
  };
  EXPECT_TRUE(run(f()));
}

EDDY_BACKEND_TEST_SUITE(accept_peer_test);
