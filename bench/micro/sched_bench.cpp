// sched/ benchmarks (BENCHMARKS.md): offload round trip, pool throughput, fork-join
// speedup, and the CPU an idle pool burns.
//
//   BM_offload_roundtrip/0/0       co_await to_thread(noop), one in flight; p50/p99 in us
//   BM_offload_roundtrip/1/0       co_await run_cpu(noop), one in flight
//   BM_offload_roundtrip/x/1       the same, always suspending (the result comes back
//                                  through call_soon_threadsafe and a loop wakeup)
//   BM_pool_throughput/outside     10,000 posts from a non-worker thread, then wait
//   BM_pool_throughput/inside      10,000 posts from inside a worker, then wait
//   BM_fork_join                   fib(36) by join(), on 1 worker and on one per CPU,
//                                  alternated in every iteration; speedup = t1 / tN;
//                                  machine_scaling = the same for two plain threads
//   BM_idle_pool_cpu               both default pools idle for 10 s; CPU % of one core
//                                  from /proc/self/stat (utime + stime)
#include <benchmark/benchmark.h>

#include "percentiles.hpp"
#include <dirent.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <eddy/runtime/loop.hpp>
#include <eddy/runtime/task.hpp>
#include <eddy/sched/fork_join.hpp>
#include <eddy/sched/offload.hpp>
#include <eddy/sched/thread_pool.hpp>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using std::chrono::steady_clock;

// Coroutine parameters by reference are safe here: loop::run returns only when the task
// has finished.
eddy::task<void> offload_loop(benchmark::State& state, std::vector<std::int64_t>& ns, bool cpu,
                              bool always_suspend) {
  for (auto _ : state) {
    // Forces the slow path (suspend, result posted back through call_soon_threadsafe)
    // by making the loop believe recent round trips were long.
    if (always_suspend) eddy::detail::round_trip_average_ns = 1'000'000'000;
    const auto t0 = steady_clock::now();
    if (cpu)
      co_await eddy::run_cpu([] {});
    else
      co_await eddy::to_thread([] {});
    ns.push_back((steady_clock::now() - t0).count());
  }
}

// Args: {pool: 0 blocking / 1 cpu, path: 0 adaptive / 1 always suspend}.
void BM_offload_roundtrip(benchmark::State& state) {
  const bool cpu = state.range(0) == 1;
  const bool always_suspend = state.range(1) == 1;
  state.SetLabel(std::string(cpu ? "cpu" : "blocking") +
                 (always_suspend ? ",always-suspend" : ",adaptive"));
  std::vector<std::int64_t> ns;
  ns.reserve(1 << 20);
  eddy::loop l;
  l.run(offload_loop(state, ns, cpu, always_suspend));
  l.close();
  eddy::detail::round_trip_average_ns = 0;
  eddy_bench::report_percentiles(state, ns);
  const eddy::pool_stats s = (cpu ? eddy::cpu_pool() : eddy::blocking_pool()).stats();
  state.counters["pool_threads"] = static_cast<double>(s.threads);
  state.counters["parked"] = static_cast<double>(s.parked);
}
BENCHMARK(BM_offload_roundtrip)
    ->Args({0, 0})
    ->Args({1, 0})
    ->Args({0, 1})
    ->Args({1, 1})
    ->UseRealTime();

std::size_t usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  sched_getaffinity(0, sizeof set, &set);
  return static_cast<std::size_t>(std::max(1, CPU_COUNT(&set)));
}

void wait_for(const std::atomic<std::uint64_t>& done, std::uint64_t target) {
  while (done.load(std::memory_order_acquire) < target) std::this_thread::yield();
}

void BM_pool_throughput(benchmark::State& state) {
  const bool inside = state.range(0) == 1;
  state.SetLabel(inside ? "inside" : "outside");
  constexpr std::uint64_t batch = 10'000;
  eddy::thread_pool pool(eddy::pool_options::fixed(usable_cpus(), "bench"));
  std::atomic<std::uint64_t> done{0};
  std::uint64_t target = 0;
  for (auto _ : state) {
    target += batch;
    if (inside) {
      pool.post([&] {
        for (std::uint64_t i = 0; i < batch; ++i)
          pool.post([&] { done.fetch_add(1, std::memory_order_release); });
      });
    } else {
      for (std::uint64_t i = 0; i < batch; ++i)
        pool.post([&] { done.fetch_add(1, std::memory_order_release); });
    }
    wait_for(done, target);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(target));
}
BENCHMARK(BM_pool_throughput)->Arg(0)->Arg(1)->UseRealTime();

long fib_serial(long n) {
  return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2);
}

long fib(eddy::thread_pool& pool, long n) {
  if (n < 22) return fib_serial(n);
  auto [a, b] = eddy::join(
      pool, [&] { return fib(pool, n - 1); }, [&] { return fib(pool, n - 2); });
  return a + b;
}

