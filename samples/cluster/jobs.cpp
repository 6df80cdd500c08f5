#include "jobs.hpp"

#include <eddy/sched/remote.hpp>

namespace cluster_sample {

std::uint64_t collatz_steps_local(std::uint64_t first, std::uint32_t count) {
  std::uint64_t total = 0;
  for (std::uint64_t n = first; n < first + count; ++n)
    for (std::uint64_t x = n; x > 1; ++total) x = (x & 1) ? 3 * x + 1 : x / 2;
  return total;
}

std::uint64_t collatz_steps(std::uint64_t first, std::uint32_t count) {
  return collatz_steps_local(first, count);
}

std::string echo(std::string s) { return s; }

}  // namespace cluster_sample

EDDY_REMOTE_NAMED(cluster_sample::collatz_steps, "sample.collatz_steps");
EDDY_REMOTE_NAMED(cluster_sample::echo, "sample.echo");
