// The worker loop: where a worker finds its next job, and how it sleeps without losing
// a wakeup.
//
// Finding work, in order:
//   1. every 61st job, the injection queue first, so a worker that keeps feeding its own
//      deque cannot starve outside submissions (tokio's choice of 61: a prime, so it does
//      not fall into step with periodic workloads);
//   2. its own deque (LIFO), then the injection queue (taking a small batch in a fixed
//      pool: one lock for several jobs; the extra ones go on the deque, to be stolen);
//   3. searching: steal from a random victim and then each other worker in turn, and
//      retry for `spin_before_park`;
//   4. parking on its futex word.
//
// Parking protocol. Counts: searching_ (workers looking for work) and sleepers_ (workers
// on the idle list). A worker not running a job is counted in at least one of them; it
// registers as a sleeper before it stops counting as searching.
//   Submitter: push the job; seq_cst fence; if searching_ == 0, wake one sleeper (or, in
//     an elastic pool with none, start a thread).
//   Parking worker: join the idle list (sleepers_ + 1); searching_ - 1; seq_cst fence;
//     look at every queue once more; sleep only if all are empty.
//   The two fences order "push, read count" against "write count, read queues" (Dekker):
//   either the submitter sees the worker counted and wakes one, or the worker sees the
//   job. A submitter that skips the wake because someone is searching relies on that
//   searcher: when the last searcher finds a job it stops searching (searching_ - 1),
//   fences, and wakes one more worker if work is still visible. So a job is never left
//   with every worker asleep, and a burst wakes workers one by one instead of all at once.
//   Waking: under idle_mu_, pop the most recently parked worker (LIFO: it is the warmest,
//   and in an elastic pool the coldest ones are then the ones that time out and retire),
//   move it from sleepers_ to searching_ on its behalf, then set its word and FUTEX_WAKE.
#include <signal.h>
#include <pthread.h>

#include <algorithm>
#include <climits>
#include <thread>

#include "sched/class_state.hpp"
#include "sched/fence.hpp"
#include "sched/futex.hpp"
#include "sched/pool_core.hpp"

namespace eddy::detail {
namespace {

struct worker_ctx {
  pool_core* pool = nullptr;
  worker* self = nullptr;
};
thread_local worker_ctx tls;

std::uint64_t next_random(std::uint64_t& s) {
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}

void name_thread(const std::string& pool_name, std::uint32_t index) {
  std::string name = pool_name + "-" + std::to_string(index);
  name.resize(std::min<std::size_t>(name.size(), 15));  // Linux keeps 15 bytes + NUL
  pthread_setname_np(pthread_self(), name.c_str());
}

}  // namespace

worker* pool_core::current_worker(const pool_core* pool) {
  return tls.pool == pool ? tls.self : nullptr;
}

pool_core* pool_core::current_pool() {
  return tls.pool;
}

bool pool_core::push_local(pool_job* job) {
  worker* w = current_worker(this);
  if (!w) return false;
  w->deque.push(job);
  notify_after_push();
  return true;
}

// Asynchronous signals are for the program's own threads (signal_set reads them
// from a signalfd, which only works if no thread would take them): workers block
// all of them (DESIGN.md §6). Fault signals stay deliverable so a crash in a job
// still crashes, and sanitizers keep their handlers.
void block_async_signals() noexcept {
  sigset_t set;
  sigfillset(&set);
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT}) sigdelset(&set, sig);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

void pool_core::worker_main(worker& w) {
  block_async_signals();
  tls = {this, &w};
  name_thread(options.name, w.index);
  bool searching = true;  // spawn_worker counted this worker in searching_
  for (;;) {
    pool_job* job = find_local_or_injected(w);
    if (!job) {
      if (!searching) {
        searching = true;
        searching_.fetch_add(1, std::memory_order_seq_cst);
      }
      job = search(w);
    }
    if (job) {
      if (searching) {
        searching = false;
        leave_searching();
      }
      execute(w, job);
      continue;
    }
    if (closed_.load(std::memory_order_acquire) && !work_visible() && quiescent()) {
      if (exit_closed(w)) break;
      continue;  // work arrived as we left: still searching
    }
    if (!park(w)) break;  // retired (elastic pool); park() did the accounting
  }
  tls = {};
}

pool_job* pool_core::pop_inject(worker& w) {
  bool spilled = false;
  pool_job* job = inject_.pop_batch(inject_batch(), [&](pool_job* more) {
    w.deque.push(more);
    spilled = true;
  });
  if (spilled) notify_after_push();
  return job;
}

