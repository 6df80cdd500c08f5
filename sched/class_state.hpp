// The shared state behind an eddy::work_class: a cap, a count of slots in use, and a
// FIFO backlog of jobs waiting for a slot.
//
// Invariant (under mu): backlog non-empty implies active == max. So while jobs wait,
// some slot holder exists in the pool, and when it finishes it hands its slot straight
// to the oldest waiting job (release()), which is how the backlog always drains, also
// during shutdown. The state is reference-counted: the work_class handle holds one
// reference and every job holding a slot or waiting holds one.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <eddy/sched/detail/pool_job.hpp>
#include <mutex>
#include <string>

namespace eddy {
class thread_pool;
}

namespace eddy::detail {

class pool_core;

struct class_state {
  class_state(pool_core& p, std::string n, std::size_t m) : pool(p), name(std::move(n)), max(m) {}

  void retain() noexcept { refs.fetch_add(1, std::memory_order_relaxed); }
  void unref() noexcept {
    // acq_rel: the last owner sees every other owner's writes before deleting.
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  /// Takes a slot for `job` or parks it in the backlog. Returns true if it got a slot
  /// (the caller queues it in the pool), false if it waits here.
  bool admit(pool_job* job) {
    retain();
    job->class_ = this;
    std::lock_guard lock(mu);
    if (active < max) {
      ++active;
      return true;
    }
    job->next_ = nullptr;
    if (tail)
      tail->next_ = job;
    else
      head = job;
    tail = job;
    ++waiting;
    return false;
  }

  /// Called when a job holding a slot has finished (run or discarded). Returns the next
  /// job, which now holds that slot and must be queued in the pool, or nullptr.
  pool_job* release() {
    pool_job* next = nullptr;
    {
      std::lock_guard lock(mu);
      if (head) {
        next = head;
        head = next->next_;
        if (!head) tail = nullptr;
        next->next_ = nullptr;
        --waiting;
      } else {
        --active;
      }
    }
    unref();  // the finished job's reference
    return next;
  }

  pool_core& pool;
  const std::string name;
  const std::size_t max;
  std::atomic<std::uint32_t> refs{1};

  mutable std::mutex mu;
  std::size_t active = 0;   // guarded by mu
  std::size_t waiting = 0;  // guarded by mu
  pool_job* head = nullptr;
  pool_job* tail = nullptr;
};

}  // namespace eddy::detail
