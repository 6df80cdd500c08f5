// Fork-join support: pushing a child job onto the calling worker's own deque, and the
// helping wait that keeps a worker busy while a stolen child runs elsewhere.
//
// A waiting worker first pops its own deque: if the child was not stolen it is right
// there (LIFO) and runs inline, which is the common, cheap case. Otherwise it steals
// from the other workers (a thief of our child pushes its own children, which we can
// help with) and, when nothing is left to help with, spins, yields, and finally sleeps
// on the child's latch. It never takes from the injection queue while waiting: an
// outside job may be long, and the parent's caller would wait for it too.
#include <climits>
#include <eddy/sched/fork_join.hpp>
#include <thread>

#include "sched/futex.hpp"
#include "sched/pool_core.hpp"

namespace eddy::detail {

void job_latch::set() noexcept {
  // Once the waiter sees done_v it may return and free the latch. FUTEX_WAKE uses the
  // address only as a key and never reads it, so waking after that is harmless: at worst
  // a spurious wakeup of whoever sleeps on a reused address, and futex waiters re-check.
  if (state_.exchange(done_v, std::memory_order_acq_rel) == sleeping_v)
    sched_detail::futex_wake(state_, INT_MAX);
}

void job_latch::wait() noexcept {
  std::uint32_t s = pending_v;
  if (!state_.compare_exchange_strong(s, sleeping_v, std::memory_order_acq_rel,
                                      std::memory_order_acquire) &&
      s == done_v)
    return;
  while (state_.load(std::memory_order_acquire) != done_v)
    sched_detail::futex_wait(state_, sleeping_v);
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
    if (idle_rounds < 128) {
      for (int i = 0; i < 32; ++i) sched_detail::cpu_relax();
    } else if (idle_rounds < 160) {
      std::this_thread::yield();
    } else {
      latch.wait();
    }
  }
}

bool on_pool_worker(const thread_pool& pool) {
  return thread_pool::current() == &pool;
}

}  // namespace eddy::detail
