// loop_group and spawn_on: loops run and stop as one; tasks cross loops both ways and
// at random; cancellation crosses with them; frames live and die on their own loop; a
// closing loop fails the calls it still owes. Runs on every backend (and under TSan:
// suite `threads`).
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <eddy/eddy.hpp>

#include "support/loop_fixture.hpp"

namespace {

using namespace std::chrono_literals;

class loop_group_test : public ::testing::TestWithParam<eddy::backend_kind> {
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

std::size_t env_count(const char* name, std::size_t dflt) {
  if (const char* v = std::getenv(name); v != nullptr && *v != '\0') return std::strtoull(v, nullptr, 10);
  return dflt;
}

eddy::task<std::thread::id> where_am_i() { co_return std::this_thread::get_id(); }

eddy::task<std::size_t> index_here() {
  co_await eddy::yield_now();
  co_return eddy::loop_group::current_index();
}

TEST_P(loop_group_test, runs_every_main_on_its_own_loop_thread) {
  eddy::loop_group g(opts(3));
  ASSERT_EQ(g.size(), 3u);
  std::vector<std::thread::id> ids(3);
  std::vector<std::size_t> idx(3, 99);
  g.run([&](std::size_t i) -> eddy::task<void> {
    return [](std::size_t i, std::vector<std::thread::id>* ids, std::vector<std::size_t>* idx) -> eddy::task<void> {
      (*ids)[i] = std::this_thread::get_id();
      (*idx)[i] = eddy::loop_group::current_index();
      co_return;
    }(i, &ids, &idx);
  });
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(idx[i], i);
    EXPECT_NE(ids[i], std::this_thread::get_id());
    for (std::size_t j = 0; j < i; ++j) EXPECT_NE(ids[i], ids[j]);
  }
  EXPECT_THROW(g.run([](std::size_t) -> eddy::task<void> { co_return; }), std::logic_error);
}

TEST_P(loop_group_test, options_are_validated) {
  eddy::loop_group_options o = opts(eddy::loop_group::max_loops + 1);
  try {
    eddy::loop_group g(o);
    FAIL() << "1025 loops accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("loops"), std::string::npos) << e.what();
  }
  EXPECT_GE(eddy::loop_group::default_size(), 1u);
  eddy::loop_group g(opts(2));
  EXPECT_THROW((void)g.handle(2), std::out_of_range);
  EXPECT_THROW((void)eddy::loop_group::current_index(), std::logic_error);
}

eddy::task<void> fail_or_wait(std::size_t i, std::atomic<int>* cancelled) {
  if (i == 1) {
    co_await eddy::sleep_for(1ms);
    throw std::runtime_error("boom on one");
  }
  try {
    co_await eddy::sleep_for(1h);
  } catch (const eddy::cancelled_error&) {
    cancelled->fetch_add(1);
    throw;
  }
}

TEST_P(loop_group_test, a_failing_main_is_reported_with_its_index_and_cancels_the_others) {
  eddy::loop_group g(opts(3));
  std::atomic<int> cancelled{0};
  try {
    g.run([&](std::size_t i) { return fail_or_wait(i, &cancelled); });
    FAIL() << "no error";
  } catch (const eddy::loop_group_error& e) {
    EXPECT_EQ(e.index(), 1u);
    EXPECT_NE(std::string(e.what()).find("loop 1"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("boom on one"), std::string::npos) << e.what();
    EXPECT_THROW(std::rethrow_exception(e.cause()), std::runtime_error);
  }
  EXPECT_EQ(cancelled.load(), 2);
}

eddy::task<void> wait_forever(std::atomic<int>* started, std::atomic<int>* cancelled) {
  started->fetch_add(1);
  try {
    co_await eddy::sleep_for(1h);
  } catch (const eddy::cancelled_error&) {
    cancelled->fetch_add(1);
  }
}

TEST_P(loop_group_test, cancel_from_another_thread_stops_every_main) {
  eddy::loop_group g(opts(2));
  std::atomic<int> started{0}, cancelled{0};
  std::thread stopper([&] {
    while (started.load() != 2) std::this_thread::sleep_for(1ms);
    g.cancel();
  });
  g.run([&](std::size_t) { return wait_forever(&started, &cancelled); });
  stopper.join();
  EXPECT_EQ(cancelled.load(), 2);
}

eddy::task<void> cross_both_ways(eddy::loop_group* g, std::size_t i, std::vector<std::size_t>* seen) {
  const std::size_t other = 1 - i;
  (*seen)[i] = co_await eddy::spawn_on(g->handle(other), index_here());
  const std::thread::id there = co_await eddy::spawn_on(g->handle(other), where_am_i());
  EXPECT_NE(there, std::this_thread::get_id());
  const std::thread::id here = co_await eddy::spawn_on(g->handle(i), where_am_i());
  EXPECT_EQ(here, std::this_thread::get_id());
}

TEST_P(loop_group_test, spawn_on_runs_the_task_on_the_other_loop_in_both_directions) {
  eddy::loop_group g(opts(2));
  std::vector<std::size_t> seen(2, 99);
  g.run([&](std::size_t i) { return cross_both_ways(&g, i, &seen); });
  EXPECT_EQ(seen[0], 1u);
  EXPECT_EQ(seen[1], 0u);
}

eddy::task<std::uint64_t> hop(eddy::loop_group* g, std::uint64_t seed, int depth) {
  if (depth == 0) co_return seed;
  std::mt19937_64 rng(seed);
  const std::size_t to = rng() % g->size();
  const std::uint64_t got = co_await eddy::spawn_on(g->handle(to), hop(g, seed + 1, depth - 1));
  co_return got + 1;
}

eddy::task<void> random_spawns(eddy::loop_group* g, std::size_t i, std::size_t n, std::atomic<std::uint64_t>* sum) {
  std::vector<eddy::cross_join_handle<std::uint64_t>> hs;
  for (std::size_t k = 0; k < n; ++k) {
    std::mt19937_64 rng(i * 1000003 + k);
    hs.push_back(eddy::spawn_on(g->handle(rng() % g->size()), hop(g, k, 3)));
  }
  std::uint64_t s = 0;
  for (auto& h : hs) s += co_await h;
  sum->fetch_add(s);
}

TEST_P(loop_group_test, spawn_on_at_random_delivers_every_result) {
  const std::size_t n = env_count("EDDY_CROSS_SPAWNS", 300);
  eddy::loop_group g(opts(3));
  std::atomic<std::uint64_t> sum{0};
  g.run([&](std::size_t i) { return random_spawns(&g, i, n, &sum); });
  // hop(g, k, 3) returns (k + 3) + 3.
  std::uint64_t want = 0;
  for (std::size_t k = 0; k < n; ++k) want += k + 6;
  EXPECT_EQ(sum.load(), 3 * want);
}

eddy::task<int> throws_there() {
  co_await eddy::yield_now();
  throw std::runtime_error("from the other loop");
}

struct frame_witness {
  std::atomic<std::thread::id>* destroyed_on;
  ~frame_witness() { destroyed_on->store(std::this_thread::get_id()); }
};

eddy::task<void> sleeps_until_cancelled(std::atomic<std::thread::id>* ran_on, std::atomic<std::thread::id>* destroyed_on,
                                        std::atomic<bool>* saw_cancel) {
  frame_witness w{destroyed_on};
  ran_on->store(std::this_thread::get_id());
  try {
    co_await eddy::sleep_for(1h);
  } catch (const eddy::cancelled_error&) {
    saw_cancel->store(true);
    throw;
  }
}

eddy::task<void> await_cross(eddy::cross_join_handle<void> h) { co_await h; }

eddy::task<void> cancel_and_errors(eddy::loop_group* g, std::size_t i, std::atomic<std::thread::id>* ran_on,
                                   std::atomic<std::thread::id>* destroyed_on, std::atomic<bool>* saw_cancel,
                                   std::atomic<int>* checks) {
  if (i != 0) co_return;
  EXPECT_THROW(co_await eddy::spawn_on(g->handle(1), throws_there()), std::runtime_error);
  checks->fetch_add(1);
  // Cancelling the awaiting task cancels the remote one, which unwinds on its loop.
  eddy::join_handle<void> j =
      eddy::spawn(await_cross(eddy::spawn_on(g->handle(1), sleeps_until_cancelled(ran_on, destroyed_on, saw_cancel))));
  while (ran_on->load() == std::thread::id()) co_await eddy::sleep_for(1ms);
  j.cancel();
  EXPECT_THROW(co_await j, eddy::cancelled_error);
  checks->fetch_add(1);
  // cancel() on the handle does the same.
  auto h = eddy::spawn_on(g->handle(1), sleeps_until_cancelled(ran_on, destroyed_on, saw_cancel));
  h.cancel();
  EXPECT_THROW(co_await h, eddy::cancelled_error);
  checks->fetch_add(1);
}

TEST_P(loop_group_test, errors_and_cancellation_cross_loops_and_frames_die_on_their_loop) {
  eddy::loop_group g(opts(2));
  std::atomic<std::thread::id> ran_on{}, destroyed_on{};
  std::atomic<bool> saw_cancel{false};
  std::atomic<int> checks{0};
  std::thread::id loop1;
  g.run([&](std::size_t i) {
    if (i == 1) loop1 = std::this_thread::get_id();
    return cancel_and_errors(&g, i, &ran_on, &destroyed_on, &saw_cancel, &checks);
  });
  EXPECT_EQ(checks.load(), 3);
  EXPECT_TRUE(saw_cancel.load());
  EXPECT_EQ(ran_on.load(), loop1);
  EXPECT_EQ(destroyed_on.load(), loop1);
}

eddy::task<void> hold_until(eddy::event* ev) { co_await ev->wait(); }

eddy::task<int> never_done() {
  co_await eddy::sleep_for(1h);
  co_return 1;
}

eddy::task<void> await_then_record(eddy::loop_handle target, std::atomic<int>* closed_errors) {
  auto h = eddy::spawn_on(target, never_done());
  try {
    (void)co_await h;
  } catch (const eddy::loop_closed_error& e) {
    EXPECT_NE(std::string(e.what()).find("target loop closed"), std::string::npos) << e.what();
    closed_errors->fetch_add(1);
  }
}

TEST_P(loop_group_test, a_closing_loop_fails_pending_cross_loop_calls) {
  eddy::loop_options lo;
  lo.backend = GetParam();
  auto target = std::make_unique<eddy::loop>(lo);
  eddy::loop_handle th = target->handle();
  eddy::event release;
  std::thread t([&] {
    target->run(hold_until(&release));
    target->close();  // cancels the runner of never_done: its caller must hear of it
  });
  {
    eddy::loop home(lo);
    std::atomic<int> closed_errors{0};
    home.run([](eddy::loop_handle th, std::atomic<int>* errs, eddy::event* release) -> eddy::task<void> {
      auto a = eddy::spawn(await_then_record(th, errs));
      auto b = eddy::spawn(await_then_record(th, errs));
      co_await eddy::sleep_for(5ms);
      (void)th.call_soon_threadsafe([release] { release->set(); });
      co_await a;
      co_await b;
      // And a call to a loop that is already closed fails at once.
      co_await await_then_record(th, errs);
    }(th, &closed_errors, &release));
    EXPECT_EQ(closed_errors.load(), 3);
    home.close();
  }
  t.join();
  target.reset();
}

eddy::task<void> record_affinity(std::size_t i, std::vector<int>* cpu_count, std::vector<int>* cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0) {
    (*cpu_count)[i] = CPU_COUNT(&set);
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &set)) {
        (*cpu)[i] = c;
      }
    }
  }
  co_return;
}

