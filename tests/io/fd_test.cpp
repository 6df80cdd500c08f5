// fd operations on every backend: pipes, poll, close with ops in flight, fd
// reuse, CQ overflow, shutdown with work pending, cancellation storms
// (RELIABILITY.md rows 7-10).
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <array>
#include <numeric>
#include <random>
#include <vector>

#include "support/loop_fixture.hpp"

using namespace std::chrono_literals;
using eddy::task;

namespace {

class fd_test : public eddy_test::loop_test {};

task<std::uint64_t> pump(int wfd, std::size_t total) {
  std::vector<std::byte> chunk(64 * 1024);
  std::uint64_t sum = 0;
  std::size_t sent = 0;
  std::mt19937 rng(1);
  while (sent < total) {
    const std::size_t n = std::min(chunk.size(), total - sent);
    for (std::size_t i = 0; i < n; ++i) {
      chunk[i] = static_cast<std::byte>(rng());
      sum += static_cast<std::uint8_t>(chunk[i]);
    }
    co_await eddy::write_all(wfd, std::span(chunk.data(), n));
    sent += n;
  }
  co_return sum;
}

task<std::uint64_t> drain(int rfd, std::size_t* got) {
  std::vector<std::byte> buf(7000);
  std::uint64_t sum = 0;
  for (;;) {
    const std::size_t n = co_await eddy::read(rfd, buf);
    if (n == 0) break;
    for (std::size_t i = 0; i < n; ++i) sum += static_cast<std::uint8_t>(buf[i]);
    *got += n;
  }
  co_return sum;
}

task<std::size_t> wait_readable(int fd) { co_return co_await eddy::poll(fd, POLLIN); }

}  // namespace

TEST_P(fd_test, a_pipe_carries_16_mib_intact) {
  auto f = []() -> task<bool> {
    auto [r, w] = eddy::make_pipe();
    std::size_t got = 0;
    auto reader = eddy::spawn(drain(r.get(), &got));
    const std::uint64_t sent_sum = co_await pump(w.get(), 16u << 20);
    co_await w.close();
    const std::uint64_t got_sum = co_await reader;
    co_return got == (16u << 20) && got_sum == sent_sum;
  };
  EXPECT_TRUE(run(f()));
}

TEST_P(fd_test, eof_is_a_value_not_an_exception) {
  auto f = []() -> task<std::size_t> {
    auto [r, w] = eddy::make_pipe();
    w.reset();
    std::array<std::byte, 8> b;
    co_return co_await eddy::read(r.get(), b);
  };
  EXPECT_EQ(run(f()), 0u);
}

TEST_P(fd_test, poll_reports_readiness) {
  auto f = []() -> task<int> {
    auto [r, w] = eddy::make_pipe();
    auto waiter = [](int fd) -> task<std::size_t> { co_return co_await eddy::poll(fd, POLLIN); };
    auto h = eddy::spawn(waiter(r.get()));
    co_await eddy::sleep_for(1ms);
    EXPECT_FALSE(h.done());
    const std::array<std::byte, 1> one{std::byte{7}};
    co_await eddy::write_all(w.get(), one);
    co_return static_cast<int>(co_await h);
  };
  EXPECT_TRUE(run(f()) & POLLIN);
}

TEST_P(fd_test, writing_into_a_pipe_without_reader_gives_epipe_not_sigpipe) {
  auto f = []() -> task<int> {
    auto [r, w] = eddy::make_pipe();
    r.reset();
    const std::array<std::byte, 4> data{};
    try {
      (void)co_await eddy::write(w.get(), data);
    } catch (const std::system_error& e) {
      co_return e.code().value();
    }
    co_return 0;
  };
  EXPECT_EQ(run(f()), EPIPE);  // and the process is still here
}

TEST_P(fd_test, errors_carry_errno_and_the_fd) {
  auto f = []() -> task<void> {
    std::array<std::byte, 8> b;
    (void)co_await eddy::read(12345, b);
  };
  try {
    run(f());
    FAIL();
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), EBADF);
    EXPECT_NE(std::string(e.what()).find("fd 12345"), std::string::npos);
  }
}

