// process_pool benchmarks (BENCHMARKS.md):
//
//   BM_process_roundtrip/64        co_await pool.call<echo>(64 bytes), 64 bytes back, one
//   BM_process_roundtrip/65536     in flight, 1 helper; p50/p99 in us from the recorded
//                                  per-call latencies
//   BM_process_cpu_throughput/1    16 CPU-bound calls (~2 ms each) in flight at once,
//   BM_process_cpu_throughput/2    on 1 helper and on 2; items_per_second is calls/s and
//                                  speedup_vs_1 = (t on 1 helper) / (t on 2), both
//                                  measured alternately in every iteration;
//                                  machine_scaling = the same work on 1 vs 2 plain
//                                  threads in this process, in the same iterations
//                                  (what a shared 2-core box allows at that moment)
//
// Helper mode: helpers re-execute this binary; bench/micro/main.cpp routes them with
// eddy::process_pool::helper_main_if_requested before Google Benchmark runs.
#include <benchmark/benchmark.h>

#include "percentiles.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <eddy/runtime/loop.hpp>
#include <eddy/runtime/task.hpp>
#include <eddy/sched/process_pool.hpp>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using std::chrono::steady_clock;

std::vector<char> echo_payload(std::vector<char> v) {
  return v;
}

// About 2 ms of integer work on this machine; the result depends on every step so it
// cannot be folded away.
std::uint64_t spin_work(std::uint64_t rounds) {
  std::uint64_t x = 88172645463325252ull;
  for (std::uint64_t i = 0; i < rounds; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
  }
  return x;
}

}  // namespace

EDDY_REMOTE(echo_payload);
EDDY_REMOTE(spin_work);

namespace {


// Reference parameters are safe: loop::run returns only when the task has finished.
eddy::task<void> roundtrip_loop(benchmark::State& state, std::vector<std::int64_t>& ns,
                                std::size_t size) {
  eddy::process_pool pool({.helpers = 1});
  const std::vector<char> payload(size, 'x');
  for (int i = 0; i < 200; ++i) co_await pool.call<echo_payload>(payload);  // warm up
  for (auto _ : state) {
    const auto t0 = steady_clock::now();
    std::vector<char> back = co_await pool.call<echo_payload>(payload);
    ns.push_back((steady_clock::now() - t0).count());
    benchmark::DoNotOptimize(back.data());
  }
  co_await pool.shutdown();
}

void BM_process_roundtrip(benchmark::State& state) {
  std::vector<std::int64_t> ns;
  ns.reserve(1 << 20);
  eddy::loop l;
  l.run(roundtrip_loop(state, ns, static_cast<std::size_t>(state.range(0))));
  l.close();
  eddy_bench::report_percentiles(state, ns);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0) * 2);
}
BENCHMARK(BM_process_roundtrip)->Arg(64)->Arg(65536)->UseRealTime()->MinTime(2.0);

constexpr int calls_per_batch = 16;
constexpr std::uint64_t rounds_per_call = 1'500'000;

eddy::task<std::uint64_t> one_work_call(eddy::process_pool* pool) {
  co_return co_await pool->call<spin_work>(rounds_per_call);
}

eddy::task<double> batch(eddy::process_pool* pool) {
  const auto t0 = steady_clock::now();
  std::vector<eddy::join_handle<std::uint64_t>> calls;
  for (int i = 0; i < calls_per_batch; ++i) calls.push_back(eddy::spawn(one_work_call(pool)));
  for (auto& c : calls) benchmark::DoNotOptimize(co_await c);
  co_return std::chrono::duration<double>(steady_clock::now() - t0).count();
}

// The batch's work on `threads` plain threads, no helpers: the machine's own scaling.
double plain_batch(int threads) {
  const auto t0 = steady_clock::now();
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([threads] {
      for (int i = 0; i < calls_per_batch / threads; ++i)
        benchmark::DoNotOptimize(spin_work(rounds_per_call));
    });
  for (auto& t : ts) t.join();
  return std::chrono::duration<double>(steady_clock::now() - t0).count();
}

eddy::task<void> throughput_loop(benchmark::State& state, double& seconds_one, double& seconds_two,
                                 double& plain_one, double& plain_two) {
  const bool two = state.range(0) == 2;
  eddy::process_pool one({.helpers = 1});
  eddy::process_pool pair({.helpers = 2});
  co_await batch(&one);  // warm up both
  co_await batch(&pair);
  for (auto _ : state) {
    // A and B alternate in every iteration (BENCHMARKS.md); only "ours" is timed.
    state.PauseTiming();
    const double other = co_await batch(two ? &one : &pair);
    state.ResumeTiming();
    const double mine = co_await batch(two ? &pair : &one);
    (two ? seconds_one : seconds_two) += other;
    (two ? seconds_two : seconds_one) += mine;
    state.PauseTiming();
    plain_one += plain_batch(1);
    plain_two += plain_batch(2);
    state.ResumeTiming();
  }
  co_await one.shutdown();
  co_await pair.shutdown();
}

void BM_process_cpu_throughput(benchmark::State& state) {
  double seconds_one = 0, seconds_two = 0, plain_one = 0, plain_two = 0;
  eddy::loop l;
  l.run(throughput_loop(state, seconds_one, seconds_two, plain_one, plain_two));
  l.close();
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * calls_per_batch);
  state.SetLabel(std::to_string(state.range(0)) + " helper(s)");
  if (seconds_two > 0) state.counters["speedup_vs_1"] = seconds_one / seconds_two;
  if (plain_two > 0) state.counters["machine_scaling"] = plain_one / plain_two;
}
BENCHMARK(BM_process_cpu_throughput)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