TEST_P(loop_group_test, cpu_affinity_pins_each_loop_to_one_cpu_of_the_process) {
  cpu_set_t mine;
  CPU_ZERO(&mine);
  ASSERT_EQ(::sched_getaffinity(0, sizeof mine, &mine), 0);
  eddy::loop_group_options o = opts(2);
  o.cpu_affinity = true;
  eddy::loop_group g(o);
  std::vector<int> count(2, -1), cpu(2, -1);
  g.run([&](std::size_t i) { return record_affinity(i, &count, &cpu); });
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(count[i], 1) << "loop " << i;
    const bool in_set = cpu[i] >= 0 && CPU_ISSET(cpu[i], &mine);
    EXPECT_TRUE(in_set) << "loop " << i << " on CPU " << cpu[i];
  }
  if (CPU_COUNT(&mine) >= 2) {
    EXPECT_NE(cpu[0], cpu[1]);
  }
  // The caller's own affinity is untouched.
  cpu_set_t after;
  CPU_ZERO(&after);
  ASSERT_EQ(::sched_getaffinity(0, sizeof after, &after), 0);
  EXPECT_TRUE(CPU_EQUAL(&mine, &after));
}

void report(int fd, const std::string& what) { [[maybe_unused]] auto n = ::write(fd, what.data(), what.size()); }