TEST_P(fd_test, close_cancels_a_pending_read_and_a_reused_fd_gets_no_stray_completion) {
  // RELIABILITY row 8: close with a read pending, immediately reuse the number.
  auto f = []() -> task<int> {
    int wrong_owner = 0;
    for (int i = 0; i < 2000; ++i) {
      auto [r, w] = eddy::make_pipe();
      const int num = r.get();
      auto reader = [](int fd) -> task<int> {
        std::array<std::byte, 8> b;
        try {
          (void)co_await eddy::read(fd, b);
          co_return 1;
        } catch (const eddy::cancelled_error&) {
          co_return 0;
        }
      };
      auto h = eddy::spawn(reader(num));
      co_await eddy::yield_now();
      co_await r.close();
      // Same number, new pipe, with data: the old read must not see it.
      auto [r2, w2] = eddy::make_pipe();
      const std::array<std::byte, 1> one{std::byte{1}};
      co_await eddy::write_all(w2.get(), one);
      wrong_owner += co_await h;
      std::array<std::byte, 8> b;
      if (r2.get() == num) {
        EXPECT_EQ(co_await eddy::read(r2.get(), b), 1u);
      }
    }
    co_return wrong_owner;
  };
  EXPECT_EQ(run(f()), 0);
}

TEST_P(fd_test, unique_fd_destructor_cancels_ops_in_flight) {
  auto f = []() -> task<bool> {
    auto [r, w] = eddy::make_pipe();
    auto reader = [](int fd) -> task<bool> {
      std::array<std::byte, 8> b;
      try {
        (void)co_await eddy::read(fd, b);
      } catch (const eddy::cancelled_error&) {
        co_return true;
      }
      co_return false;
    };
    auto h = eddy::spawn(reader(r.get()));
    co_await eddy::sleep_for(1ms);
    r.reset();
    co_return co_await h;
  };
  EXPECT_TRUE(run(f()));
}

