// Unix-domain sockets on every backend: stream listeners on paths and abstract
// names, socket pairs, datagrams, and EPIPE from a closed peer.
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <vector>
#include <string>

#include "io/net_support.hpp"
#include "support/loop_fixture.hpp"

using namespace std::chrono_literals;
using eddy::task;
using eddy_test::checksum;
using eddy_test::payload;

namespace {
class unix_test : public eddy_test::loop_test {};

std::string temp_path(const char* tag) {
  return "/tmp/eddy-" + std::string(tag) + "-" + std::to_string(::getpid()) + ".sock";
}

task<bool> echo_once(eddy::socket_address addr, std::size_t size) {
  auto c = co_await eddy::unix_stream::connect(addr);
  const auto data = payload(size, 4);
  auto writer = [](eddy::unix_stream* c, std::span<const std::byte> d) -> task<void> {
    co_await c->write_all(d);
    c->shutdown_write();
  };
  auto w = eddy::spawn(writer(&c, data));
  std::vector<std::byte> got, buf(65536);
  for (;;) {
    const std::size_t n = co_await c.read_some(buf);
    if (n == 0) break;
    got.insert(got.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
  }
  co_await w;
  co_await c.close();
  co_return got == data;
}
}  // namespace

TEST_P(unix_test, a_listener_on_a_path_echoes_and_leaves_its_file) {
  auto f = []() -> task<bool> {
    const std::string path = temp_path("path");
    ::unlink(path.c_str());
    auto l = eddy::unix_listener::bind(eddy::socket_address::unix_path(path));
    auto srv = eddy::spawn(eddy_test::echo_server(&l, 2));
    bool ok = co_await echo_once(l.local_address(), 100'000);
    ok = ok && co_await echo_once(eddy::socket_address::parse("unix:" + path), 0);
    co_await srv;
    co_await l.close();
    // A stale file: bind fails unless unlink_existing, which removes only sockets.
    struct stat st {};
    ok = ok && ::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
    try {
      (void)eddy::unix_listener::bind(eddy::socket_address::unix_path(path));
      ok = false;
    } catch (const std::system_error& e) {
      ok = ok && e.code().value() == EADDRINUSE;
    }
    auto l2 =
        eddy::unix_listener::bind(eddy::socket_address::unix_path(path), {.unlink_existing = true});
    co_await l2.close();
    ::unlink(path.c_str());
    co_return ok;
  };
  EXPECT_TRUE(run(f()));
}

TEST_P(unix_test, a_listener_on_an_abstract_name_echoes) {
  auto f = []() -> task<bool> {
    auto addr = eddy::socket_address::unix_abstract("eddy-test-" + std::to_string(::getpid()));
    auto l = eddy::unix_listener::bind(addr);
    auto srv = eddy::spawn(eddy_test::echo_server(&l, 1));
    const bool ok = co_await echo_once(addr, 1u << 20) && l.local_address() == addr;
    co_await srv;
    co_await l.close();
    co_return ok;
  };
  EXPECT_TRUE(run(f()));
}

TEST_P(unix_test, a_socket_pair_carries_bytes_and_a_closed_peer_gives_epipe) {
  auto f = []() -> task<int> {
    auto [a, b] = eddy::unix_stream::pair();
    const auto data = payload(1000, 2);
    co_await a.write_all(data);
    std::array<std::byte, 2000> buf;
    const std::size_t n = co_await b.read_some(buf);
    EXPECT_EQ(n, 1000u);
    co_await b.close();
    int err = 0;
    try {
      co_await a.write_all(data);
    } catch (const std::system_error& e) {
      err = e.code().value();
    }
    co_await a.close();
    co_return err;
  };
  EXPECT_EQ(run(f()), EPIPE);
}

TEST_P(unix_test, datagrams_keep_their_boundaries_and_senders) {
  auto f = []() -> task<bool> {
    auto srv_addr = eddy::socket_address::unix_abstract("eddy-dgram-" + std::to_string(::getpid()));
    auto srv = eddy::unix_datagram::bind(srv_addr);
    auto cli_addr =
        eddy::socket_address::unix_abstract("eddy-dgram-cli-" + std::to_string(::getpid()));
    auto cli = eddy::unix_datagram::bind(cli_addr);
    bool ok = true;
    for (std::size_t sz : {1u, 100u, 60'000u}) {
      const auto data = payload(sz, static_cast<std::uint32_t>(sz));
      ok = ok && co_await cli.send_to(data, srv_addr) == sz;
    }
    std::vector<std::byte> buf(70'000);
    for (std::size_t sz : {1u, 100u, 60'000u}) {
      const auto d = co_await srv.recv_from(buf);
      EXPECT_EQ(d.size, sz);
      EXPECT_EQ(d.from.to_string(), cli_addr.to_string());
      ok = ok && d.size == sz && d.from == cli_addr &&
           checksum(std::span<const std::byte>(buf.data(), d.size)) ==
               checksum(payload(sz, static_cast<std::uint32_t>(sz)));
    }
    auto [p, q] = eddy::unix_datagram::pair();
    (void)co_await p.send(payload(10, 1));
    ok = ok && co_await q.recv(buf) == 10;
    auto anon = eddy::unix_datagram::open();
    (void)co_await anon.send_to(payload(3, 1), srv_addr);
    const auto d = co_await srv.recv_from(buf);
    EXPECT_EQ(d.size, 3u);
    EXPECT_TRUE(d.from.is_unnamed_unix()) << d.from.size();
    ok = ok && d.size == 3 && d.from.is_unnamed_unix();
    co_await srv.close();
    co_await cli.close();
    co_await p.close();
    co_await q.close();
    co_await anon.close();
    co_return ok;
  };
  EXPECT_TRUE(run(f()));
}

TEST_P(unix_test, non_unix_addresses_are_refused) {
  auto f = []() -> task<int> {
    int n = 0;
    try {
      (void)eddy::unix_listener::bind(eddy::socket_address::loopback(0));
    } catch (const std::invalid_argument&) {
      ++n;
    }
    try {
      (void)co_await eddy::unix_stream::connect(eddy::socket_address::loopback(1));
    } catch (const std::invalid_argument&) {
      ++n;
    }
    try {
      (void)co_await eddy::unix_stream::connect(
          eddy::socket_address::unix_path("/nonexistent/eddy.sock"));
    } catch (const std::system_error& e) {
      n += e.code().value() == ENOENT;
    }
    co_return n;
  };
  EXPECT_EQ(run(f()), 3);
}

// Only an AF_UNIX SOCK_STREAM socket becomes a unix_stream: a seqpacket or
// datagram pair would lose its message boundaries in a byte stream. The refused
// fds are closed (the fixture counts fds).
TEST_P(unix_test, adopting_anything_but_a_unix_stream_socket_is_refused_by_name) {
  const auto refused = eddy_test::expect_adoption_refused<eddy::unix_stream>;
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
  refused(sv[0], "seqpacket socket of AF_UNIX");
  refused(sv[1], "seqpacket socket of AF_UNIX");
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), 0);
  refused(sv[0], "datagram socket of AF_UNIX");
  ::close(sv[1]);
  refused(::socket(AF_INET, SOCK_STREAM, 0), "stream socket of AF_INET");
  // A Unix stream pair is taken, and carries bytes.
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  auto f = [](int a, int b) -> task<bool> {
    eddy::unix_stream x{eddy::unique_fd(a)}, y{eddy::unique_fd(b)};
    co_await x.write_all("hi");
    std::array<std::byte, 2> got{};
    const std::size_t n = co_await y.read_some(got);
    co_await x.close();
    co_await y.close();
    co_return n == 2 && got[0] == std::byte{'h'};
  };
  EXPECT_TRUE(run(f(sv[0], sv[1])));
}

// loop_options::submit_after: a send made early in a long ready batch reaches the
// peer before the batch's next entry runs, not when the batch ends. io_uring
// queues its SQEs, so there the send waits for the batch's end when the option
// is 0; readiness backends send at once either way. One long entry and many
// short ones that add up (a batch submits after 40 times submit_after) alike.
TEST_P(unix_test, a_send_leaves_before_a_long_ready_batch_ends) {
  // The loop with task_poll_times runs its batch in a copy of the loop that times
  // every entry (runtime/loop_metrics.cpp): both take the rule.
  for (const auto& [after, timed] : {std::pair{std::chrono::microseconds(200), false},
                                     std::pair{std::chrono::microseconds(200), true},
                                     std::pair{std::chrono::microseconds(0), false}}) {
    loop_->close();
    opts_.submit_after = after;
    opts_.task_poll_times = timed;
    make_loop();
    // steps: the work after the send, as that many entries of 10 ms / steps each
    // (1: one long entry; 200: short entries, 50 µs each, well below 200 µs,
    // that add up to more than the batch's 8 ms; all in one batch of at most 256).
    auto f = [](bool* arrived, int steps) -> task<void> {
      int sv[2];
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) co_return;
      eddy::unique_fd peer(sv[1]);
      eddy::unix_stream s{eddy::unique_fd(sv[0])};
      // Entries of one batch, in this order: the send, 10 ms of work that never
      // yields, then a look at the peer's socket.
      auto send = eddy::spawn([](eddy::unix_stream& st) -> task<void> { co_await st.write_all("x"); }(s));
      std::vector<eddy::join_handle<void>> busy;
      for (int i = 0; i < steps; ++i)
        busy.push_back(eddy::spawn([](int n) -> task<void> {
          const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(10'000) / n;
          while (std::chrono::steady_clock::now() < until) {
          }
          co_return;
        }(steps)));
      auto look = eddy::spawn([](int fd, bool* got) -> task<void> {
        char c;
        *got = ::recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK) == 1;
        co_return;
      }(peer.get(), arrived));
      co_await send;
      for (auto& b : busy) co_await b;
      co_await look;
      co_await s.close();
    };
    for (const int steps : {1, 200}) {
      bool arrived = false;
      run(f(&arrived, steps));
      const bool queues = loop_->backend() == eddy::backend_kind::io_uring;
      EXPECT_EQ(arrived, after.count() != 0 || !queues)
          << "submit_after " << after.count() << " us, " << steps << " entries, timed " << timed << ", on "
          << eddy::backend_name(loop_->backend());
    }
  }
}

EDDY_BACKEND_TEST_SUITE(unix_test);
