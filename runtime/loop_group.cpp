// eddy::loop_group (include/eddy/runtime/loop_group.hpp).
//
// Lifecycle:
//  1. The constructor makes every loop on the calling thread; a loop belongs to the
//     thread that first runs it, so handles exist before any thread starts.
//  2. run() starts one thread per loop. Loop i runs a supervisor task: it spawns
//     make_main(i), awaits it, records the outcome, and then waits on its `release`
//     event, so that a loop whose main finished early still serves spawn_on and
//     channel traffic from the others.
//  3. The last main to finish posts `release` to every loop; each supervisor returns,
//     each thread closes its own loop (cancelling what is left there) and exits.
//  4. cancel() (any thread, also the SIGINT watcher and the first failure) posts a
//     cancellation of the main task to every loop. A cancel that arrives before the
//     supervisor spawned main is caught by the flag it checks right after spawning.
#include <pthread.h>
#include <sched.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

#include <eddy/runtime/event.hpp>
#include <eddy/runtime/loop_group.hpp>
#include <eddy/runtime/run.hpp>

namespace eddy {

namespace {

constexpr std::size_t no_index = static_cast<std::size_t>(-1);
thread_local std::size_t tls_group_index = no_index;

std::string describe(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (const cancelled_error& ex) {
    return ex.what();
  } catch (...) {
    return "a non-standard exception";
  }
}

}  // namespace

struct loop_group::slot {
  std::unique_ptr<loop> l;
  loop_handle h;
  detail::task_core* main_core = nullptr;  // loop thread only
  event release;                           // loop thread only
  std::exception_ptr error;                // written by the loop thread, read after join
  int cpu = -1;
  bool counted = false;                    // main_finished ran for this loop (loop thread)
};

std::size_t loop_group::default_size() noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return static_cast<std::size_t>(n);
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw != 0 ? hw : 1;
}

loop_group::loop_group(loop_group_options opts) : opts_(opts) {
  std::size_t n = opts.loops == 0 ? default_size() : opts.loops;
  if (n > max_loops)
    throw std::invalid_argument("eddy::loop_group_options::loops must be 0..1024, got " +
                                std::to_string(opts.loops));
  std::vector<int> cpus;
  if (opts.cpu_affinity) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) != 0)
      throw std::system_error(errno, std::generic_category(), "eddy::loop_group: sched_getaffinity");
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
  }
  slots_.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    auto s = std::make_unique<slot>();
    s->l = std::make_unique<loop>(opts.loop);
    s->h = s->l->handle();
    if (!cpus.empty()) s->cpu = cpus[i % cpus.size()];
    slots_.push_back(std::move(s));
  }
}

loop_group::~loop_group() {
  // Loops that never ran are closed here, on the thread that made them.
  for (auto& s : slots_) {
    try {
      if (!s->l->is_closed()) s->l->close();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "eddy: loop_group::~loop_group: %s\n", e.what());
    }
  }
}

loop_handle loop_group::handle(std::size_t i) const {
  if (i >= slots_.size())
    throw std::out_of_range("eddy::loop_group::handle: index " + std::to_string(i) + " of " +
                            std::to_string(slots_.size()) + " loops");
  return slots_[i]->h;
}

std::size_t loop_group::current_index() {
  if (tls_group_index == no_index)
    throw std::logic_error("eddy::loop_group::current_index: this thread runs no group loop");
  return tls_group_index;
}

void loop_group::cancel() noexcept {
  cancel_requested_.store(true, std::memory_order_seq_cst);
  for (auto& s : slots_) {
    slot* sp = s.get();
    try {
      (void)sp->h.call_soon_threadsafe([sp] {
        if (sp->main_core != nullptr) sp->main_core->request_cancel();
      });
    } catch (...) {
      // Out of memory: that loop's main sees the flag only if it has not started.
    }
  }
}