TEST_P(fd_test, a_tiny_completion_queue_loses_nothing_under_ten_thousand_ops) {
  // RELIABILITY row 9: overflowed completions are delivered.
  loop_.reset();
  opts_.uring_entries = 4;
  opts_.uring_cq_entries = 8;
  make_loop();
  auto f = []() -> task<int> {
    constexpr int n = 10'000;
    std::vector<int> fds;
    std::vector<eddy::join_handle<std::size_t>> hs;
    for (int i = 0; i < 500; ++i) fds.push_back(::eventfd(1'000'000, EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC));
    auto rd = [](int fd) -> task<std::size_t> {
      std::array<std::byte, 8> b;
      co_return co_await eddy::read(fd, b);
    };
    for (int i = 0; i < n; ++i) hs.push_back(eddy::spawn(rd(fds[static_cast<std::size_t>(i) % fds.size()])));
    int ok = 0;
    for (auto& h : hs) ok += (co_await h) == 8;
    for (int fd : fds) co_await eddy::close(fd);
    co_return ok;
  };
  EXPECT_EQ(run(f()), 10'000);
}

TEST_P(fd_test, closing_the_loop_with_a_thousand_pending_ops_destroys_every_frame_once) {
  // RELIABILITY row 10.
  static int frames = 0;
  struct counter {
    counter() { ++frames; }
    ~counter() { --frames; }
  };
  frames = 0;
  std::vector<eddy::unique_fd> keep;
  auto reader = [](int fd) -> task<void> {
    counter c;
    std::array<std::byte, 8> b;
    (void)co_await eddy::read(fd, b);
  };
  auto sleeper = []() -> task<void> {
    counter c;
    co_await eddy::sleep_for(1h);
  };
  auto waiter = [](eddy::event* e) -> task<void> {
    counter c;
    co_await e->wait();
  };
  eddy::event never;
  for (int i = 0; i < 1000; ++i) {
    auto [r, w] = eddy::make_pipe();
    lp().spawn(reader(r.get())).detach();
    keep.push_back(std::move(r));
    keep.push_back(std::move(w));
    lp().spawn(sleeper()).detach();
    lp().spawn(waiter(&never)).detach();
  }
  for (int i = 0; i < 100 && frames < 3000; ++i) lp().run_once();
  EXPECT_EQ(frames, 3000);
  lp().close();
  EXPECT_EQ(frames, 0);
  EXPECT_EQ(lp().stats().leaked_io, 0u);
}

TEST_P(fd_test, a_cancellation_storm_completes_every_op_exactly_once) {
  // RELIABILITY row 7, scaled to keep the suite fast: ops of every kind here
  // (read, poll, sleep, event), each cancelled after a random 0-2 ms.
  auto f = []() -> task<int> {
    std::mt19937 rng(99);
    auto [r, w] = eddy::make_pipe();
    eddy::event ev;
    int completions = 0;
    auto op = [](int kind, int fd, eddy::event* ev, int* done) -> task<void> {
      struct once {
        int* d;
        ~once() { ++*d; }
      } o{done};
      std::array<std::byte, 4> b;
      switch (kind) {
        case 0: (void)co_await eddy::read(fd, b); break;
        case 1: (void)co_await eddy::poll(fd, POLLIN); break;
        case 2: co_await eddy::sleep_for(1h); break;
        default: co_await ev->wait(); break;
      }
    };
    constexpr int n = 20'000;
    std::vector<eddy::join_handle<void>> hs;
    std::vector<eddy::timer_handle> cancels;
    hs.reserve(n);
    for (int i = 0; i < n; ++i) {
      hs.push_back(eddy::spawn(op(i % 4, r.get(), &ev, &completions)));
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
    co_return cancelled;
  };
  EXPECT_EQ(run(f()), 20'000);
}

EDDY_BACKEND_TEST_SUITE(fd_test);

// The readiness engine keeps its per-fd state in chunks made as fd numbers first
// appear (io/readiness/fd_table.hpp): a pipe whose ends sit far apart, the higher
// one first, in chunks not made yet, carries its bytes intact while a low fd waits
// too, and closing them leaves a low fd's watch working.
TEST_P(fd_test, fds_far_apart_in_number_carry_data_and_close_cleanly) {
  rlimit lim{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &lim), 0);
  if (lim.rlim_cur < 2100 && lim.rlim_max >= 2100) {
    rlimit raised = lim;
    raised.rlim_cur = 2100;
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &raised), 0);
  }
  rlimit now{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &now), 0);
  const int high = now.rlim_cur >= 2100 ? 2000 : static_cast<int>(now.rlim_cur) - 20;
  ASSERT_GT(high, 600) << "RLIMIT_NOFILE too low for this test";
  auto f = [high]() -> task<bool> {
    auto [r0, w0] = eddy::make_pipe();
    eddy::unique_fd w(fcntl(w0.get(), F_DUPFD_CLOEXEC, high));
    eddy::unique_fd r(fcntl(r0.get(), F_DUPFD_CLOEXEC, 600));
    if (!w || !r || w.get() < high || r.get() < 600) co_return false;
    co_await r0.close();
    co_await w0.close();
    auto [lr, lw] = eddy::make_pipe();  // a low fd waiting through it all
    std::size_t got = 0;
    auto reader = eddy::spawn(drain(r.get(), &got));
    auto low = eddy::spawn(wait_readable(lr.get()));
    const std::uint64_t sent_sum = co_await pump(w.get(), 1u << 20);
    co_await w.close();
    const std::uint64_t got_sum = co_await reader;
    co_await r.close();
    const char one = 1;
    if (::write(lw.get(), &one, 1) != 1) co_return false;
    const std::size_t ev = co_await low;
    co_return got == (1u << 20) && got_sum == sent_sum && (ev & POLLIN) != 0;
  };
  EXPECT_TRUE(run(f()));
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &lim), 0);
}
