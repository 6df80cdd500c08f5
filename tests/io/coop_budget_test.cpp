// The per-task budget (loop_options::coop_budget, DESIGN.md §10): a task whose
// operations keep completing inline (its socket always has data) still yields to
// the loop after a budget of them, so timers, other connections and cross-thread
// posts are served. Counted, not timed: how many reads the hog made, and how many
// loop iterations passed, between a timer falling due and its firing.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <thread>

#include "support/loop_fixture.hpp"

using namespace std::chrono_literals;
using eddy::task;

namespace {

class coop_budget_test : public eddy_test::loop_test {};

// Keeps the write end of a Unix stream full from a plain thread until `stop`.
struct filler {
  int fd;
  std::atomic<bool> stop{false};
  std::thread t;
  explicit filler(int f) : fd(f) {
    t = std::thread([this] {
      std::array<char, 65536> junk{};
      pollfd p{fd, POLLOUT, 0};
      while (!stop.load(std::memory_order_relaxed)) {
        const ssize_t n = ::send(fd, junk.data(), junk.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN) break;
        if (n < 0) ::poll(&p, 1, 10);
      }
    });
  }
  ~filler() {
    stop = true;
    t.join();
  }
};

// The timer wheel fires at the first 1 ms tick after a deadline: the hog starts
// counting once the timer is certainly due.
constexpr auto wheel_slack = 2ms;

struct observation {
  bool seen_due = false;
  std::uint64_t reads_after_due = 0;       // hog reads between the deadline and the timer
  std::uint64_t iteration_due = 0;    // the loop's iteration when the hog saw the deadline
  std::uint64_t iteration_fired = 0;  // ... and when the timer ran
  bool fired = false;
};

// Reads 64 bytes at a time until the timer has fired (or a cap, so the old code
// ends too). Counts its reads after the timer's deadline.
task<void> hog(eddy::unix_stream* s, const bool* fired, eddy::clock::time_point due,
               observation* o, std::uint64_t cap) {
  std::array<std::byte, 64> b{};
  bool seen_due = false;
  for (std::uint64_t k = 0; k < cap && !*fired; ++k) {
    if (co_await s->read_some(b) == 0) break;
    if (!seen_due && eddy::clock::now() >= due + wheel_slack) {
      seen_due = true;
      o->seen_due = true;
      o->iteration_due = eddy::loop::current().stats().iterations;
    }
    if (seen_due) ++o->reads_after_due;
  }
}

}  // namespace

TEST_P(coop_budget_test, a_timer_beside_a_reader_of_a_never_empty_socket_fires_within_a_few_iterations) {
  auto f = []() -> task<observation> {
    auto [a, b] = eddy::unix_stream::pair();
    filler fill(b.fd());
    // Let the socket fill up first.
    std::array<std::byte, 1> one{};
    (void)co_await a.read_some(one);
    co_await eddy::sleep_for(5ms);
    observation o;
    bool fired = false;
    const auto due = eddy::clock::now() + 10ms;
    auto timer = eddy::spawn([](bool* fired, observation* o, eddy::clock::time_point due) -> task<void> {
      co_await eddy::sleep_until(due);
      *fired = true;
      o->fired = true;
      o->iteration_fired = eddy::loop::current().stats().iterations;
    }(&fired, &o, due));
    co_await hog(&a, &fired, due, &o, 3'000'000);
    fill.stop = true;
    co_await timer;
    co_return o;
  };
  const observation o = run(f());
  ASSERT_TRUE(o.fired);
  // Budget 128 reads per turn: the hog saw the timer due during one turn; the
  // wheel moves it to the ready queue at the end of that turn or the next.
  if (o.seen_due) {
    EXPECT_LE(o.iteration_fired - o.iteration_due, 2u);
    EXPECT_LE(o.reads_after_due, 2u * 128u);
  }
}

TEST_P(coop_budget_test, other_connections_keep_being_served_beside_a_hog) {
  auto f = []() -> task<int> {
    auto [a, b] = eddy::unix_stream::pair();
    filler fill(b.fd());
    std::array<std::byte, 1> one{};
    (void)co_await a.read_some(one);
    bool done = false;
    // A ping-pong of 50 round trips on another pair, while the hog reads.
    auto pp = eddy::spawn([](bool* done) -> task<int> {
      auto [x, y] = eddy::unix_stream::pair();
      std::array<std::byte, 4> buf{};
      int n = 0;
      for (; n < 50; ++n) {
        co_await x.write_all(std::string_view("p"));
        if (co_await y.read_some(buf) != 1) break;
        co_await y.write_all(std::string_view("q"));
        if (co_await x.read_some(buf) != 1) break;
      }
      *done = true;
      co_return n;
    }(&done));
    std::array<std::byte, 64> b64{};
    std::uint64_t reads = 0;
    while (!done && reads < 3'000'000) {
      if (co_await a.read_some(b64) == 0) break;
      ++reads;
    }
    fill.stop = true;
    const int n = co_await pp;
    // Each round trip needs a few turns of the loop; at 128 reads a turn the hog
    // reads far fewer than the cap meanwhile.
    EXPECT_LT(reads, 50u * 8u * 128u);
    co_return n;
  };
  EXPECT_EQ(run(f()), 50);
}

TEST_P(coop_budget_test, the_budget_is_a_checked_loop_option) {
  eddy::loop_options o;
  o.backend = GetParam();
  o.coop_budget = 1'000'001;
  EXPECT_THROW(eddy::loop bad(o), std::invalid_argument);
}

// With a budget of 1 every inline completion yields: a task that reads a full
// socket lets a sibling run between any two of its reads.
TEST_P(coop_budget_test, a_budget_of_one_interleaves_two_readers) {
  loop_.reset();
  opts_.coop_budget = 1;
  make_loop();
  auto f = []() -> task<int> {
    auto [a, b] = eddy::unix_stream::pair();
    std::array<std::byte, 4096> junk{};
    co_await b.write_all(junk);
    int turns = 0, max_run = 0, run = 0;
    bool other_done = false;
    auto other = eddy::spawn([](int* turns, int* run, bool* done) -> task<void> {
      for (int k = 0; k < 20; ++k) {
        ++*turns;
        *run = 0;
        co_await eddy::yield_now();
      }
      *done = true;
    }(&turns, &run, &other_done));
    std::array<std::byte, 16> buf{};
    for (int k = 0; k < 40; ++k) {
      (void)co_await a.read_some(buf);
      if (!other_done && ++run > max_run) max_run = run;
    }
    co_await other;
    co_return max_run;
  };
  EXPECT_LE(run(f()), 2);
}

EDDY_BACKEND_TEST_SUITE(coop_budget_test);
