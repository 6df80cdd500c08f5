// The private half of eddy::thread_pool: workers, queues and the parking protocol.
// thread_pool.cpp holds construction, submission and shutdown; thread_pool_worker.cpp the
// worker loop, searching and parking; fork_join.cpp the helping wait.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <eddy/sched/thread_pool.hpp>
#include <memory>
#include <mutex>
#include <stop_token>
#include <thread>
#include <vector>

#include "sched/chase_lev_deque.hpp"
#include "sched/injection_queue.hpp"

namespace eddy::detail {

// One worker's job durations (pool_stats::queue_wait, run_time). Written only by the
// worker that owns it, with relaxed load+store (no locked instruction); stats() reads
// and sums every worker's.
struct job_timing {
  std::atomic<std::uint64_t> count{0}, sum_ns{0}, max_ns{0};
  std::atomic<std::uint64_t> hist[latency_histogram::buckets] = {};

  void add(std::uint64_t ns) noexcept {
    bump(count, 1);
    bump(sum_ns, ns);
    if (ns > max_ns.load(std::memory_order_relaxed)) max_ns.store(ns, std::memory_order_relaxed);
    bump(hist[latency_histogram::bucket_of(ns)], 1);
  }
  void read_into(latency_histogram& h) const noexcept {
    latency_histogram mine;
    mine.count = count.load(std::memory_order_relaxed);
    mine.sum_ns = sum_ns.load(std::memory_order_relaxed);
    mine.max_ns = max_ns.load(std::memory_order_relaxed);
    for (std::size_t i = 0; i < latency_histogram::buckets; ++i)
      mine.hist[i] = hist[i].load(std::memory_order_relaxed);
    h += mine;
  }

 private:
  static void bump(std::atomic<std::uint64_t>& c, std::uint64_t by) noexcept {
    c.store(c.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
  }
};

inline std::int64_t steady_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// One per worker slot. The atomics an owner writes and others only read (counters) use
// relaxed load+store instead of fetch_add: no locked instruction on the hot path.
struct alignas(64) worker {
  explicit worker(std::uint32_t i) : index(i), rng(0x9e3779b97f4a7c15ull * (i + 1)) {}

  // exited: no thread uses the slot (its last thread may still need joining);
  // claimed: spawn_worker is starting a thread on it; live: a worker thread runs on it.
  enum class slot : std::uint32_t { live, claimed, exited };

  sched_detail::chase_lev_deque<pool_job> deque;
  // Futex word. pool_wake_bit: "wake_one()/wake_all() took you off the idle list and
  // did your accounting"; job_latch::wake_bit: "the forked job you wait for is done".
  static constexpr std::uint32_t pool_wake_bit = 1;
  alignas(64) std::atomic<std::uint32_t> wake{0};
  alignas(64) std::atomic<std::uint64_t> executed{0};
  std::atomic<std::uint64_t> stolen{0};
  std::atomic<std::uint32_t> running{0};
  job_timing queue_wait, run_time;  // timed jobs only (pool_options::metrics)
  std::atomic<slot> state{slot::exited};  // set live by spawn_worker
  std::thread thread;
  const std::uint32_t index;
  std::uint64_t rng;       // owner only: victim choice (xorshift)
  std::uint32_t tick = 0;  // owner only: jobs since the last injection-queue-first check

  void bump(std::atomic<std::uint64_t>& c) {
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
};

class pool_core {
 public:
  pool_core(thread_pool& owner, const pool_options& options);
  ~pool_core();

  // Submission (thread_pool.cpp).
  void enqueue(pool_job* job, class_state* cls);
  void enqueue_admitted(pool_job* job, bool force);  // job already holds its class slot
  bool shutdown(std::chrono::nanoseconds timeout);
  pool_stats stats() const;

  // Worker side (thread_pool_worker.cpp).
  void worker_main(worker& w);
  void execute(worker& w, pool_job* job);
  pool_job* steal_any(worker* self);  // self may be nullptr (shutdown drain)
  void notify_after_push();
  bool push_local(pool_job* job);                   // false if the caller is not one of our workers
  void sleep_in_join(worker& w, job_latch& latch);  // fork_wait's sleep (fork_join.cpp)

  static worker* current_worker(const pool_core* pool);
  static pool_core* current_pool();

  thread_pool& owner;
  const pool_options options;
  std::stop_source stop;

 private:
  pool_job* find_local_or_injected(worker& w);
  pool_job* search(worker& w);
  bool park(worker& w);
  void leave_searching();
  void wake_one();
  void wake_all();
  bool work_visible() const;
  bool quiescent() const;  // no job running on any worker
  void spawn_worker(bool force);
  bool exit_closed(worker& w);  // false: work arrived, the worker stays
  bool cancel_sleep(worker& w, bool to_searching);
  void await_wake(worker& w);
  pool_job* pop_inject(worker& w);
  void discard_outside(pool_job* job);
  bool drain_and_discard();
  std::size_t inject_batch() const;
  std::size_t high_water() const { return high_water_.load(std::memory_order_acquire); }

  sched_detail::injection_queue inject_;

  // Slots are created on first use and live as long as the pool, so thieves can read any
  // slot below high_water_ without locking (a retired worker leaves an empty deque).
  std::unique_ptr<std::atomic<worker*>[]> slots_;
  std::atomic<std::size_t> high_water_{0};
  std::mutex spawn_mu_;  // slot reuse, thread start and join

  // Parking. `searching_` counts workers looking for work (not running, not asleep);
  // `sleepers_` counts workers on the idle list. A worker is always counted in at least
  // one of them while it is not running a job, so a submitter that sees both at zero
  // knows every worker is busy.
  std::mutex idle_mu_;
  std::vector<std::uint32_t> idle_;  // LIFO, guarded by idle_mu_
  alignas(64) std::atomic<std::uint32_t> searching_{0};
  alignas(64) std::atomic<std::uint32_t> sleepers_{0};
  alignas(64) std::atomic<std::uint32_t> live_{0};  // futex word for shutdown's wait

  std::atomic<bool> closed_{false};
  std::atomic<bool> discarding_{false};
  std::atomic<std::uint64_t> discarded_outside_{0};
  std::atomic<bool> dropped_any_{false};
  std::once_flag close_once_;
};

}  // namespace eddy::detail
