// Fork-join support: pushing a child job onto the calling worker's own deque, and the
// helping wait that keeps a worker busy while a stolen child runs elsewhere.
//
// A waiting worker first pops its own deque: if the child was not stolen it is right
// there (LIFO) and runs inline, which is the common, cheap case. Otherwise it steals
// from the other workers (a thief of our child pushes its own children, which we can
// help with) and, when nothing is left to help with, spins, yields, and finally sleeps
// until either the child is done (the latch wakes it) or work is pushed anywhere in the
// pool (it sleeps on the idle list like a parked worker, so a push wakes it): a worker
// waiting for a long stolen subtree keeps stealing from that subtree as it unfolds.
// It never takes from the injection queue while waiting: an outside job may be long,
// and the parent's caller would wait for it too.
#include <climits>
#include <eddy/sched/fork_join.hpp>
#include <thread>

#include "sched/futex.hpp"
#include "sched/pool_core.hpp"

namespace eddy::detail {

void job_latch::set() noexcept {
  const std::uintptr_t prev = state_.exchange(done_v, std::memory_order_acq_rel);
  if (prev == pending_v || prev == done_v) return;
  // A worker sleeps in fork_wait: wake it through its own word (never the latch, which
  // may be gone by now).
  auto* word = reinterpret_cast<std::atomic<std::uint32_t>*>(prev);
  word->fetch_or(wake_bit, std::memory_order_release);
  sched_detail::futex_wake(*word, 1);
}

bool fork_push(pool_job* job) {
  pool_core* pool = pool_core::current_pool();
  return pool && pool->push_local(job);
}

void fork_wait(job_latch& latch) {
  pool_core* pool = pool_core::current_pool();
  worker* self = pool_core::current_worker(pool);
  unsigned idle_rounds = 0;
  while (!latch.done()) {
    pool_job* job = self->deque.pop();
    if (!job) job = pool->steal_any(self);
    if (job) {
      pool->execute(*self, job);
      idle_rounds = 0;
      continue;
    }
    ++idle_rounds;
    if (idle_rounds < 64) {
      for (int i = 0; i < 32; ++i) sched_detail::cpu_relax();
    } else if (idle_rounds < 80) {
      std::this_thread::yield();
    } else {
      // Sleep until the child is done or new work is pushed anywhere in the pool.
      pool->sleep_in_join(*self, latch);
      idle_rounds = 0;
    }
  }
}

bool on_pool_worker(const thread_pool& pool) {
  return thread_pool::current() == &pool;
}

}  // namespace eddy::detail
