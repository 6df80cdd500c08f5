// offload: a loop that keeps answering timers while blocking calls and CPU work run on
// the thread pools and helper processes.
//
// A ticker coroutine wakes every 10 ms and records how late each tick was. Meanwhile
// the program makes four blocking calls at once (sleep 300 ms each, standing in for a
// slow disk or a legacy client library) with eddy::to_thread, resolves a host name with
// eddy::resolve, and counts primes below 3,000,000 with eddy::run_cpu (split over the
// cpu pool with eddy::parallel_for). None of it runs on the loop thread, so the ticks
// stay on time: the program prints the tick count and the worst lateness at the end.
//
// Then the process pool: fib(32) runs in a helper process (its own address space),
// one call deliberately crashes its helper (SIGSEGV), the caller gets
// eddy::worker_crashed, the pool starts a replacement, and the next call succeeds,
// all while the ticker keeps ticking.
//
// Run: ./offload            (exit status 0 if the ticker kept up and the pool recovered)
#include <algorithm>
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
#include <eddy/sched/process_pool.hpp>
#include <csignal>
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

// Functions the helper processes may run (registered by name at start-up).
long fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
int crash(int) {
  std::raise(SIGSEGV);  // code that may crash is why it runs in another process
  return 0;
}
EDDY_REMOTE(fib);
EDDY_REMOTE(crash);

// Returns true if the pool survived a helper crash and kept answering.
eddy::task<bool> process_pool_tour() {
  eddy::process_pool_options opts;
  opts.helpers = 2;
  eddy::process_pool pool(opts);
  const long f = co_await pool.call<fib>(32);
  std::printf("fib(32) in a helper process: %ld\n", f);
  const auto before = pool.helper_pids();
  bool crashed = false;
  try {
    (void)co_await pool.call<crash>(0);
  } catch (const eddy::worker_crashed& e) {
    crashed = true;
    std::printf("a helper crashed and the caller was told: %s\n", e.what());
  }
  const long again = co_await pool.call<fib>(25);
  const auto after = pool.helper_pids();
  std::size_t fresh = 0;
  for (pid_t p : after) fresh += std::find(before.begin(), before.end(), p) == before.end();
  std::printf("after the crash: fib(25) = %ld; %zu of %zu helpers are new processes\n", again, fresh,
              after.size());
  co_await pool.shutdown();
  co_return crashed && again == 75025;
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

  const bool pool_recovered = co_await process_pool_tour();

  stop = true;
  co_await ticks;
  const auto elapsed = std::chrono::duration<double, std::milli>(clock_type::now() - start);
  const auto worst = std::chrono::duration<double, std::milli>(report.worst_late);
  std::printf("ticker: %d ticks in %.0f ms, worst lateness %.2f ms\n", report.ticks,
              elapsed.count(), worst.count());
  // The loop kept up if it ticked for most of the elapsed time.
  const bool kept_up = report.ticks >= static_cast<int>(elapsed.count() / 10.0 * 0.8);
  std::printf("%s\n", kept_up ? "the loop kept answering timers" : "the loop fell behind");
  co_return kept_up && pool_recovered ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  eddy::process_pool::helper_main_if_requested(argc, argv);  // a helper never returns from here
  return eddy::run(async_main());
}
