// eddy::relay on every backend: megabytes both ways with checksums (TCP, Unix,
// a mix; splice, copy, and a source whose receive() is in use), a half-close
// carried across while the other direction keeps flowing, a peer's reset
// mid-transfer, a cancel that leaves both streams open, and the checks of its
// arguments.
#include <signal.h>
#include <sys/socket.h>

#include <array>
#include <string_view>
#include <vector>

#include "io/net_support.hpp"
#include "support/loop_fixture.hpp"

using namespace std::chrono_literals;
using eddy::task;
using eddy_test::checksum;
using eddy_test::payload;

namespace {

class relay_test : public eddy_test::loop_test {};

// A relayed path: the client `c1` talks to `s1`, the relay joins `s1` and `s2`,
// `s2` talks to `c2`. Each stream type on its own.
template <class A, class B>
struct path {
  A c1, s1;
  B s2, c2;
  task<void> close() {
    co_await c1.close();
    co_await s1.close();
    co_await s2.close();
    co_await c2.close();
  }
};

task<std::pair<eddy::tcp_stream, eddy::tcp_stream>> tcp_pair() {
  auto l = eddy_test::loopback_listener();
  auto acc = eddy::spawn(l.accept());
  auto c = co_await eddy::tcp_stream::connect(l.local_address());
  auto s = co_await acc;
  co_await l.close();
  co_return std::pair{std::move(c), std::move(s)};
}

task<std::pair<eddy::unix_stream, eddy::unix_stream>> unix_pair() {
  co_return eddy::unix_stream::pair();
}

template <class A, class B>
task<path<A, B>> make_path(task<std::pair<A, A>> a, task<std::pair<B, B>> b) {
  // No structured bindings in coroutines: GCC 12 mishandles them across suspensions.
  std::pair<A, A> one = co_await std::move(a);
  std::pair<B, B> two = co_await std::move(b);
  co_return path<A, B>{std::move(one.first), std::move(one.second), std::move(two.second),
                       std::move(two.first)};
}

// Sends `data`, half-closes, and reads everything the other way until EOF.
template <class S>
task<std::vector<std::byte>> talk(S* s, std::vector<std::byte> data) {
  auto w = [](S* s, std::vector<std::byte> d) -> task<void> {
    co_await s->write_all(std::span<const std::byte>(d));
    s->shutdown_write();
  };
  auto writer = eddy::spawn(w(s, std::move(data)));
  std::vector<std::byte> got;
  co_await s->read_to_end(got);
  co_await writer;
  co_return got;
}

template <class A, class B>
task<bool> both_ways(task<path<A, B>> pt, eddy::relay_options opts, bool receive_first) {
  auto p = co_await std::move(pt);
  const auto up = payload((3u << 20) / 2 + 17, 1);
  const auto down = payload((5u << 20) / 4 + 3, 2);
  if (receive_first) {
    // The relay's source already has a receiver: relay must take its bytes
    // through receive() (the first chunk, sent before, is queued there).
    co_await p.c1.write_all(std::span<const std::byte>(up).first(1000));
    for (std::size_t n = 0; n < 1000;) {
      auto first = co_await p.s1.receive();
      n += first.size();
      co_await p.s2.write_all(first.data());
    }
  }
  const std::size_t skip = receive_first ? 1000 : 0;
  eddy::relay_result progress;
  opts.progress = &progress;
  auto r = eddy::spawn(eddy::relay(p.s1, p.s2, opts));
  auto t1 = eddy::spawn(talk(&p.c1, std::vector<std::byte>(up.begin() + skip, up.end())));
  auto t2 = eddy::spawn(talk(&p.c2, down));
  const auto at_c2 = co_await t2;
  const auto at_c1 = co_await t1;
  const eddy::relay_result res = co_await r;
  bool ok = checksum(at_c2) == checksum(up) && checksum(at_c1) == checksum(down);
  ok = ok && res.a_to_b == up.size() - skip && res.b_to_a == down.size();
  ok = ok && progress.a_to_b == res.a_to_b && progress.b_to_a == res.b_to_a;
  EXPECT_TRUE(ok) << "a_to_b " << res.a_to_b << " b_to_a " << res.b_to_a << " got " << at_c2.size()
                  << "/" << up.size() << " and " << at_c1.size() << "/" << down.size();
  co_await p.close();
  co_return ok;
}

}  // namespace

