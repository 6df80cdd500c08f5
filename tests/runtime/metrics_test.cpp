// Loop metrics (include/eddy/runtime/metrics.hpp): they move as work is done.
// Counted, never timed.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <array>
#include <cstddef>
#include <numeric>
#include <thread>

#include "support/loop_fixture.hpp"

namespace {

using namespace std::chrono_literals;

class metrics : public eddy_test::loop_test {};

eddy::task<void> yield_times(int n) {
  for (int i = 0; i < n; ++i) co_await eddy::yield_now();
}

TEST_P(metrics, spawns_polls_and_iterations_are_counted) {
  const eddy::loop_metrics before = lp().metrics();
  run([]() -> eddy::task<void> {
    std::vector<eddy::join_handle<void>> hs;
    for (int i = 0; i < 10; ++i) hs.push_back(eddy::spawn(yield_times(3)));
    for (auto& h : hs) co_await h;
  }());
  const eddy::loop_metrics d = lp().metrics().delta(before);
  EXPECT_EQ(d.tasks_spawned, 11u);  // the main task and ten children
  EXPECT_GE(d.task_polls, 10u * 4u);  // each child: its start and three yields
  EXPECT_GE(d.callbacks, d.task_polls);
  EXPECT_GE(d.iterations, 1u);  // one batch may run them all (ready_batch 256)
  EXPECT_EQ(d.live_tasks, 0u);
  EXPECT_GT(d.events_per_iteration(), 1.0);
}

TEST_P(metrics, io_timers_and_waits_are_counted) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
  const eddy::loop_metrics before = lp().metrics();
  eddy::loop_metrics during{};
  run([](int rfd, int wfd, eddy::loop_metrics* seen) -> eddy::task<void> {
    auto reader = eddy::spawn([](int fd) -> eddy::task<std::size_t> {
      std::array<std::byte, 16> buf{};
      co_return co_await eddy::read(fd, buf);
    }(rfd));
    auto sleeper = eddy::spawn([]() -> eddy::task<void> { co_await eddy::sleep_for(20ms); }());
    for (int i = 0; i < 3; ++i) co_await eddy::yield_now();
    *seen = eddy::loop::current().metrics();
    co_await sleeper;
    co_await eddy::write_all(wfd, "x");
    EXPECT_EQ(co_await reader, 1u);
  }(p[0], p[1], &during));
  ::close(p[0]);
  ::close(p[1]);
  EXPECT_GE(during.in_flight_io, 1u);
  EXPECT_GE(during.armed_timers, 1u);
  EXPECT_EQ(during.live_tasks, 3u);
  const eddy::loop_metrics d = lp().metrics().delta(before);
  const std::uint64_t reads = d.ops_submitted[static_cast<std::size_t>(eddy::detail::op_code::read)];
  const std::uint64_t writes = d.ops_submitted[static_cast<std::size_t>(eddy::detail::op_code::write)];
  EXPECT_GE(reads, 1u);
  EXPECT_GE(writes, 1u);
  EXPECT_STREQ(eddy::loop_metrics::op_kind_name(static_cast<std::size_t>(eddy::detail::op_code::read)), "read");
  EXPECT_GE(d.blocking_waits, 1u);  // the 20 ms sleep blocked in the kernel
  EXPECT_GT(d.idle_ns, 0u);
  EXPECT_GT(d.busy_ns, 0u);
  EXPECT_GT(d.utilization(), 0.0);
  EXPECT_LT(d.utilization(), 1.0);
}

