// The stall detector: one report per stall, with a backtrace of the loop thread
// that names the function holding it; off means no thread at all. Linked with
// -rdynamic so backtrace_symbols can name this file's functions.
#include <dirent.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sched/pool_test_support.hpp"
#include "support/loop_fixture.hpp"

using namespace std::chrono_literals;

// Not static and not inlined: the backtrace must show it by name.
[[gnu::noinline]] void stall_test_busy_spin(std::chrono::milliseconds d) {
  const auto until = eddy::clock::now() + d;
  while (eddy::clock::now() < until) {
    asm volatile("" ::: "memory");
  }
}

namespace {

struct collected {
  std::mutex mu;
  std::vector<eddy::stall_report> reports;
};

class stall : public eddy_test::loop_test {
 protected:
  void arm(std::chrono::milliseconds threshold) {
    lp().close();
    opts_.stall_threshold = threshold;
    opts_.on_stall = [c = got_](const eddy::stall_report& r) {
      std::lock_guard lk(c->mu);
      c->reports.push_back(r);
    };
    make_loop();
  }
  std::shared_ptr<collected> got_ = std::make_shared<collected>();
};

TEST_P(stall, a_50ms_busy_callback_gives_exactly_one_report_naming_it) {
  arm(10ms);
  run([]() -> eddy::task<void> {
    co_await eddy::sleep_for(20ms);  // the watchdog thread is up and sampling (not a stall)
    stall_test_busy_spin(50ms);
    co_await eddy::sleep_for(30ms);  // the watchdog sees the loop move on
  }());
  std::lock_guard lk(got_->mu);
  int naming = 0;
  for (const auto& r : got_->reports) {
    bool names = false;
    for (const auto& f : r.backtrace) names |= f.find("stall_test_busy_spin") != std::string::npos;
    if (names) {
      ++naming;
      EXPECT_EQ(r.loop_id, lp().id());
      EXPECT_GE(r.stalled, 10ms);
      EXPECT_EQ(r.threshold, 10ms);
      EXPECT_NE(r.text().find("stalled for"), std::string::npos);
    }
  }
#if defined(__SANITIZE_THREAD__)
  // TSan defers a signal to a thread until that thread calls an intercepted
  // function, which a busy loop never does: the stack is taken after the stall,
  // too late to be kept. The report itself must still come, exactly once.
  EXPECT_EQ(got_->reports.size(), 1u);
  (void)naming;
#else
  EXPECT_EQ(naming, 1) << (got_->reports.empty() ? std::string("no report") : got_->reports[0].text());
#endif
  EXPECT_GE(lp().metrics().stalls, 1u);
}

TEST_P(stall, a_loop_blocked_in_the_kernel_is_not_stalled) {
  arm(10ms);
  run([]() -> eddy::task<void> { co_await eddy::sleep_for(80ms); }());
  std::lock_guard lk(got_->mu);
  EXPECT_TRUE(got_->reports.empty()) << got_->reports[0].text();
}

TEST_P(stall, off_starts_no_thread_and_armed_stops_its_thread_on_close) {
  const std::size_t base = eddy_test::thread_count();
  {
    eddy::loop_options o;
    o.backend = GetParam();
    o.stall_threshold = 0ms;
    eddy::loop off(o);
    EXPECT_EQ(eddy_test::thread_count(), base);
    off.close();
  }
  {
    eddy::loop_options o;
    o.backend = GetParam();
    o.stall_threshold = 25ms;
    eddy::loop on(o);
    EXPECT_EQ(eddy_test::thread_count(), base + 1);
    on.close();
    EXPECT_TRUE(eddy_test::threads_return_to(base));
  }
}

std::vector<std::string> task_ids() {
  std::vector<std::string> ids;
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ids.emplace_back(e->d_name);
    ::closedir(d);
  }
  return ids;
}

// Regression: the watchdog took process-directed signals a program had blocked
// elsewhere to read them from a signalfd (SIGTERM killed echo_server).
TEST_P(stall, the_watchdog_thread_blocks_every_signal) {
  const std::vector<std::string> before = task_ids();
  arm(25ms);
  int checked = 0;
  for (const std::string& id : task_ids()) {
    if (std::find(before.begin(), before.end(), id) != before.end()) continue;
    FILE* f = std::fopen(("/proc/self/task/" + id + "/status").c_str(), "r");
    ASSERT_NE(f, nullptr);
    char line[256];
    while (std::fgets(line, sizeof line, f) != nullptr) {
      unsigned long long blk = 0;
      if (std::sscanf(line, "SigBlk: %llx", &blk) == 1) {
        EXPECT_NE(blk & (1ull << (SIGTERM - 1)), 0u) << line;
        EXPECT_NE(blk & (1ull << (SIGINT - 1)), 0u) << line;
        ++checked;
      }
    }
    std::fclose(f);
  }
  EXPECT_EQ(checked, 1);
}

TEST_P(stall, a_bad_threshold_is_refused) {
  eddy::loop_options o;
  o.backend = GetParam();
  o.stall_threshold = 60001ms;
  EXPECT_THROW(eddy::loop{o}, std::invalid_argument);
  o.stall_threshold = -2ms;
  EXPECT_THROW(eddy::loop{o}, std::invalid_argument);
}

TEST_P(stall, group_metrics_and_dumps_are_taken_on_each_loop) {
  eddy::loop_group_options go;
  go.loops = 2;
  go.loop.backend = GetParam();
  eddy::loop_group g(go);
  eddy::loop_metrics sum{};
  std::string dump;
  g.run([&](std::size_t i) -> eddy::task<void> {
    return [](std::size_t idx, eddy::loop_group* grp, eddy::loop_metrics* out, std::string* text) -> eddy::task<void> {
      auto busy = eddy::spawn([]() -> eddy::task<void> { co_await eddy::sleep_for(100ms); }());
      if (idx == 0) {
        *out = co_await eddy::group_metrics(*grp);
        *text = co_await eddy::group_dump_tasks(*grp);
      }
      co_await busy;
    }(i, &g, &sum, &dump);
  });
  EXPECT_EQ(sum.loops, 2u);
  EXPECT_GE(sum.tasks_spawned, 4u);
  EXPECT_NE(dump.find("eddy: loop "), std::string::npos) << dump;
  EXPECT_NE(dump.find("stall_test.cpp"), std::string::npos) << dump;
}

EDDY_BACKEND_TEST_SUITE(stall);

}  // namespace
