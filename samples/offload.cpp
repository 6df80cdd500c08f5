// offload: a loop that keeps answering timers while blocking calls and CPU work run on
// the thread pools.
//
// A ticker coroutine wakes every 10 ms and records how late each tick was. Meanwhile
// the program makes four blocking calls at once (sleep 300 ms each, standing in for a
// slow disk or a legacy client library) with eddy::to_thread, resolves a host name with
// eddy::resolve, and counts primes below 3,000,000 with eddy::run_cpu (split over the
// cpu pool with eddy::parallel_for). None of it runs on the loop thread, so the ticks
// stay on time: the program prints the tick count and the worst lateness at the end.
//
// Run: ./offload            (exit status 0 if the ticker kept up)
#include <atomic>
#include <chrono>
#include <cstdio>
#include <eddy/runtime/loop.hpp>
#include <eddy/runtime/run.hpp>
#include <eddy/runtime/task.hpp>
#include <eddy/runtime/time.hpp>
#include <eddy/sched/dns.hpp>
#include <eddy/sched/fork_join.hpp>
#include <eddy/sched/offload.hpp>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

struct tick_report {
  int ticks = 0;
  clock_type::duration worst_late{};
};

// State lives in the parameters, not in lambda captures (STYLE.md, coroutine pitfalls).
eddy::task<void> ticker(tick_report& report, const bool& stop) {
  auto due = clock_type::now() + 10ms;
  while (!stop) {
    co_await eddy::sleep_until(due);
    const auto late = clock_type::now() - due;
    if (late > report.worst_late) report.worst_late = late;
    ++report.ticks;
    due += 10ms;
  }
}

// A stand-in for a call that blocks its thread.
int slow_call(int id) {
  std::this_thread::sleep_for(300ms);
  return id;
}

bool is_prime(long n) {
  if (n < 2) return false;
  for (long d = 2; d * d <= n; ++d)
    if (n % d == 0) return false;
  return true;
}

long count_primes_below(long limit) {
  std::atomic<long> count{0};
  eddy::parallel_for(0L, limit, 20'000, [&](long n) {
    if (is_prime(n)) count.fetch_add(1, std::memory_order_relaxed);
  });
  return count.load();
}

eddy::task<int> blocking_call(int id) {
  co_return co_await eddy::to_thread(slow_call, id);
}

eddy::task<int> async_main() {
  tick_report report;
  bool stop = false;
  auto ticks = eddy::spawn(ticker(report, stop));
  const auto start = clock_type::now();

  std::vector<eddy::join_handle<int>> calls;
  for (int i = 0; i < 4; ++i) calls.push_back(eddy::spawn(blocking_call(i)));

  auto addrs = co_await eddy::resolve("localhost", "80");
  std::printf("resolve(localhost): %zu address(es), first %s\n", addrs.size(),
              addrs.front().to_string().c_str());

  const long primes = co_await eddy::run_cpu(count_primes_below, 3'000'000L);
  std::printf("primes below 3,000,000: %ld (on %zu cpu workers)\n", primes,
              eddy::cpu_pool().max_threads());

  int done = 0;
  for (auto& c : calls) done += (co_await c >= 0) ? 1 : 0;
  std::printf("blocking calls finished: %d\n", done);

  stop = true;
  co_await ticks;
  const auto elapsed = std::chrono::duration<double, std::milli>(clock_type::now() - start);
  const auto worst = std::chrono::duration<double, std::milli>(report.worst_late);
  std::printf("ticker: %d ticks in %.0f ms, worst lateness %.2f ms\n", report.ticks,
              elapsed.count(), worst.count());
  // The loop kept up if it ticked for most of the elapsed time.
  const bool kept_up = report.ticks >= static_cast<int>(elapsed.count() / 10.0 * 0.8);
  std::printf("%s\n", kept_up ? "the loop kept answering timers" : "the loop fell behind");
  co_return kept_up ? 0 : 1;
}

}  // namespace

int main() {
  return eddy::run(async_main());
}