std::size_t pool_core::inject_batch() const {
  // An elastic pool runs blocking jobs: one parked behind another on a deque would wait
  // for it, so take one at a time.
  if (options.elastic) return 1;
  const std::size_t share = inject_.size_hint() / options.threads;
  return std::clamp<std::size_t>(share, 1, 16);
}

pool_job* pool_core::find_local_or_injected(worker& w) {
  if (++w.tick == 61) {
    w.tick = 0;
    if (pool_job* job = pop_inject(w)) return job;
  }
  if (pool_job* job = w.deque.pop()) return job;
  return pop_inject(w);
}

pool_job* pool_core::steal_any(worker* self) {
  const std::size_t n = high_water();
  if (n == 0) return nullptr;
  const std::size_t start = self ? next_random(self->rng) % n : 0;
  for (std::size_t k = 0; k < n; ++k) {
    worker* victim = slots_[(start + k) % n].load(std::memory_order_acquire);
    if (victim == self) continue;
    pool_job* job = nullptr;
    for (;;) {
      auto r = victim->deque.steal(job);
      if (r == sched_detail::chase_lev_deque<pool_job>::steal_result::success) {
        if (self) self->bump(self->stolen);
        return job;
      }
      if (r == sched_detail::chase_lev_deque<pool_job>::steal_result::empty) break;
      // Lost a race for the top element to another thief or the owner: someone made
      // progress, and the victim may hold more, so try it again.
    }
  }
  return nullptr;
}

pool_job* pool_core::search(worker& w) {
  const auto budget = options.spin_before_park;
  const auto deadline = std::chrono::steady_clock::now() + budget;
  for (unsigned round = 0;; ++round) {
    if (pool_job* job = steal_any(&w)) return job;
    if (pool_job* job = pop_inject(w)) return job;
    if (round > 0 && std::chrono::steady_clock::now() >= deadline) return nullptr;
    for (int i = 0; i < 64; ++i) sched_detail::cpu_relax();
    // On a machine with more runnable threads than cores (the loop thread we are about
    // to hear from may share our core), spinning alone would hold the core until the
    // scheduler's tick; yielding now and then lets such a thread run at once.
    if (round % 8 == 7) std::this_thread::yield();
  }
}