TEST_P(metrics, operations_in_flight_are_counted_by_kind) {
  constexpr int readers = 3, pollers = 2;
  int p[readers + pollers][2];
  for (auto& fds : p) ASSERT_EQ(::pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
  eddy::loop_metrics during{}, after{};
  run([](int (*pipes)[2], eddy::loop_metrics* seen, eddy::loop_metrics* done) -> eddy::task<void> {
    std::vector<eddy::join_handle<std::size_t>> hs;
    for (int i = 0; i < readers; ++i)
      hs.push_back(eddy::spawn([](int fd) -> eddy::task<std::size_t> {
        std::array<std::byte, 16> buf{};
        co_return co_await eddy::read(fd, buf);
      }(pipes[i][0])));
    for (int i = readers; i < readers + pollers; ++i)
      hs.push_back(eddy::spawn([](int fd) -> eddy::task<std::size_t> {
        co_return co_await eddy::poll(fd, POLLIN);
      }(pipes[i][0])));
    for (int i = 0; i < 3; ++i) co_await eddy::yield_now();
    *seen = eddy::loop::current().metrics();
    for (int i = 0; i < readers + pollers; ++i) co_await eddy::write_all(pipes[i][1], "x");
    for (auto& h : hs) EXPECT_GE(co_await h, 1u);
    *done = eddy::loop::current().metrics();
  }(p, &during, &after));
  for (auto& fds : p) {
    ::close(fds[0]);
    ::close(fds[1]);
  }
  const auto read_k = static_cast<std::size_t>(eddy::detail::op_code::read);
  const auto poll_k = static_cast<std::size_t>(eddy::detail::op_code::poll);
  EXPECT_EQ(during.in_flight[read_k], std::size_t{readers});
  EXPECT_EQ(during.in_flight[poll_k], std::size_t{pollers});
  EXPECT_EQ(std::accumulate(std::begin(during.in_flight), std::end(during.in_flight), std::size_t{0}),
            during.in_flight_io);
  const std::string line = during.summary();
  EXPECT_NE(line.find("(read 3, poll 2"), std::string::npos) << line;
  EXPECT_EQ(after.in_flight[read_k], 0u);
  EXPECT_EQ(after.in_flight[poll_k], 0u);
  EXPECT_EQ(after.in_flight_io, 0u);
  EXPECT_STREQ(eddy::loop_metrics::op_kind_name(static_cast<std::size_t>(eddy::detail::op_code::mkdirat)),
               "mkdirat");
  EXPECT_STREQ(eddy::loop_metrics::op_kind_name(eddy::loop_metrics::op_kinds - 1), "other");
}

TEST_P(metrics, cross_thread_posts_are_counted) {
  const eddy::loop_metrics before = lp().metrics();
  run([]() -> eddy::task<void> {
    eddy::event done;
    int got = 0;
    eddy::loop_handle h = eddy::loop::current().handle();
    std::thread t([&] {
      for (int i = 0; i < 5; ++i)
        (void)h.call_soon_threadsafe([&got, &done] {
          if (++got == 5) done.set();
        });
    });
    co_await done.wait();
    t.join();
  }());
  EXPECT_EQ(lp().metrics().delta(before).remote_posts, 5u);
}

TEST_P(metrics, busy_and_idle_time_stay_zero_when_turned_off) {
  lp().close();
  opts_.metrics = false;
  make_loop();
  run([]() -> eddy::task<void> { co_await eddy::sleep_for(2ms); }());
  const eddy::loop_metrics m = lp().metrics();
  EXPECT_EQ(m.busy_ns, 0u);
  EXPECT_EQ(m.idle_ns, 0u);
  EXPECT_GE(m.blocking_waits, 1u);  // the counters are kept regardless
  EXPECT_EQ(m.tasks_spawned, 1u);
}

eddy::task<void> spin_then_yield() {
  for (int i = 0; i < 3; ++i) {
    const auto until = eddy::clock::now() + 200us;
    while (eddy::clock::now() < until) {
    }
    co_await eddy::yield_now();
  }
}

TEST_P(metrics, poll_times_are_an_opt_in_histogram) {
  lp().close();
  opts_.task_poll_times = true;
  make_loop();
  std::uint64_t task_ns = 0;
  run([](std::uint64_t* out) -> eddy::task<void> {
    auto h = eddy::spawn(spin_then_yield());
    co_await eddy::yield_now();
    for (const eddy::task_info& t : eddy::loop::current().tasks())
      if (t.state != std::string_view("running")) *out = t.poll_ns;
    co_await h;
  }(&task_ns));
  const eddy::loop_metrics m = lp().metrics();
  const std::uint64_t in_hist = std::accumulate(std::begin(m.poll_time_hist), std::end(m.poll_time_hist), std::uint64_t{0});
  EXPECT_GE(in_hist, m.task_polls);
  EXPECT_GE(m.poll_ns, 600'000u);  // three polls of at least 200 us each
  EXPECT_GE(task_ns, 200'000u);    // the child's first poll, seen in the dump
  // One poll of >= 200 us lands in bucket 7 ([128, 256) us) or above.
  std::uint64_t slow = 0;
  for (std::size_t b = 7; b < eddy::loop_metrics::poll_buckets; ++b) slow += m.poll_time_hist[b];
  EXPECT_GE(slow, 3u);
}

TEST_P(metrics, summary_names_the_counters) {
  run([]() -> eddy::task<void> { co_await eddy::yield_now(); }());
  const std::string s = lp().metrics().summary(std::chrono::seconds(1));
  EXPECT_NE(s.find("busy "), std::string::npos) << s;
  EXPECT_NE(s.find("iters "), std::string::npos) << s;
  EXPECT_NE(s.find("ev/iter "), std::string::npos) << s;
  EXPECT_NE(s.find("iters/s "), std::string::npos) << s;
}

EDDY_BACKEND_TEST_SUITE(metrics);

}  // namespace
