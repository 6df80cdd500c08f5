// Closing cancels what is in flight, on every kernel eddy accepts (RELIABILITY.md
// row 19): io_uring before 6.1 has no cancel-by-fd, so the backend cancels the
// fd's ops one by one; loop_options::uring_features = baseline forces that path
// here. On io_uring each test runs with all features and with the baseline; on
// epoll and libuv once. Also: cancels that find a tiny submission queue full are
// sent on the next enter, never dropped.
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <vector>

#include "io/net_support.hpp"
#include "support/loop_fixture.hpp"

using namespace std::chrono_literals;
using eddy::task;

namespace {

class close_cancel_test : public eddy_test::loop_test {
 protected:
  // The feature sets to run this backend with.
  std::vector<eddy::uring_feature_set> feature_sets() const {
    if (GetParam() != eddy::backend_kind::io_uring) return {eddy::uring_feature_set::all};
    return {eddy::uring_feature_set::all, eddy::uring_feature_set::baseline};
  }
  void remake(eddy::uring_feature_set f) {
    if (loop_) loop_->close();
    loop_.reset();
    opts_.uring_features = f;
    make_loop();
    if (f == eddy::uring_feature_set::baseline) {
      ASSERT_NE(loop_->backend_reason().find("baseline"), std::string::npos) << loop_->backend_reason();
    }
  }
};

struct conn_pair {
  eddy::tcp_stream near;  // the side we close
  eddy::tcp_stream peer;
};

task<conn_pair> connected_pair(eddy::tcp_listener& l) {
  auto acc = eddy::spawn([](eddy::tcp_listener* l) -> task<eddy::tcp_stream> {
    co_return co_await l->accept();
  }(&l));
  eddy::tcp_stream near = co_await eddy::tcp_stream::connect(l.local_address());
  eddy::tcp_stream peer = co_await acc;
  co_return conn_pair{std::move(near), std::move(peer)};
}

// *out: 0 cancelled, 1 got bytes (the close did not cancel), 2 EOF, 3 another error.
task<void> pending_read(eddy::tcp_stream* s, bool use_receive, int* out) {
  try {
    if (use_receive) {
      eddy::recv_buffer b = co_await s->receive();
      *out = b.empty() ? 2 : 1;
    } else {
      std::array<std::byte, 64> buf;
      *out = co_await s->read_some(buf) == 0 ? 2 : 1;
    }
  } catch (const eddy::cancelled_error&) {
    *out = 0;
  } catch (const std::system_error&) {
    *out = 3;
  }
}

// Lets the loop run until *v is set, for at most ~2 s (a hang bound, not a timing).
task<void> until_set(const int* v) {
  for (int i = 0; i < 2000 && *v < 0; ++i) co_await eddy::sleep_for(1ms);
}

// Reads on `s` until EOF (true) or the deadline (false: no FIN arrived).
task<bool> sees_fin(eddy::tcp_stream* s) {
  try {
    std::array<std::byte, 64> buf;
    while (co_await eddy::with_timeout(2s, s->read_some(buf)) != 0) {
    }
    co_return true;
  } catch (const eddy::timeout_error&) {
    co_return false;
  } catch (const std::system_error&) {
    co_return true;  // a reset is an end too
  }
}

}  // namespace

TEST_P(close_cancel_test, close_with_a_recv_in_flight_resumes_the_task_sends_fin_and_spares_the_next_owner) {
  for (eddy::uring_feature_set fs : feature_sets()) {
    SCOPED_TRACE(fs == eddy::uring_feature_set::baseline ? "baseline" : "all features");
    remake(fs);
    auto f = []() -> task<int> {
      auto l = eddy_test::loopback_listener();
      int ok = 0;
      for (int i = 0; i < 40; ++i) {
        const bool use_receive = (i & 1) != 0;  // plain recv, then the multishot receiver
        const bool awaited = (i & 2) != 0;      // co_await close(), or the destructor's close_now
        const bool early = (i & 4) != 0;        // close before the recv reached the kernel
        conn_pair p = co_await connected_pair(l);
        const int num = p.near.fd();
        int r = -1;
        auto h = eddy::spawn(pending_read(&p.near, use_receive, &r));
        co_await eddy::yield_now();  // the reader has queued its op
        if (!early) co_await eddy::sleep_for(1ms);  // and the loop has entered the kernel
        if (awaited)
          co_await p.near.close();
        else
          p.near = eddy::tcp_stream();
        // The task resumes with a cancellation (the peer has sent nothing), by
        // the close alone, and the kernel lets go of the file: the peer sees FIN.
        co_await until_set(&r);
        const bool fin = co_await sees_fin(&p.peer);
        EXPECT_EQ(r, 0) << "round " << i << ": the pending read ended with " << r << " (-1: still waiting)";
        EXPECT_TRUE(fin) << "round " << i << ": no FIN after close with a recv in flight";
        h.cancel();  // only matters when the close failed to cancel
        co_await std::move(h);
        // The number comes back at once; its new owner gets its own bytes.
        conn_pair q = co_await connected_pair(l);
        if (q.near.fd() == num || q.peer.fd() == num) {
          co_await q.peer.write_all(eddy_test::payload(3, 1));
          std::array<std::byte, 8> buf;
          EXPECT_EQ(co_await eddy::with_timeout(2s, q.near.read_some(buf)), 3u) << "round " << i;
        }
        ok += r == 0 && fin;
      }
      co_return ok;
    };
    EXPECT_EQ(run(f()), 40);
  }
}

TEST_P(close_cancel_test, cancels_that_find_a_two_entry_submission_queue_full_all_reach_the_kernel) {
  opts_.uring_entries = 2;
  opts_.uring_cq_entries = 4;
  for (eddy::uring_feature_set fs : feature_sets()) {
    SCOPED_TRACE(fs == eddy::uring_feature_set::baseline ? "baseline" : "all features");
    remake(fs);
    auto f = []() -> task<int> {
      constexpr int n = 200;
      std::vector<eddy::unique_fd> fds;
      for (int i = 0; i < n; ++i) fds.emplace_back(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
      auto rd = [](int fd) -> task<int> {
        std::array<std::byte, 8> b;
        try {
          (void)co_await eddy::read(fd, b);
          co_return 1;
        } catch (const eddy::cancelled_error&) {
          co_return 0;
        }
      };
      // A multishot accept (io_uring with all features) must end too.
      auto l = eddy_test::loopback_listener();
      auto acc = eddy::spawn([](eddy::tcp_listener* l) -> task<int> {
        try {
          (void)co_await l->accept();
          co_return 1;
        } catch (const eddy::cancelled_error&) {
          co_return 0;
        }
      }(&l));
      std::vector<eddy::join_handle<int>> hs;
      for (int i = 0; i < n; ++i) hs.push_back(eddy::spawn(rd(fds[static_cast<std::size_t>(i)].get())));
      co_await eddy::sleep_for(1ms);  // every read is in flight
      // All cancels in one turn: the queue holds two, the rest wait for the next
      // enter. Asking twice is harmless; neither request may be lost.
      for (auto& h : hs) h.cancel();
      for (auto& h : hs) h.cancel();
      acc.cancel();
      int cancelled = 0;
      for (auto& h : hs) cancelled += (co_await eddy::with_timeout(2s, std::move(h))) == 0;
      cancelled += (co_await eddy::with_timeout(2s, std::move(acc))) == 0;
      co_await l.close();
      co_return cancelled;
    };
    EXPECT_EQ(run(f()), 201);
    EXPECT_EQ(lp().stats().in_flight_io, 0u);
  }
}

EDDY_BACKEND_TEST_SUITE(close_cancel_test);
