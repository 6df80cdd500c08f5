// The functions cluster_demo submits and cluster_worker runs. Both programs link
// jobs.cpp, so both register the same functions with the same signatures (a worker
// built from different code refuses the calls it does not match).
#pragma once

#include <cstdint>
#include <string>

namespace cluster_sample {

/// CPU-bound: the total number of Collatz steps of every n in [first, first + count).
std::uint64_t collatz_steps(std::uint64_t first, std::uint32_t count);
/// The same computed here, to check a worker's answer.
std::uint64_t collatz_steps_local(std::uint64_t first, std::uint32_t count);
/// Echo (round-trip and throughput benchmarks).
std::string echo(std::string s);

}  // namespace cluster_sample