void pool_core::execute(worker& w, pool_job* job) {
  class_state* cls = job->class_;  // read first: run() ends the job's life
  const std::int64_t queued_ns = job->queued_ns_;
  w.running.store(w.running.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  if (discarding_.load(std::memory_order_relaxed)) {
    job->discard();
    dropped_any_.store(true, std::memory_order_relaxed);
  } else if (queued_ns == 0) {
    job->run();
  } else {
    const std::int64_t start = steady_ns();
    w.queue_wait.add(static_cast<std::uint64_t>(start > queued_ns ? start - queued_ns : 0));
    job->run();
    const std::int64_t end = steady_ns();
    w.run_time.add(static_cast<std::uint64_t>(end - start));
  }
  w.running.store(w.running.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  w.bump(w.executed);
  if (cls)
    if (pool_job* next = cls->release()) enqueue_admitted(next, true);
}

bool pool_core::work_visible() const {
  if (!inject_.empty_hint()) return true;
  const std::size_t n = high_water();
  for (std::size_t i = 0; i < n; ++i)
    if (!slots_[i].load(std::memory_order_acquire)->deque.empty_hint()) return true;
  return false;
}

void pool_core::notify_after_push() {
  // Dekker with park(): the push above must be visible to a worker that registers as a
  // sleeper after we read the counts below. See the protocol at the top of the file.
  sched_detail::seq_cst_fence();
  if (searching_.load(std::memory_order_relaxed) != 0) return;
  wake_one();
}

void pool_core::leave_searching() {
  if (searching_.fetch_sub(1, std::memory_order_seq_cst) != 1) return;
  // We were the last searcher; a submitter may have skipped its wake because of us.
  sched_detail::seq_cst_fence();
  if (work_visible()) wake_one();
}

void pool_core::wake_one() {
  if (sleepers_.load(std::memory_order_relaxed) != 0) {
    std::unique_lock lock(idle_mu_);
    if (!idle_.empty()) {
      worker* w = slots_[idle_.back()].load(std::memory_order_relaxed);
      idle_.pop_back();
      sleepers_.fetch_sub(1, std::memory_order_seq_cst);
      searching_.fetch_add(1, std::memory_order_seq_cst);
      lock.unlock();
      // Release: the woken worker's acquire load of the word sees the state above.
      w->wake.fetch_or(worker::pool_wake_bit, std::memory_order_release);
      sched_detail::futex_wake(w->wake, 1);
      return;
    }
  }
  // Every live worker is running a job. An elastic pool grows, unless at its limit. A
  // closing pool restarts a worker that already left: a job still running (one that
  // was just taken when the others found the pool idle, or that blocks on a future)
  // may push work that needs one. A failure to start a thread leaves the job queued
  // for the next finishing worker.
  const bool closing = closed_.load(std::memory_order_acquire);
  if (options.elastic || closing) {
    try {
      spawn_worker(closing);
    } catch (const std::system_error&) {
    }
  }
}

void pool_core::wake_all() {
  std::vector<std::uint32_t> picked;
  {
    std::lock_guard lock(idle_mu_);
    picked.swap(idle_);
    sleepers_.fetch_sub(static_cast<std::uint32_t>(picked.size()), std::memory_order_seq_cst);
    searching_.fetch_add(static_cast<std::uint32_t>(picked.size()), std::memory_order_seq_cst);
  }
  for (std::uint32_t i : picked) {
    worker* w = slots_[i].load(std::memory_order_relaxed);
    w->wake.fetch_or(worker::pool_wake_bit, std::memory_order_release);
    sched_detail::futex_wake(w->wake, 1);
  }
}

bool pool_core::cancel_sleep(worker& w, bool to_searching) {
  std::lock_guard lock(idle_mu_);
  auto it = std::find(idle_.begin(), idle_.end(), w.index);
  if (it == idle_.end()) return false;  // a waker took us off the list: its word is coming
  idle_.erase(it);
  sleepers_.fetch_sub(1, std::memory_order_seq_cst);
  if (to_searching) searching_.fetch_add(1, std::memory_order_seq_cst);
  return true;
}

void pool_core::await_wake(worker& w) {
  // The waker sets our bit just after releasing idle_mu_; wait for it, so that a stale
  // bit cannot cut a later sleep short.
  for (;;) {
    const std::uint32_t bits = w.wake.load(std::memory_order_acquire);
    if (bits & worker::pool_wake_bit) break;
    sched_detail::futex_wait(w.wake, bits);
  }
  w.wake.fetch_and(~worker::pool_wake_bit, std::memory_order_relaxed);
}

// Sleeps until the pool wakes us (pool_wake_bit) or `timeout` passes. A latch bit left
// over from an earlier join (job_latch::set may land after its waiter moved on) is
// dropped. Returns true if woken by the pool.
static bool sleep_for_pool_wake(worker& w, std::chrono::nanoseconds timeout) {
  std::uint32_t bits = w.wake.load(std::memory_order_acquire);
  if (bits & job_latch::wake_bit) {
    w.wake.fetch_and(~job_latch::wake_bit, std::memory_order_relaxed);
    bits &= ~job_latch::wake_bit;
  }
  if (!(bits & worker::pool_wake_bit)) sched_detail::futex_wait(w.wake, bits, timeout);
  if (w.wake.load(std::memory_order_acquire) & worker::pool_wake_bit) {
    w.wake.fetch_and(~worker::pool_wake_bit, std::memory_order_relaxed);
    return true;
  }
  return false;
}

bool pool_core::park(worker& w) {
  {
    std::lock_guard lock(idle_mu_);
    idle_.push_back(w.index);
    sleepers_.fetch_add(1, std::memory_order_seq_cst);
  }
  searching_.fetch_sub(1, std::memory_order_seq_cst);
  sched_detail::seq_cst_fence();  // Dekker with notify_after_push()
  // While closed, a worker leaves only once nothing runs (a running job may still fork
  // work that needs it); it sleeps meanwhile, and the last one to leave wakes the rest.
  if (work_visible() || (closed_.load(std::memory_order_acquire) && quiescent())) {
    if (!cancel_sleep(w, true)) await_wake(w);
    return true;  // searching again, counted by cancel_sleep or by the waker
  }
  for (;;) {
    const bool may_retire =
        options.elastic && live_.load(std::memory_order_relaxed) > options.min_threads;
    const auto started = std::chrono::steady_clock::now();
    if (sleep_for_pool_wake(w, may_retire ? std::chrono::nanoseconds(options.idle_timeout)
                                          : std::chrono::nanoseconds(-1)))
      return true;
    if (!may_retire || std::chrono::steady_clock::now() - started < options.idle_timeout)
      continue;  // spurious or early wakeup
    // Retiring. Off the idle list we count as neither searching nor asleep, so a
    // submitter from now on wakes another worker or starts a thread itself.
    if (!cancel_sleep(w, false)) {
      await_wake(w);
      return true;
    }
    {
      std::lock_guard lock(spawn_mu_);
      if (live_.load(std::memory_order_relaxed) <= options.min_threads ||
          closed_.load(std::memory_order_relaxed)) {
        searching_.fetch_add(1, std::memory_order_seq_cst);
        return true;  // stay, searching again
      }
      live_.fetch_sub(1, std::memory_order_release);
      w.state.store(worker::slot::exited, std::memory_order_relaxed);
    }
    // A submitter that pushed just before we left the idle list may have skipped its
    // wake (it saw us counted) or failed to start a thread (we still held our place in
    // live_). Its push comes before this look at the queues (fence against its fence,
    // or spawn_mu_ against its spawn attempt), so if there is work we take our place
    // back, unless a spawner already claimed the slot: then its new thread takes over.
    sched_detail::seq_cst_fence();
    if (work_visible()) {
      std::lock_guard lock(spawn_mu_);
      if (w.state.load(std::memory_order_relaxed) == worker::slot::exited &&
          live_.load(std::memory_order_relaxed) < options.threads &&
          !closed_.load(std::memory_order_relaxed)) {
        w.state.store(worker::slot::live, std::memory_order_relaxed);
        live_.fetch_add(1, std::memory_order_relaxed);
        searching_.fetch_add(1, std::memory_order_seq_cst);
        return true;
      }
    }
    // The last touch of pool state by this thread; shutdown keeps it valid by joining
    // us before the pool dies.
    sched_detail::futex_wake(live_, INT_MAX);
    return false;
  }
}

bool pool_core::exit_closed(worker& w) {
  {
    std::lock_guard lock(spawn_mu_);
    searching_.fetch_sub(1, std::memory_order_seq_cst);
    live_.fetch_sub(1, std::memory_order_release);
    w.state.store(worker::slot::exited, std::memory_order_relaxed);
  }
  // As in retiring (park()): a job pushed while we still counted as searching may have
  // skipped its wake. Look once more, and stay if there is work and our slot is not
  // already being reused by a replacement.
  sched_detail::seq_cst_fence();
  if (work_visible()) {
    std::lock_guard lock(spawn_mu_);
    if (w.state.load(std::memory_order_relaxed) == worker::slot::exited) {
      w.state.store(worker::slot::live, std::memory_order_relaxed);
      live_.fetch_add(1, std::memory_order_relaxed);
      searching_.fetch_add(1, std::memory_order_seq_cst);
      return false;
    }
  }
  // Sleepers that saw a job still running wait for this: they re-check and leave too.
  wake_all();
  sched_detail::futex_wake(live_, INT_MAX);
  return true;
}

bool pool_core::quiescent() const {
  const std::size_t n = high_water();
  for (std::size_t i = 0; i < n; ++i)
    if (slots_[i].load(std::memory_order_acquire)->running.load(std::memory_order_relaxed) != 0)
      return false;
  return true;
}

void pool_core::sleep_in_join(worker& w, job_latch& latch) {
  // Clear a latch bit left by an earlier join, then arm this latch with our word.
  w.wake.fetch_and(~job_latch::wake_bit, std::memory_order_relaxed);
  if (!latch.arm(&w.wake)) return;  // already done
  // Join the idle list like a parked worker (not counted as searching: we are running
  // the joining job), so that a push anywhere wakes us to steal it. Same Dekker pairing
  // with notify_after_push() as park().
  {
    std::lock_guard lock(idle_mu_);
    idle_.push_back(w.index);
    sleepers_.fetch_add(1, std::memory_order_seq_cst);
  }
  sched_detail::seq_cst_fence();
  if (!work_visible() && !latch.done()) {
    for (;;) {
      const std::uint32_t bits = w.wake.load(std::memory_order_acquire);
      if (bits != 0) break;
      sched_detail::futex_wait(w.wake, 0);
    }
  }
  if (!cancel_sleep(w, false)) {
    // wake_one() took us off the list and counted us as searching on our behalf: take
    // its bit, and give the searching duty back (handing it on if work is visible).
    await_wake(w);
    leave_searching();
  }
}

}  // namespace eddy::detail

namespace eddy {
thread_pool* thread_pool::current() noexcept {
  detail::pool_core* p = detail::pool_core::current_pool();
  return p ? &p->owner : nullptr;
}
}  // namespace eddy
