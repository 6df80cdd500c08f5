// The runtime's micro-benchmarks (BENCHMARKS.md, the micro-suite). Per-op times
// are what Google Benchmark reports; where tails matter, p50/p99 come from the
// samples each benchmark records itself (Google Benchmark's own statistics are
// means).
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string_view>
#include <random>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>

#include <eddy/eddy.hpp>

#include "percentiles.hpp"

namespace {

using namespace std::chrono_literals;

eddy::task<void> empty_task() { co_return; }

// bench/operability.py measures what metrics and the stall detector cost:
// EDDY_BENCH_METRICS=off turns busy/idle timing off; EDDY_STALL_MS arms the stall
// detector (read by the loop itself).
eddy::loop_options bench_loop_options() {
  eddy::loop_options o;
  if (const char* m = std::getenv("EDDY_BENCH_METRICS"); m != nullptr && std::string_view(m) == "off")
    o.metrics = false;
  return o;
}

eddy::task<void> spawn_join_body(benchmark::State* state) {
  for (auto _ : *state) {
    auto h = eddy::spawn(empty_task());
    co_await h;
  }
}

// spawn an empty task and await its join handle.
void BM_spawn_join(benchmark::State& state) {
  eddy::loop l(bench_loop_options());
  l.run(spawn_join_body(&state));
  l.close();
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(std::string(l.backend_name()));
}
BENCHMARK(BM_spawn_join);

// schedule a callback and run it; the loop turns once per 256 callbacks, as a
// busy loop would.
void BM_call_soon(benchmark::State& state) {
  eddy::loop l(bench_loop_options());
  std::uint64_t ran = 0;
  int pending = 0;
  for (auto _ : state) {
    l.call_soon([&ran] { ++ran; });
    if (++pending == 256) {
      l.run_once();
      pending = 0;
    }
  }
  l.run_once();
  benchmark::DoNotOptimize(ran);
  l.close();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_call_soon);

// arm and cancel a timer with state.range(0) others live. `call_at` takes an
// absolute deadline (no clock read); the relative variant below adds one.
void BM_timer_arm_cancel(benchmark::State& state) {
  eddy::loop l;
  std::mt19937_64 rng(42);
  const auto base = eddy::clock::now();
  std::vector<eddy::timer_handle> live;
  live.reserve(static_cast<std::size_t>(state.range(0)));
  for (std::int64_t i = 0; i < state.range(0); ++i) {
    live.push_back(l.call_at(base + std::chrono::milliseconds(1000 + rng() % 3'600'000), [] {}));
  }
  std::vector<eddy::clock::time_point> when(1024);
  for (auto& w : when) w = base + std::chrono::milliseconds(1 + rng() % 100'000);
  std::size_t i = 0;
  for (auto _ : state) {
    eddy::timer_handle h = l.call_at(when[i++ & 1023], [] {});
    h.cancel();
  }
  state.counters["live_timers"] = static_cast<double>(l.stats().armed_timers);
  for (auto& h : live) h.cancel();
  live.clear();
  l.close();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_timer_arm_cancel)->Arg(0)->Arg(1'000'000);

void BM_timer_arm_cancel_relative(benchmark::State& state) {
  eddy::loop l;
  std::mt19937_64 rng(42);
  std::vector<eddy::timer_handle> live;
  for (std::int64_t i = 0; i < state.range(0); ++i) {
    live.push_back(l.call_later(std::chrono::milliseconds(1000 + rng() % 3'600'000), [] {}));
  }
  for (auto _ : state) {
    eddy::timer_handle h = l.call_later(10ms, [] {});
    h.cancel();
  }
  for (auto& h : live) h.cancel();
  live.clear();
  l.close();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_timer_arm_cancel_relative)->Arg(1'000'000);

void pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof set, &set);
}

// Another thread posts to a sleeping loop; the time until the callback runs.
void BM_cross_thread_wake(benchmark::State& state) {
  std::atomic<eddy::loop_handle*> handle{nullptr};
  std::atomic<std::int64_t> ran_at{0};
  eddy::loop_handle h;
  // Cross-core on purpose: the loop on CPU 0, the poster on CPU 1 (when the
  // machine has two), so the figure includes the wakeup's inter-processor cost.
  const bool pin = std::thread::hardware_concurrency() >= 2;
  cpu_set_t saved;
  sched_getaffinity(0, sizeof saved, &saved);
  std::thread loop_thread([&] {
    if (pin) pin_to_cpu(0);
    eddy::loop_options o;
    o.idle_spin = std::chrono::microseconds(state.range(0));
    eddy::loop l(o);
    h = l.handle();
    handle.store(&h, std::memory_order_release);
    l.run_forever();
    l.close();
  });
  while (handle.load(std::memory_order_acquire) == nullptr) std::this_thread::yield();
  if (pin) pin_to_cpu(1);
  std::vector<std::int64_t> samples;
  samples.reserve(100'000);
  for (auto _ : state) {
    state.PauseTiming();
    std::this_thread::sleep_for(100us);  // let the loop fall asleep
    ran_at.store(0, std::memory_order_relaxed);
    state.ResumeTiming();
    const auto t0 = eddy::clock::now();
    (void)h.call_soon_threadsafe([&ran_at] {
      ran_at.store(eddy::clock::now().time_since_epoch().count(), std::memory_order_release);
    });
    std::int64_t t1;
    while ((t1 = ran_at.load(std::memory_order_acquire)) == 0) {
    }
    samples.push_back(t1 - t0.time_since_epoch().count());
  }
  (void)h.stop();
  loop_thread.join();
  sched_setaffinity(0, sizeof saved, &saved);
  eddy_bench::report_percentiles(state, samples);
}
// Arg: the loop's idle_spin in µs (0 = the default: block at once).
BENCHMARK(BM_cross_thread_wake)->Arg(0)->Arg(200)->Iterations(5000)->UseRealTime();

}  // namespace
