// TCP on every backend: echo round trips from 0 B to 16 MiB with checksums, a
// thousand concurrent connections, half-close both ways (RELIABILITY row 3), a
// peer reset mid-stream, connect errors and timeouts, options and addresses,
// adopting fds of the wrong kind.
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <string>
#include <vector>

#include "io/net_support.hpp"
#include "support/loop_fixture.hpp"

using namespace std::chrono_literals;
using eddy::task;
using eddy_test::checksum;
using eddy_test::payload;

namespace {

class tcp_test : public eddy_test::loop_test {};

}  // namespace

TEST_P(tcp_test, echo_round_trips_from_zero_bytes_to_sixteen_mib_keep_every_byte) {
  auto f = []() -> task<int> {
    auto l = eddy_test::loopback_listener();
    const std::size_t sizes[] = {0, 1, 1000, 65'536, 1'000'001, 16u << 20};
    auto srv = eddy::spawn(eddy_test::echo_server(&l, std::size(sizes)));
    int ok = 0;
    for (std::size_t sz : sizes) {
      auto c = co_await eddy::tcp_stream::connect(l.local_address());
      const auto data = payload(sz, static_cast<std::uint32_t>(sz));
      ok += co_await eddy_test::send_and_read_back(&c, std::span<const std::byte>(data), data.size()) == checksum(data);
      co_await c.close();
    }
    co_await srv;
    co_await l.close();
    co_return ok;
  };
  EXPECT_EQ(run(f()), 6);
}

TEST_P(tcp_test, a_thousand_concurrent_connections_all_echo) {
  auto f = []() -> task<int> {
    auto l = eddy_test::loopback_listener();
    constexpr int n = 1000;
    auto srv = eddy::spawn(eddy_test::echo_server(&l, n));
    auto client = [](eddy::socket_address a, int i) -> task<int> {
      auto c = co_await eddy::tcp_stream::connect(a);
      const auto data = payload(100 + static_cast<std::size_t>(i), static_cast<std::uint32_t>(i));
      const bool ok = co_await eddy_test::send_and_read_back(&c, std::span<const std::byte>(data), data.size()) == checksum(data);
      co_await c.close();
      co_return ok ? 1 : 0;
    };
    std::vector<eddy::join_handle<int>> hs;
    for (int i = 0; i < n; ++i) hs.push_back(eddy::spawn(client(l.local_address(), i)));
    int ok = 0;
    for (auto& h : hs) ok += co_await h;
    co_await srv;
    co_await l.close();
    co_return ok;
  };
  EXPECT_EQ(run(f()), 1000);
}

TEST_P(tcp_test, half_close_from_the_client_still_gets_every_byte_back_then_eof) {
  // RELIABILITY row 3: client sends, shuts down its write side, reads the echo.
  auto f = []() -> task<int> {
    auto l = eddy_test::loopback_listener();
    const std::size_t sizes[] = {0, 1, 4096, 1u << 20};
    auto srv = eddy::spawn(eddy_test::echo_server(&l, std::size(sizes)));
    int ok = 0;
    for (std::size_t sz : sizes) {
      auto c = co_await eddy::tcp_stream::connect(l.local_address());
      const auto data = payload(sz, 7);
      ok += co_await eddy_test::send_and_read_back(&c, std::span<const std::byte>(data), data.size()) == checksum(data);
      co_await c.close();
    }
    co_await srv;
    co_await l.close();
    co_return ok;
  };
  EXPECT_EQ(run(f()), 4);
}

TEST_P(tcp_test, half_close_from_the_server_leaves_the_client_able_to_send) {
  auto f = []() -> task<bool> {
    auto l = eddy_test::loopback_listener();
    auto server = [](eddy::tcp_listener* l) -> task<std::size_t> {
      auto s = co_await l->accept();
      s.shutdown_write();  // server is done talking, still listening
      std::array<std::byte, 4096> b;
      std::size_t got = 0;
      for (;;) {
        const std::size_t n = co_await s.read_some(b);
        if (n == 0) break;
        got += n;
      }
      co_await s.close();
      co_return got;
    };
    auto srv = eddy::spawn(server(&l));
    auto c = co_await eddy::tcp_stream::connect(l.local_address());
    std::array<std::byte, 16> b;
    const std::size_t eof = co_await c.read_some(b);  // the server's FIN
    const auto data = payload(300'000, 3);
    co_await c.write_all(data);
    c.shutdown_write();
    const std::size_t got = co_await srv;
    co_await c.close();
    co_await l.close();
    co_return eof == 0 && got == data.size();
  };
  EXPECT_TRUE(run(f()));
}

TEST_P(tcp_test, a_peer_reset_mid_stream_is_an_error_not_a_crash) {
  auto f = []() -> task<int> {
    auto l = eddy_test::loopback_listener();
    auto c = co_await eddy::tcp_stream::connect(l.local_address());
    auto s = co_await l.accept();
    // SO_LINGER 0: close sends RST instead of FIN.
    linger lg{1, 0};
    ::setsockopt(s.fd(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    co_await s.write_all(payload(1000, 1));
    co_await s.close();
    std::vector<std::byte> buf(100'000);
    int err = 0;
    try {
      for (int i = 0; i < 10; ++i) {
        const std::size_t n = co_await c.read_some(buf);
        if (n == 0) break;
      }
      for (int i = 0; i < 100; ++i) co_await c.write_all(payload(10'000, 2));
    } catch (const std::system_error& e) {
      err = e.code().value();
    }
    co_await c.close();
    co_await l.close();
    co_return err;
  };
  const int e = run(f());
  EXPECT_TRUE(e == ECONNRESET || e == EPIPE) << e;
}

TEST_P(tcp_test, connecting_to_a_closed_port_is_refused) {
  auto f = []() -> task<int> {
    eddy::socket_address a;
    {
      auto l = eddy_test::loopback_listener();
      a = l.local_address();
      co_await l.close();
    }
    try {
      (void)co_await eddy::tcp_stream::connect(a);
    } catch (const std::system_error& e) {
      EXPECT_NE(std::string(e.what()).find(a.to_string()), std::string::npos) << e.what();
      co_return e.code().value();
    }
    co_return 0;
  };
  EXPECT_EQ(run(f()), ECONNREFUSED);
}

TEST_P(tcp_test, connect_gives_up_at_its_timeout) {
  // A listener with a full backlog of one never completes more handshakes... on
  // Linux the SYN is dropped, so connect waits: that is what the timeout is for.
  auto f = []() -> task<bool> {
    eddy::tcp_listen_options o;
    o.backlog = 1;
    auto l = eddy::tcp_listener::bind(eddy::socket_address::loopback(0), o);
    std::vector<eddy::tcp_stream> fill;
    eddy::tcp_connect_options co;
    co.timeout = 200ms;
    bool timed_out = false;
    for (int i = 0; i < 8 && !timed_out; ++i) {
      try {
        fill.push_back(co_await eddy::tcp_stream::connect(l.local_address(), co));
      } catch (const eddy::timeout_error&) {
        timed_out = true;
      }
    }
    for (auto& s : fill) co_await s.close();
    co_await l.close();
    co_return timed_out;
  };
  EXPECT_TRUE(run(f()));
}

TEST_P(tcp_test, options_and_addresses_read_back) {
  auto f = []() -> task<bool> {
    auto l = eddy_test::loopback_listener();
    auto c = co_await eddy::tcp_stream::connect(l.local_address());
    auto s = co_await l.accept();
    bool ok = c.nodelay();
    c.set_nodelay(false);
    ok = ok && !c.nodelay();
    c.set_keepalive(true, 30s, 5s, 3);
    ok = ok && c.keepalive();
    EXPECT_THROW(c.set_keepalive(true, 0s), std::invalid_argument);
    ok = ok && c.peer_address() == s.local_address() && s.peer_address() == c.local_address();
    ok = ok && l.local_address().host() == "127.0.0.1";
    co_await c.close();
    co_await s.close();
    co_await l.close();
    co_return ok;
  };
  EXPECT_TRUE(run(f()));
}

TEST_P(tcp_test, vectored_writes_send_every_buffer_in_order) {
  auto f = []() -> task<bool> {
    auto l = eddy_test::loopback_listener();
    auto c = co_await eddy::tcp_stream::connect(l.local_address());
    auto s = co_await l.accept();
    std::vector<std::vector<std::byte>> parts;
    std::vector<std::span<const std::byte>> spans;
    std::vector<std::byte> all;
    for (int i = 0; i < 2000; ++i) {  // more than IOV_MAX buffers
      parts.push_back(
          payload(static_cast<std::size_t>(i % 7) * 100, static_cast<std::uint32_t>(i)));
    }
    for (auto& p : parts) {
      spans.emplace_back(p);
      all.insert(all.end(), p.begin(), p.end());
    }
    auto reader = [](eddy::tcp_stream* s) -> task<std::vector<std::byte>> {
      std::vector<std::byte> got, buf(65536);
      for (;;) {
        const std::size_t n = co_await s->read_some(buf);
        if (n == 0) break;
        got.insert(got.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
      }
      co_return got;
    };
    auto r = eddy::spawn(reader(&s));
    co_await c.write_all(std::span<const std::span<const std::byte>>(spans));
    c.shutdown_write();
    const auto got = co_await r;
    co_await c.close();
    co_await s.close();
    co_await l.close();
    co_return got == all;
  };
  EXPECT_TRUE(run(f()));
}

TEST_P(tcp_test, bad_arguments_are_clear_errors) {
  auto f = []() -> task<int> {
    int n = 0;
    try {
      (void)eddy::tcp_listener::bind(eddy::socket_address::unix_abstract("x"));
    } catch (const std::invalid_argument&) {
      ++n;
    }
    try {
      eddy::tcp_listen_options o;
      o.backlog = 0;
      (void)eddy::tcp_listener::bind(eddy::socket_address::loopback(0), o);
    } catch (const std::invalid_argument&) {
      ++n;
    }
    try {
      eddy::tcp_connect_options o;
      o.timeout = 0ms;
      (void)co_await eddy::tcp_stream::connect(eddy::socket_address::loopback(1), o);
    } catch (const std::invalid_argument&) {
      ++n;
    }
    auto l = eddy_test::loopback_listener();
    try {
      (void)eddy::tcp_listener::bind(l.local_address(), {.backlog = 16, .reuse_address = false});
    } catch (const std::system_error& e) {
      n += e.code().value() == EADDRINUSE;
    }
    co_await l.close();
    co_return n;
  };
  EXPECT_EQ(run(f()), 4);
}

// Adopting an fd checks what it is: only a TCP socket becomes a tcp_stream, and
// the message names the fd and its kind. The refused fd is closed, not leaked
// (the fixture counts fds).
TEST_P(tcp_test, adopting_anything_but_a_tcp_socket_is_refused_by_name) {
  const auto refused = eddy_test::expect_adoption_refused<eddy::tcp_stream>;
  refused(::socket(AF_INET, SOCK_DGRAM, 0), "datagram socket of AF_INET");
  refused(::socket(AF_UNIX, SOCK_STREAM, 0), "stream socket of AF_UNIX");
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  ::close(p[1]);
  refused(p[0], "not a socket");
  // A TCP socket is taken, and made non-blocking.
  const int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  eddy::tcp_stream s{eddy::unique_fd(fd)};
  EXPECT_NE(::fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
  EXPECT_NE(::fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
}

EDDY_BACKEND_TEST_SUITE(tcp_test);