void BM_fork_join(benchmark::State& state) {
  // fib(36) with a serial cutoff at 22: about 2,000 forks of ~15 us each and ~30 ms of
  // work, enough that waking the second worker does not dominate.
  const long fib_n = 36;
  const std::size_t n = usable_cpus();
  eddy::thread_pool one(eddy::pool_options::fixed(1, "fj1"));
  eddy::thread_pool all(eddy::pool_options::fixed(n, "fjn"));
  // The reference, alternated with the pools in every iteration: the same two halves
  // of the work on plain threads, so `machine_scaling` says how much parallelism the
  // (shared, noisy) machine offered at that moment.
  double t1 = 0, tn = 0, ref1 = 0, ref2 = 0;
  for (auto _ : state) {
    auto s = steady_clock::now();
    benchmark::DoNotOptimize(fib(one, fib_n));
    t1 += std::chrono::duration<double>(steady_clock::now() - s).count();
    s = steady_clock::now();
    benchmark::DoNotOptimize(fib(all, fib_n));
    tn += std::chrono::duration<double>(steady_clock::now() - s).count();
    s = steady_clock::now();
    benchmark::DoNotOptimize(fib_serial(fib_n - 1) + fib_serial(fib_n - 1));
    ref1 += std::chrono::duration<double>(steady_clock::now() - s).count();
    s = steady_clock::now();
    long other = 0;
    std::thread helper([&] { other = fib_serial(fib_n - 1); });
    benchmark::DoNotOptimize(fib_serial(fib_n - 1));
    helper.join();
    benchmark::DoNotOptimize(other);
    ref2 += std::chrono::duration<double>(steady_clock::now() - s).count();
  }
  state.counters["machine_scaling"] = ref2 > 0 ? ref1 / ref2 : 0;
  state.counters["threads"] = static_cast<double>(n);
  state.counters["t1_ms"] = 1000.0 * t1 / static_cast<double>(state.iterations());
  state.counters["tN_ms"] = 1000.0 * tn / static_cast<double>(state.iterations());
  state.counters["speedup"] = tn > 0 ? t1 / tn : 0;
  state.counters["stolen_per_iter"] =
      static_cast<double>(all.stats().stolen) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_fork_join)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(3.0);

// utime + stime of this process, in clock ticks (fields 14 and 15 of /proc/self/stat).
double process_cpu_seconds() {
  std::ifstream f("/proc/self/stat");
  std::string line;
  std::getline(f, line);
  // The command name (field 2) may hold spaces; fields after the last ')' are plain.
  std::istringstream rest(line.substr(line.rfind(')') + 2));
  std::string field;
  unsigned long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoul(field);
    if (i == 15) stime = std::stoul(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Nanoseconds on CPU per thread of this process (/proc/self/task/*/schedstat, field 1):
// finer than the 10 ms ticks of /proc/self/stat.
std::map<std::string, double> threads_cpu_seconds() {
  std::map<std::string, double> out;
  if (DIR* d = opendir("/proc/self/task")) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      std::ifstream f(std::string("/proc/self/task/") + e->d_name + "/schedstat");
      unsigned long long ns = 0;
      if (f >> ns) out[e->d_name] = static_cast<double>(ns) / 1e9;
    }
    closedir(d);
  }
  return out;
}

// CPU used between two snapshots by the threads present in both (a thread that exits
// in between, such as a retiring blocking worker, is left out; /proc/self/stat keeps it).
double cpu_between(const std::map<std::string, double>& a, const std::map<std::string, double>& b) {
  double total = 0;
  for (const auto& [tid, after] : b)
    if (auto it = a.find(tid); it != a.end()) total += after - it->second;
  return total;
}

void BM_idle_pool_cpu(benchmark::State& state) {
  // Wake both default pools and let the blocking pool grow, then leave them idle.
  for (int i = 0; i < 100; ++i) {
    eddy::cpu_pool().submit([] {}).get();
    eddy::blocking_pool().submit([] {}).get();
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // past the spin window
  double cpu = 0, fine = 0;
  for (auto _ : state) {
    const double before = process_cpu_seconds();
    const auto fine_before = threads_cpu_seconds();
    std::this_thread::sleep_for(std::chrono::seconds(10));
    cpu = process_cpu_seconds() - before;
    fine = cpu_between(fine_before, threads_cpu_seconds());
  }
  state.counters["cpu_percent"] = 100.0 * cpu / 10.0;
  state.counters["cpu_percent_schedstat"] = 100.0 * fine / 10.0;
  state.counters["pool_threads"] =
      static_cast<double>(eddy::cpu_pool().stats().threads + eddy::blocking_pool().stats().threads);
}
BENCHMARK(BM_idle_pool_cpu)->Iterations(1)->UseRealTime()->Unit(benchmark::kSecond);

}  // namespace