eddy::task<void> sleepy_main(std::size_t i, int fd) {
  report(fd, "started" + std::to_string(i) + ";");
  try {
    co_await eddy::sleep_for(30s);
  } catch (const eddy::cancelled_error&) {
    report(fd, "cleanup" + std::to_string(i) + ";");
    throw;
  }
}

std::string read_until(int fd, const std::string& want) {
  std::string got;
  char buf[64];
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (got.find(want) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
  }
  return got;
}

// A real SIGINT to a real child process running a two-loop group.
TEST_P(loop_group_test, the_first_sigint_cancels_every_loops_main_and_the_process_dies_by_sigint) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  const eddy::backend_kind kind = GetParam();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(p[0]);
    eddy::loop_group_options o;
    o.loops = 2;
    o.loop.backend = kind;
    eddy::loop_group g(o);
    const int fd = p[1];
    g.run([fd](std::size_t i) { return sleepy_main(i, fd); });
    ::_exit(3);  // not reached: the group re-raises SIGINT
  }
  ::close(p[1]);
  std::string got = read_until(p[0], "started");
  while ((got.find("started0;") == std::string::npos || got.find("started1;") == std::string::npos) &&
         got.size() < 64) {
    const std::string more = read_until(p[0], ";");
    if (more.empty()) break;
    got += more;
  }
  ASSERT_NE(got.find("started0;"), std::string::npos) << got;
  ASSERT_NE(got.find("started1;"), std::string::npos) << got;
  std::this_thread::sleep_for(20ms);  // let both loops block
  ::kill(pid, SIGINT);
  std::string rest;
  for (;;) {
    const std::string more = read_until(p[0], ";");
    if (more.empty()) break;
    rest += more;
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  ::close(p[0]);
  EXPECT_NE(rest.find("cleanup0;"), std::string::npos) << rest;
  EXPECT_NE(rest.find("cleanup1;"), std::string::npos) << rest;
  ASSERT_TRUE(WIFSIGNALED(st)) << "status " << st;
  EXPECT_EQ(WTERMSIG(st), SIGINT);
}

