// Readiness edges the readiness backends once missed (issue 19, item 6): POLLPRI
// (urgent data) is watched, and a splice whose output is full waits for room on
// the output, not for more input. On every backend.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <vector>

#include <eddy/runtime/detail/op_awaiter.hpp>

#include "support/loop_fixture.hpp"

using namespace std::chrono_literals;
using eddy::task;

namespace {

class poll_edges_test : public eddy_test::loop_test {};

task<int> poll_for(int fd, short events) {
  co_return static_cast<int>(co_await eddy::poll(fd, events));
}

}  // namespace

TEST_P(poll_edges_test, poll_for_pollpri_sees_tcp_urgent_data) {
  if (GetParam() == eddy::backend_kind::io_uring)
    GTEST_SKIP() << "io_uring's POLL_ADD is not woken by TCP urgent data (Linux 6.18 here: a "
                    "plain liburing program waits 1 s for the CQE while poll(2) reports POLLPRI)";
  auto f = []() -> task<int> {
    auto l = eddy::tcp_listener::bind(eddy::socket_address::loopback(0));
    auto acc = eddy::spawn(l.accept());
    auto c = co_await eddy::tcp_stream::connect(l.local_address());
    auto s = co_await acc;
    int got = 0;
    for (int round = 0; round < 3; ++round) {
      // The first round waits on a fresh watch; later ones on a watched fd whose
      // earlier urgent edge is spent.
      auto p = eddy::spawn(eddy::with_timeout(2s, poll_for(s.fd(), POLLPRI)));
      co_await eddy::sleep_for(1ms);
      const char oob = '!';
      if (::send(c.fd(), &oob, 1, MSG_OOB) != 1) co_return -1;
      int ev = 0;
      try {
        ev = co_await p;
      } catch (const eddy::timeout_error&) {
        co_return got;
      }
      if (ev & POLLPRI) ++got;
      char b = 0;
      (void)::recv(s.fd(), &b, 1, MSG_OOB);  // consume it
    }
    co_await c.close();
    co_await s.close();
    co_await l.close();
    co_return got;
  };
  EXPECT_EQ(run(f()), 3);
}

namespace {

// The backend's splice op (the tcp_proxy makes its own splice calls; this is the
// contract's op, which io_uring runs natively).
task<int> splice_op(int in, int out, unsigned len) {
  eddy::detail::raw_op_awaiter aw(eddy::loop::current(), "splice", eddy::detail::op_code::splice, in,
                                   nullptr, len, 0);
  aw.op.aux_fd = out;
  co_return co_await std::move(aw);
}

}  // namespace

namespace {

// io_uring's SPLICE honours O_NONBLOCK on the pipes (EAGAIN instead of a wait), so
// there the op gets blocking fds, which io_uring waits on for us; the readiness
// backends need non-blocking ones.
void suit_backend(const eddy::unique_fd& fd) {
  if (eddy::loop::current().backend() == eddy::backend_kind::io_uring)
    ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
}

}  // namespace

TEST_P(poll_edges_test, a_splice_into_a_full_pipe_completes_once_the_pipe_drains) {
  auto f = []() -> task<int> {
    auto [in_r, in_w] = eddy::make_pipe();
    auto [out_r, out_w] = eddy::make_pipe();
    // Fill the output pipe.
    std::vector<char> junk(65536, 'j');
    std::size_t filled = 0;
    for (;;) {
      const ssize_t n = ::write(out_w.get(), junk.data(), junk.size());
      if (n <= 0) break;
      filled += static_cast<std::size_t>(n);
    }
    // Input waiting.
    if (::write(in_w.get(), "data", 4) != 4) co_return -1;
    suit_backend(in_r);
    suit_backend(out_w);
    auto sp = eddy::spawn(eddy::with_timeout(2s, splice_op(in_r.get(), out_w.get(), 4)));
    co_await eddy::sleep_for(2ms);
    // Drain the output: now the splice can move the input.
    std::vector<char> sink(65536);
    while (filled > 0) {
      const ssize_t n = ::read(out_r.get(), sink.data(), sink.size());
      if (n <= 0) break;
      filled -= static_cast<std::size_t>(n);
    }
    try {
      co_return co_await sp;
    } catch (const eddy::timeout_error&) {
      co_return -2;
    }
  };
  EXPECT_EQ(run(f()), 4);
}

TEST_P(poll_edges_test, a_splice_from_an_empty_pipe_waits_for_input) {
  auto f = []() -> task<int> {
    auto [in_r, in_w] = eddy::make_pipe();
    auto [out_r, out_w] = eddy::make_pipe();
    suit_backend(in_r);
    suit_backend(out_w);
    auto sp = eddy::spawn(eddy::with_timeout(2s, splice_op(in_r.get(), out_w.get(), 16)));
    co_await eddy::sleep_for(2ms);
    if (::write(in_w.get(), "abc", 3) != 3) co_return -1;
    try {
      co_return co_await sp;
    } catch (const eddy::timeout_error&) {
      co_return -2;
    }
  };
  EXPECT_EQ(run(f()), 3);
}

EDDY_BACKEND_TEST_SUITE(poll_edges_test);
