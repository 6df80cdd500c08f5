// Watches follow the file, not the fd number (DESIGN.md §10, docs/fd_ownership.md):
// a stream closed on another loop or on a pool thread, a dup that gets the number
// of a closed dup of the same file, and numbers reused at once must never leave a
// later socket unwatched or let an event reach the wrong owner. Every test runs on
// io_uring, epoll and libuv; the cross-thread ones also under TSan (suite threads).
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>

#include "support/loop_fixture.hpp"

using namespace std::chrono_literals;
using eddy::task;

namespace {

class fd_ownership_test : public eddy_test::loop_test {};

class fd_ownership_group_test : public ::testing::TestWithParam<eddy::backend_kind> {
 protected:
  void SetUp() override { fds_before_ = eddy_test::count_fds(); }
  void TearDown() override { EXPECT_EQ(eddy_test::count_fds(), fds_before_) << "fd leak"; }
  eddy::loop_group_options opts(std::size_t n) {
    eddy::loop_group_options o;
    o.loops = n;
    o.loop.backend = GetParam();
    o.sigint_cancels = false;
    return o;
  }
  int fds_before_ = 0;
};

std::size_t env_or(const char* name, std::size_t dflt) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? static_cast<std::size_t>(std::strtoull(v, nullptr, 10)) : dflt;
}

task<std::size_t> read_into(eddy::unix_stream* s, std::span<std::byte> b) {
  co_return co_await s->read_some(b);
}

// Runs on the other loop and drops the stream there.
task<int> drop_there(eddy::unix_stream s) {
  const int fd = s.fd();
  (void)s;
  co_return fd;
}

// The stream waits on this loop first, so this loop's backend watches its fd.
task<void> wait_a_little(eddy::unix_stream& s) {
  std::array<std::byte, 8> b{};
  try {
    (void)co_await eddy::with_timeout(2ms, s.read_some(b));
  } catch (const eddy::timeout_error&) {
  }
}

// Waits on the other loop too (that loop now watches it), then drops it there.
task<int> use_and_drop_there(eddy::unix_stream s) {
  co_await wait_a_little(s);
  co_return s.fd();
}

// One round of the reproduction (a): returns true if the new pair, which
// usually gets the dropped stream's number back, is served.
task<bool> close_elsewhere_then_reuse(eddy::loop_handle other, int* reused, bool use_there = false) {
  auto [a, b] = eddy::unix_stream::pair();
  co_await wait_a_little(a);
  const int old = use_there ? co_await eddy::spawn_on(other, use_and_drop_there(std::move(a)))
                            : co_await eddy::spawn_on(other, drop_there(std::move(a)));
  auto [c, d] = eddy::unix_stream::pair();
  if (c.fd() == old || d.fd() == old) ++*reused;
  std::array<std::byte, 8> buf{};
  auto reader = eddy::spawn(eddy::with_timeout(2s, c.read_some(buf)));
  co_await eddy::yield_now();
  co_await d.write_all(std::string_view("hi"));
  try {
    const std::size_t n = co_await reader;
    co_return n == 2;
  } catch (const eddy::timeout_error&) {
    co_return false;
  }
}

}  // namespace

TEST_P(fd_ownership_group_test, a_stream_dropped_on_another_loop_leaves_its_number_usable) {
  eddy::loop_group g(opts(2));
  std::atomic<int> ok{0}, reused{0};
  const int rounds = 30;
  g.run([&](std::size_t i) -> task<void> {
    return [](std::size_t i, eddy::loop_group* g, std::atomic<int>* ok, std::atomic<int>* reused,
              int rounds) -> task<void> {
      if (i != 0) co_return;
      int r = 0;
      for (int k = 0; k < rounds; ++k)
        if (co_await close_elsewhere_then_reuse(g->handle(1), &r)) ++*ok;
      *reused = r;
    }(i, &g, &ok, &reused, rounds);
  });
  EXPECT_EQ(ok.load(), rounds);
  EXPECT_GT(reused.load(), 0) << "the fd number never came back: the test did not test reuse";
}

// The stream moves to the other loop, waits there (that loop watches it now) and
// is closed there, where it is watched: this loop's older watch of the number
// must not survive it.
TEST_P(fd_ownership_group_test, a_stream_used_and_closed_on_another_loop_leaves_its_number_usable) {
  eddy::loop_group g(opts(2));
  std::atomic<int> ok{0}, reused{0};
  const int rounds = 30;
  g.run([&](std::size_t i) -> task<void> {
    return [](std::size_t i, eddy::loop_group* g, std::atomic<int>* ok, std::atomic<int>* reused,
              int rounds) -> task<void> {
      if (i != 0) co_return;
      int r = 0;
      for (int k = 0; k < rounds; ++k)
        if (co_await close_elsewhere_then_reuse(g->handle(1), &r, true)) ++*ok;
      *reused = r;
    }(i, &g, &ok, &reused, rounds);
  });
  EXPECT_EQ(ok.load(), rounds);
  EXPECT_GT(reused.load(), 0) << "the fd number never came back: the test did not test reuse";
}