void loop_group::main_finished() noexcept {
  if (remaining_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  for (auto& s : slots_) {
    slot* sp = s.get();
    try {
      (void)sp->h.call_soon_threadsafe([sp] { sp->release.set(); });
    } catch (...) {
      std::fputs("eddy: loop_group: out of memory releasing a loop\n", stderr);
    }
  }
}

task<void> loop_group::supervise(std::size_t i, const std::function<task<void>(std::size_t)>* make_main) {
  slot& s = *slots_[i];
  try {
    join_handle<void> h = spawn((*make_main)(i));
    s.main_core = h.core();
    if (cancel_requested_.load(std::memory_order_seq_cst)) h.cancel();
    try {
      co_await h;
    } catch (...) {
      s.main_core = nullptr;
      throw;
    }
    s.main_core = nullptr;
  } catch (...) {
    s.error = std::current_exception();
    if (!detail::is_cancellation(s.error)) {
      std::size_t none = no_index;
      first_failure_.compare_exchange_strong(none, i, std::memory_order_acq_rel);
      cancel();  // the first failure stops the group
    }
  }
  s.counted = true;
  main_finished();
  co_await s.release.wait();
}

void loop_group::thread_main(std::size_t i, const std::function<task<void>(std::size_t)>& make_main) {
  slot& s = *slots_[i];
  tls_group_index = i;
  if (s.cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(s.cpu, &set);
    if (int e = ::pthread_setaffinity_np(::pthread_self(), sizeof set, &set); e != 0)
      std::fprintf(stderr, "eddy: loop_group: pinning loop %zu to CPU %d: %s (running unpinned)\n", i,
                   s.cpu, std::strerror(e));
  }
  try {
    s.l->run(supervise(i, &make_main));
  } catch (...) {
    // run() itself failed (the loop could not run): count it as this loop's failure.
    if (!s.error) s.error = std::current_exception();
    std::size_t none = no_index;
    first_failure_.compare_exchange_strong(none, i, std::memory_order_acq_rel);
    cancel();
    // The supervisor may have counted this loop's main already and failed only
    // in its wait for the release (a stop() of this loop): count each main once,
    // or the release reaches the others while a main still runs.
    if (!s.counted) {
      s.counted = true;
      main_finished();
    }
  }
  try {
    s.l->close();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "eddy: loop_group: closing loop %zu: %s\n", i, e.what());
  }
  tls_group_index = no_index;
}

void loop_group::run_impl(std::function<task<void>(std::size_t)> make_main) {
  if (ran_) throw std::logic_error("eddy::loop_group::run: a group runs once");
  if (loop::current_or_null() != nullptr)
    throw std::logic_error("eddy::loop_group::run: called on a loop thread (it blocks until every loop ends)");
  ran_ = true;
  remaining_.store(slots_.size(), std::memory_order_relaxed);

  std::exception_ptr interrupted_by;
  {
    std::unique_ptr<detail::sigint_cancels_main> guard;
    if (opts_.sigint_cancels)
      guard = std::make_unique<detail::sigint_cancels_main>(
          *slots_[0]->l, [](void* g) { static_cast<loop_group*>(g)->cancel(); }, this);
    std::vector<std::thread> threads;
    threads.reserve(slots_.size());
    try {
      for (std::size_t i = 0; i < slots_.size(); ++i)
        threads.emplace_back([this, i, &make_main] { thread_main(i, make_main); });
    } catch (...) {
      // Could not start every thread: stop those that run, then report.
      cancel();
      for (std::size_t i = threads.size(); i < slots_.size(); ++i) main_finished();
      for (auto& t : threads) t.join();
      throw;
    }
    for (auto& t : threads) t.join();
    if (guard && guard->fired()) {
      for (auto& s : slots_)
        if (s->error && detail::is_cancellation(s->error)) interrupted_by = s->error;
    }
  }
  if (interrupted_by) detail::sigint_cancels_main::reraise();

  const std::size_t f = first_failure_.load(std::memory_order_acquire);
  if (f == no_index) return;
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    if (i != f && slots_[i]->error && !detail::is_cancellation(slots_[i]->error))
      std::fprintf(stderr, "eddy: loop_group: loop %zu also failed: %s\n", i,
                   describe(slots_[i]->error).c_str());
  }
  throw loop_group_error(f, slots_[f]->error,
                         "eddy::loop_group: loop " + std::to_string(f) +
                             "'s main task failed: " + describe(slots_[f]->error));
}

}  // namespace eddy