TEST_P(relay_test, moves_megabytes_both_ways_between_tcp_streams_by_splice) {
  EXPECT_TRUE(run(both_ways((make_path(tcp_pair(), tcp_pair())), {}, false)));
}

TEST_P(relay_test, moves_megabytes_both_ways_between_unix_streams) {
  EXPECT_TRUE(run(both_ways((make_path(unix_pair(), unix_pair())), {}, false)));
}

TEST_P(relay_test, moves_megabytes_between_a_tcp_and_a_unix_stream_with_a_large_pipe) {
  EXPECT_TRUE(
      run(both_ways((make_path(tcp_pair(), unix_pair())), {.pipe_size = 256 * 1024}, false)));
}

TEST_P(relay_test, copies_when_splice_is_off) {
  EXPECT_TRUE(run(both_ways((make_path(tcp_pair(), tcp_pair())), {.splice = false}, false)));
}

TEST_P(relay_test, takes_bytes_already_queued_by_receive) {
  EXPECT_TRUE(run(both_ways((make_path(tcp_pair(), tcp_pair())), {}, true)));
}

TEST_P(relay_test, a_half_close_is_forwarded_while_the_other_direction_flows) {
  auto f = []() -> task<bool> {
    auto p = co_await make_path(tcp_pair(), tcp_pair());
    auto r = eddy::spawn(eddy::relay(p.s1, p.s2));
    // The client sends its request and half-closes.
    co_await p.c1.write_all(std::string_view("request"));
    p.c1.shutdown_write();
    // The server sees the request, then end of stream, before it answers.
    std::vector<std::byte> req;
    co_await p.c2.read_to_end(req);
    bool ok = std::string_view(reinterpret_cast<const char*>(req.data()), req.size()) == "request";
    // Only then does it reply, a large reply, and the client reads it all.
    const auto reply = payload(1u << 20, 7);
    auto w = eddy::spawn(p.c2.write_all(std::span<const std::byte>(reply)));
    std::vector<std::byte> got;
    std::array<std::byte, 1> probe{};
    while (got.size() < reply.size()) {
      std::vector<std::byte> buf(64 * 1024);
      const std::size_t n = co_await p.c1.read_some(buf);
      if (n == 0) break;
      got.insert(got.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    }
    co_await w;
    ok = ok && checksum(got) == checksum(reply);
    // The relay is still running: the reply direction has not ended.
    ok = ok && !r.done();
    p.c2.shutdown_write();
    const std::size_t eof = co_await p.c1.read_some(probe);
    ok = ok && eof == 0;
    const auto res = co_await r;
    ok = ok && res.a_to_b == 7 && res.b_to_a == reply.size();
    co_await p.close();
    co_return ok;
  };
  EXPECT_TRUE(run(f()));
}

namespace {

// Sends until the relay breaks the path; a reset or EPIPE is the expected end.
task<void> flood(eddy::tcp_stream* s) {
  const auto chunk = payload(256 * 1024, 9);
  try {
    for (int i = 0; i < 64; ++i) co_await s->write_all(std::span<const std::byte>(chunk));
  } catch (const std::system_error&) {
  }
}

template <class B>
task<int> reset_mid_transfer(bool splice, task<std::pair<B, B>> far) {
  auto p = co_await make_path(tcp_pair(), std::move(far));
  auto r = eddy::spawn(eddy::relay(p.s1, p.s2, {.splice = splice}));
  auto fl = eddy::spawn(flood(&p.c1));
  // Let some bytes through, then reset the far side (SO_LINGER 0: close sends RST).
  std::vector<std::byte> buf(64 * 1024);
  std::size_t seen = 0;
  while (seen < (512u << 10)) seen += co_await p.c2.read_some(buf);
  // TCP: SO_LINGER 0, close sends RST. Unix: the writer gets EPIPE at once.
  const linger lg{1, 0};
  (void)::setsockopt(p.c2.fd(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  co_await p.c2.close();
  int code = 0;
  try {
    (void)co_await eddy::with_timeout(10s, std::move(r));
    code = -1;
  } catch (const std::system_error& e) {
    code = e.code().value();
    EXPECT_TRUE(std::string_view(e.what()).starts_with("eddy::relay ")) << e.what();
  } catch (const eddy::timeout_error&) {
    code = -2;
  }
  co_await p.s1.close();  // the flooding client now sees its connection end
  co_await fl;
  co_await p.c1.close();
  co_await p.s2.close();
  co_return code;
}

}  // namespace

TEST_P(relay_test, a_peer_reset_mid_transfer_ends_the_relay_with_the_error) {
  const int code = run(reset_mid_transfer(true, tcp_pair()));
  EXPECT_TRUE(code == ECONNRESET || code == EPIPE) << code;
}

// splice(2) has no MSG_NOSIGNAL: into a reset socket it raises SIGPIPE, which at
// its default action kills the process. The loop sets SIGPIPE to ignored, but a
// program may have put the default back; the relay must not depend on either.
TEST_P(relay_test, a_reset_with_sigpipe_at_its_default_action_does_not_kill_the_process) {
  const sighandler_t old = ::signal(SIGPIPE, SIG_DFL);
  int broken = 0;
  for (int i = 0; i < 10; ++i) {
    const int tcp = run(reset_mid_transfer(true, tcp_pair()));
    const int uds = run(reset_mid_transfer(true, unix_pair()));
    if (tcp == ECONNRESET || tcp == EPIPE) ++broken;
    if (uds == ECONNRESET || uds == EPIPE) ++broken;
  }
  ::signal(SIGPIPE, old);
  EXPECT_EQ(broken, 20);
}

TEST_P(relay_test, a_peer_reset_mid_transfer_ends_the_copying_relay_with_the_error) {
  const int code = run(reset_mid_transfer(false, tcp_pair()));
  EXPECT_TRUE(code == ECONNRESET || code == EPIPE) << code;
}

TEST_P(relay_test, a_cancelled_relay_leaves_both_streams_open_and_delivered_bytes_delivered) {
  auto f = []() -> task<bool> {
    auto p = co_await make_path(tcp_pair(), tcp_pair());
    eddy::relay_result progress;
    auto r = eddy::spawn(eddy::relay(p.s1, p.s2, {.progress = &progress}));
    co_await p.c1.write_all(std::string_view("before"));
    std::array<std::byte, 6> got{};
    co_await p.c2.read_exact(got);
    bool ok = std::string_view(reinterpret_cast<const char*>(got.data()), 6) == "before";
    r.cancel();
    try {
      (void)co_await r;
      ok = false;
    } catch (const eddy::cancelled_error&) {
    }
    // The progress counters say what was delivered before the cancel.
    ok = ok && progress.a_to_b == 6 && progress.b_to_a == 0;
    // Both streams are open and usable directly, and no shutdown was sent.
    co_await p.s2.write_all(std::string_view("after"));
    std::array<std::byte, 5> after{};
    co_await p.c2.read_exact(after);
    ok = ok && std::string_view(reinterpret_cast<const char*>(after.data()), 5) == "after";
    co_await p.c1.write_all(std::string_view("x"));
    std::array<std::byte, 1> x{};
    co_await p.s1.read_exact(x);
    ok = ok && x[0] == std::byte{'x'};
    co_await p.close();
    co_return ok;
  };
  EXPECT_TRUE(run(f()));
}

TEST_P(relay_test, refuses_closed_streams_the_same_socket_and_a_bad_pipe_size) {
  auto f = []() -> task<int> {
    auto ab = eddy::unix_stream::pair();
    eddy::unix_stream a = std::move(ab.first), b = std::move(ab.second);
    eddy::unix_stream closed;
    int refused = 0;
    auto attempt = [](eddy::task<eddy::relay_result> t) -> task<int> {
      try {
        (void)co_await std::move(t);
      } catch (const std::invalid_argument&) {
        co_return 1;
      }
      co_return 0;
    };
    refused += co_await attempt(eddy::relay(a, a));
    refused += co_await attempt(eddy::relay(a, closed));
    refused += co_await attempt(eddy::relay(a, b, {.pipe_size = 100}));
    refused += co_await attempt(eddy::relay(a, b, {.pipe_size = 2u << 20}));
    co_await a.close();
    co_await b.close();
    co_return refused;
  };
  EXPECT_EQ(run(f()), 4);
}

EDDY_BACKEND_TEST_SUITE(relay_test);
