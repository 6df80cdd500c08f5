// Tail latencies for benchmarks that record per-iteration samples themselves
// (Google Benchmark's own statistics are means).
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace eddy_bench {

/// Sets the p50_us and p99_us counters from samples in nanoseconds (reorders them).
inline void report_percentiles(benchmark::State& state, std::vector<std::int64_t>& ns) {
  if (ns.empty()) return;
  auto at = [&](double q) {
    const auto k = static_cast<std::size_t>(q * static_cast<double>(ns.size() - 1));
    std::nth_element(ns.begin(), ns.begin() + static_cast<std::ptrdiff_t>(k), ns.end());
    return static_cast<double>(ns[k]) / 1000.0;
  };
  state.counters["p50_us"] = at(0.50);
  state.counters["p99_us"] = at(0.99);
}

}  // namespace eddy_bench
