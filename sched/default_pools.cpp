// The process-wide pools: cpu_pool(), blocking_pool(), slow_work_class().
//
// They are created on first use and deliberately never destroyed. A static destructor
// would have to wait for running jobs (a blocking call can take minutes) or pull the
// pool out from under them; tokio and folly's global executors make the same choice.
// Idle workers sleep on a futex, so leaving them at exit costs nothing, and the pointers
// stay reachable (no leak report from LeakSanitizer).
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <eddy/sched/thread_pool.hpp>
#include <thread>

namespace eddy {
namespace {

std::size_t usable_cpus() {
  // The affinity mask, not hardware_concurrency(): under taskset or a container's
  // cpuset only these CPUs run our threads.
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return static_cast<std::size_t>(n);
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace

thread_pool& cpu_pool() {
  static thread_pool* pool =
      new thread_pool(pool_options::fixed(std::min(usable_cpus(), max_pool_threads), "eddy-cpu"));
  return *pool;
}

thread_pool& blocking_pool() {
  static thread_pool* pool = [] {
    pool_options o = pool_options::elastic_up_to(512, std::chrono::seconds(10), "eddy-blk");
    // A blocking call that returns quickly is often followed by another (a loop offloading
    // file reads); spinning a little longer than the cpu pool avoids a futex wake for it.
    o.spin_before_park = std::chrono::microseconds(100);
    return new thread_pool(o);
  }();
  return *pool;
}

// The two classes split the blocking pool so that neither kind of work can starve the
// other: slow lookups get at most 16 threads, and ordinary blocking calls at most all
// but those 16, which stay free for lookups whatever the flood.
constexpr std::size_t slow_cap = 16;

work_class& slow_work_class() {
  static work_class* cls = new work_class(blocking_pool(), "slow", slow_cap);
  return *cls;
}

work_class& blocking_work_class() {
  static work_class* cls =
      new work_class(blocking_pool(), "blocking", blocking_pool().max_threads() - slow_cap);
  return *cls;
}

}  // namespace eddy