namespace {

eddy::task<int> forty_two() { co_return 42; }

eddy::task<void> ignore_cancel_for(std::chrono::milliseconds d) {
  try {
    co_await eddy::sleep_for(d);
  } catch (const eddy::cancelled_error&) {
  }
}

}  // namespace

// A loop stopped after its main finished fails its run(); that failure must not
// count its main a second time, or the release reaches the other loops while a
// main still runs and one of them closes under it (loop_group.cpp counted twice).
TEST_P(loop_group_test, a_loop_stopped_after_its_main_finished_is_counted_once) {
  eddy::loop_group g(opts(3));
  std::atomic<bool> zero_done{false};
  std::atomic<int> later_call{-1};
  EXPECT_THROW(
      g.run([&](std::size_t i) -> eddy::task<void> {
        return [](std::size_t i, eddy::loop_group* g, std::atomic<bool>* zero_done,
                  std::atomic<int>* later_call) -> eddy::task<void> {
          if (i == 0) {
            zero_done->store(true);
            co_return;
          }
          if (i == 1) {
            co_await ignore_cancel_for(10s);  // ends at the group's cancel
            co_return;
          }
          while (!zero_done->load()) co_await eddy::sleep_for(1ms);
          co_await eddy::sleep_for(20ms);  // loop 0's supervisor has counted its main
          (void)g->handle(0).stop();
          co_await ignore_cancel_for(10s);  // the group's cancel ends it
          co_await eddy::sleep_for(50ms);   // time for loop 1 to close, were it released
          try {
            *later_call = co_await eddy::spawn_on(g->handle(1), forty_two());
          } catch (...) {
            *later_call = 0;
          }
        }(i, &g, &zero_done, &later_call);
      }),
      eddy::loop_group_error);
  EXPECT_EQ(later_call.load(), 42) << "loop 1 was released while loop 2's main still ran";
}

EDDY_BACKEND_TEST_SUITE(loop_group_test);

}  // namespace