namespace {

task<void> echo_cycles(std::size_t cycles, std::size_t* done) {
  auto l = eddy::tcp_listener::bind(eddy::socket_address::loopback(0));
  const eddy::socket_address addr = l.local_address();
  for (std::size_t k = 0; k < cycles; ++k) {
    auto acc = eddy::spawn(l.accept());
    auto c = co_await eddy::tcp_stream::connect(addr);
    auto s = co_await eddy::with_timeout(2s, std::move(acc));
    co_await c.write_all(std::string_view("x"));
    std::array<std::byte, 4> b{};
    if (co_await eddy::with_timeout(2s, s.read_some(b)) != 1) break;
    co_await s.write_all(std::string_view("y"));
    if (co_await eddy::with_timeout(2s, c.read_some(b)) != 1) break;
    co_await c.close();
    co_await s.close();
    ++*done;
  }
  co_await l.close();
}

}  // namespace

// The test: a stream closed on another loop, then connect/accept cycles on
// the first (10,000 by hand: EDDY_FD_OWNERSHIP_CYCLES=10000).
TEST_P(fd_ownership_group_test, connect_accept_cycles_after_a_stream_closed_on_another_loop) {
  eddy::loop_group g(opts(2));
  const std::size_t cycles = env_or("EDDY_FD_OWNERSHIP_CYCLES", 1000);
  std::size_t done = 0;
  bool first_ok = false;
  g.run([&](std::size_t i) -> task<void> {
    return [](std::size_t i, eddy::loop_group* g, std::size_t cycles, std::size_t* done,
              bool* first_ok) -> task<void> {
      if (i != 0) co_return;
      int reused = 0;
      *first_ok = co_await close_elsewhere_then_reuse(g->handle(1), &reused);
      co_await echo_cycles(cycles, done);
    }(i, &g, cycles, &done, &first_ok);
  });
  EXPECT_TRUE(first_ok);
  EXPECT_EQ(done, cycles);
}

namespace {

int drop_on_pool_thread(eddy::unix_stream s) {
  const int fd = s.fd();
  (void)s;
  return fd;
}

}  // namespace

// A pool thread runs no loop: its close must still end the watch on the loop that
// made it.
TEST_P(fd_ownership_test, a_stream_dropped_on_a_pool_thread_leaves_its_number_usable) {
  auto f = []() -> task<int> {
    int ok = 0;
    for (int k = 0; k < 30; ++k) {
      auto [a, b] = eddy::unix_stream::pair();
      co_await wait_a_little(a);
      (void)co_await eddy::to_thread(&drop_on_pool_thread, std::move(a));
      auto [c, d] = eddy::unix_stream::pair();
      std::array<std::byte, 8> buf{};
      auto reader = eddy::spawn(eddy::with_timeout(2s, c.read_some(buf)));
      co_await eddy::yield_now();
      co_await d.write_all(std::string_view("hi"));
      try {
        if (co_await reader == 2) ++ok;
      } catch (const eddy::timeout_error&) {
      }
    }
    co_return ok;
  };
  EXPECT_EQ(run(f()), 30);
}

// asyncio's add_reader/remove_reader/add_reader: eddyloop watches a dup of the
// caller's fd and closes it on remove; the next dup usually gets the same number,
// for the same open file, with data already pending. (On epoll the old
// registration outlived the closed dup, EPOLL_CTL_ADD said EEXIST, and the data
// never raised a new edge.)
TEST_P(fd_ownership_test, a_dup_that_gets_a_closed_dups_number_sees_pending_data) {
  auto f = []() -> task<int> {
    auto [r, w] = eddy::make_pipe();
    int seen = 0;
    for (int k = 0; k < 20; ++k) {
      eddy::unique_fd d1(::dup(r.get()));
      std::array<std::byte, 1> one{std::byte{1}};
      // Wait once with nothing pending: the dup is now watched.
      auto p = eddy::spawn(eddy::with_timeout(2s, eddy::poll(d1.get(), POLLIN)));
      co_await eddy::yield_now();
      (void)co_await eddy::write(w.get(), one);
      (void)co_await p;
      const int number = d1.get();
      d1.reset();  // remove_reader
      eddy::unique_fd d2(::dup(r.get()));  // add_reader, data pending
      EXPECT_EQ(d2.get(), number);
      try {
        const std::size_t ev = co_await eddy::with_timeout(2s, eddy::poll(d2.get(), POLLIN));
        if (ev & POLLIN) ++seen;
      } catch (const eddy::timeout_error&) {
      }
      (void)co_await eddy::read(r.get(), one);
    }
    co_return seen;
  };
  EXPECT_EQ(run(f()), 20);
}

