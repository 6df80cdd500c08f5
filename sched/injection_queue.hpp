// The pool's global FIFO for jobs submitted from outside its workers (and for jobs a
// work class releases from its backlog).
//
// A mutex around an intrusive list, as tokio's inject queue: outside submissions are
// rare next to the per-worker deques' traffic, and a lock makes "closed" exact: a job is
// either in the queue before close() or push() refuses it, which shutdown relies on.
// `length_` is kept as an atomic so idle workers can check for work without the lock.
#pragma once

#include <atomic>
#include <cstddef>
#include <eddy/sched/detail/pool_job.hpp>
#include <mutex>

namespace eddy::sched_detail {

class injection_queue {
 public:
  /// Appends unless closed (and `force` is false). Returns false if refused.
  bool push(detail::pool_job* job, bool force) {
    std::lock_guard lock(mu_);
    if (closed_ && !force) return false;
    job->next_ = nullptr;
    if (tail_)
      tail_->next_ = job;
    else
      head_ = job;
    tail_ = job;
    length_.store(length_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return true;
  }

  /// Takes up to `max` jobs; the first is returned, the others are handed to `spill`
  /// (oldest first) so the caller can put them on its own deque.
  /// Workers pass `wait_for_lock` false: one that finds the queue busy looks elsewhere
  /// and comes back (it never parks while length_ says there is work), instead of
  /// queueing up on the mutex behind a submitter and other workers: no lock convoy when
  /// jobs are tiny. So nullptr means "nothing taken", not "empty", unless it waited.
  template <class Spill>
  detail::pool_job* pop_batch(std::size_t max, Spill&& spill, bool wait_for_lock = false) {
    if (empty_hint()) return nullptr;
    std::unique_lock lock(mu_, std::defer_lock);
    if (wait_for_lock)
      lock.lock();
    else if (!lock.try_lock())
      return nullptr;
    detail::pool_job* first = take_locked();
    for (std::size_t i = 1; first && i < max; ++i) {
      detail::pool_job* more = take_locked();
      if (!more) break;
      spill(more);
    }
    return first;
  }

  /// One job, waiting for the lock: nullptr means empty (shutdown's drain relies on it).
  detail::pool_job* pop() {
    return pop_batch(
        1, [](detail::pool_job*) {}, true);
  }

  /// Refuses later non-forced pushes. Jobs already queued stay.
  void close() {
    std::lock_guard lock(mu_);
    closed_ = true;
  }

  // Relaxed: a hint. Callers that must not miss a push order this read after their own
  // seq_cst fence (see the parking protocol in thread_pool_worker.cpp).
  std::size_t size_hint() const { return length_.load(std::memory_order_relaxed); }
  bool empty_hint() const { return size_hint() == 0; }

 private:
  detail::pool_job* take_locked() {
    detail::pool_job* job = head_;
    if (!job) return nullptr;
    head_ = job->next_;
    if (!head_) tail_ = nullptr;
    job->next_ = nullptr;
    length_.store(length_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
    return job;
  }

  std::mutex mu_;
  detail::pool_job* head_ = nullptr;
  detail::pool_job* tail_ = nullptr;
  bool closed_ = false;
  std::atomic<std::size_t> length_{0};
};

}  // namespace eddy::sched_detail