// Numbers reused at once, in both directions of a pair, 1,000 times: every read
// completes with its own stream's bytes.
TEST_P(fd_ownership_test, numbers_reused_at_once_deliver_to_their_new_owner_only) {
  auto f = []() -> task<int> {
    int ok = 0;
    for (int k = 0; k < 1000; ++k) {
      auto [a, b] = eddy::unix_stream::pair();
      std::array<std::byte, 8> buf{};
      auto pending = eddy::spawn(read_into(&a, buf));
      co_await eddy::yield_now();
      co_await a.close();  // cancels the pending read
      try {
        (void)co_await pending;
      } catch (const eddy::cancelled_error&) {
      }
      auto [c, d] = eddy::unix_stream::pair();
      auto r = eddy::spawn(eddy::with_timeout(2s, c.read_some(buf)));
      co_await eddy::yield_now();
      co_await d.write_all(std::string_view("ab"));
      if (co_await r == 2 && buf[0] == std::byte{'a'}) ++ok;
    }
    co_return ok;
  };
  EXPECT_EQ(run(f()), 1000);
}

namespace {

// A pair whose first socket has the number `number` (free now), made as an
// embedding makes its own sockets, outside eddy.
std::pair<int, int> raw_pair_on(int number) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) return {-1, -1};
  if (sv[0] != number) {
    if (::dup2(sv[0], number) < 0) return {-1, -1};
    ::close(sv[0]);
  }
  return {number, sv[1]};
}

task<int> poll_unowned_for(int fd, short events, std::chrono::milliseconds limit) {
  try {
    co_return static_cast<int>(co_await eddy::with_timeout(limit, eddy::poll_unowned(fd, events)));
  } catch (const eddy::timeout_error&) {
    co_return 0;
  }
}

}  // namespace

// poll_unowned: the fd is an embedding's (eddyloop's sock_* on Python's sockets),
// closed with a bare ::close() and its number reused, sometimes while a dup keeps
// the old file (and, on epoll, its registration under the number) alive. Each
// wait must watch the file the number names now, and an old file's events must
// never end it.
TEST_P(fd_ownership_test, unowned_polls_follow_the_file_a_reused_number_names) {
  auto f = []() -> task<int> {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) co_return -1;
    const int number = sv[0];
    int peer = sv[1];
    int ok = 0;
    for (int k = 0; k < 50; ++k) {
      // Data that came while nobody waited is found at once, and a wait with
      // nothing pending ends when data comes.
      if (::send(peer, "a", 1, 0) != 1) co_return -2;
      if (co_await poll_unowned_for(number, POLLIN, 2s) & POLLIN) ++ok;
      char b[4];
      (void)::recv(number, b, sizeof b, 0);
      auto p = eddy::spawn(poll_unowned_for(number, POLLIN, 2s));
      co_await eddy::sleep_for(1ms);
      if (::send(peer, "b", 1, 0) != 1) co_return -3;
      if (co_await p & POLLIN) ++ok;
      (void)::recv(number, b, sizeof b, 0);
      // Behind eddy's back: every other round a dup keeps the old file alive.
      const int keep = k % 2 ? ::dup(number) : -1;
      ::close(number);
      const int old_peer = peer;
      auto [n2, p2] = raw_pair_on(number);
      if (n2 != number) co_return -4;
      peer = p2;
      auto q = eddy::spawn(poll_unowned_for(number, POLLIN, 2s));
      co_await eddy::sleep_for(1ms);
      if (keep >= 0) {
        (void)::send(old_peer, "x", 1, 0);  // an edge on the old file only
        co_await eddy::sleep_for(2ms);
        if (q.done()) co_return -5;
      }
      if (::send(peer, "c", 1, 0) != 1) co_return -6;
      if (co_await q & POLLIN) ++ok;
      (void)::recv(number, b, sizeof b, 0);
      ::close(old_peer);
      if (keep >= 0) ::close(keep);
    }
    ::close(number);
    ::close(peer);
    co_return ok;
  };
  EXPECT_EQ(run(f()), 150);
}

// An owned op after unowned polls on the same number (an embedding hands its fd
// to eddy): the owned watch is made (or the unowned one taken over) and works.
TEST_P(fd_ownership_test, an_owned_read_after_unowned_polls_of_the_same_fd) {
  auto f = []() -> task<int> {
    auto [a, b] = eddy::unix_stream::pair();
    for (int k = 0; k < 3; ++k) {
      co_await b.write_all(std::string_view("z"));
      if (!(co_await poll_unowned_for(a.fd(), POLLIN, 2s) & POLLIN)) co_return -1;
      std::array<std::byte, 4> buf{};
      if (co_await eddy::with_timeout(2s, a.read_some(buf)) != 1) co_return -2;
    }
    std::array<std::byte, 4> buf{};
    auto r = eddy::spawn(eddy::with_timeout(2s, a.read_some(buf)));
    co_await eddy::sleep_for(1ms);
    co_await b.write_all(std::string_view("yy"));
    co_return static_cast<int>(co_await r);
  };
  EXPECT_EQ(run(f()), 2);
}

EDDY_BACKEND_TEST_SUITE(fd_ownership_test);
EDDY_BACKEND_TEST_SUITE(fd_ownership_group_test);
