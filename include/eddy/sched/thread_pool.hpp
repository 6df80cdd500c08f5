// eddy::thread_pool: a work-stealing pool of threads for blocking calls and CPU work
// (DESIGN.md §6), and the two pools every program gets: cpu_pool() and blocking_pool().
//
// From coroutines use <eddy/sched/offload.hpp> (to_thread, run_cpu); from plain code
// use submit()/post() here, and join()/parallel_for() from <eddy/sched/fork_join.hpp>.
#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <eddy/runtime/metrics.hpp>
#include <eddy/sched/detail/pool_job.hpp>
#include <future>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

namespace eddy {

class thread_pool;
class work_class;

namespace detail {
class pool_core;
}

/// The most threads one pool may have. A bound on a user-given size (RELIABILITY.md:
/// every user-controlled size has a limit); beyond it a typo would exhaust the machine.
///
/// **Thread safety:** a constant.
/// **Cancel safety:** not an operation.
///
/// ```cpp
/// eddy::thread_pool pool(std::min<std::size_t>(wanted, eddy::max_pool_threads));
/// ```
inline constexpr std::size_t max_pool_threads = 4096;

/// How a thread_pool is built. Every field is checked by the thread_pool constructor,
/// which throws std::invalid_argument naming the field and its limit.
///
/// A *fixed* pool (elastic == false) starts `threads` workers at once and keeps them. An
/// *elastic* pool starts workers on demand, up to `threads`, and a worker idle for
/// `idle_timeout` exits, down to `min_threads`.
///
/// **Thread safety:** a plain value.
/// **Cancel safety:** not an operation.
///
/// ```cpp
/// eddy::thread_pool cpu(eddy::pool_options::fixed(4, "crunch"));
/// eddy::thread_pool io(eddy::pool_options::elastic_up_to(64, std::chrono::seconds(5), "io"));
/// ```
struct pool_options {
  /// Thread names are "<name>-<index>", cut to the 15 bytes Linux keeps. 1 to 64 bytes.
  std::string name = "eddy-pool";
  /// Fixed pool: the number of workers. Elastic pool: the most workers. 1 to 4096.
  std::size_t threads = 1;
  /// Start workers on demand and retire idle ones (see above).
  bool elastic = false;
  /// Elastic only: workers that never retire. At most `threads`.
  std::size_t min_threads = 0;
  /// Elastic only: how long a worker waits for work before it exits. 1 ms to 1 hour.
  std::chrono::milliseconds idle_timeout{10'000};
  /// How long a worker that ran out of work keeps looking (stealing, spinning) before it
  /// sleeps. Spinning makes the next submission cheap (no futex wake); it costs CPU only
  /// right after work, never while the pool is idle. 0 to 10 ms.
  std::chrono::microseconds spin_before_park{50};
  /// Time every job that enters through submit(), post(), to_thread/run_cpu/run_in
  /// or a work class: how long it waited to start and how long it ran
  /// (pool_stats::queue_wait and run_time). Costs three clock reads per such job
  /// (about 60 ns; a submission costs a heap job and often a futex wake). The halves
  /// join() forks and parallel_for's chunks are the pool's own subdivision of a job
  /// already timed, and are never timed. Off: no clock read, the two stay empty.
  bool metrics = true;

  /// A fixed pool of `threads` workers.
  static pool_options fixed(std::size_t threads, std::string name = "eddy-pool") {
    pool_options o;
    o.name = std::move(name);
    o.threads = threads;
    return o;
  }

  /// An elastic pool of at most `threads` workers that retire after `idle_timeout`.
  static pool_options elastic_up_to(std::size_t threads, std::chrono::milliseconds idle_timeout,
                                    std::string name = "eddy-pool") {
    pool_options o;
    o.name = std::move(name);
    o.threads = threads;
    o.elastic = true;
    o.idle_timeout = idle_timeout;
    return o;
  }
};

/// A snapshot of a pool's counters (thread_pool::stats()). Gauges are read one after the
/// other without a lock, so under load they are each true at a slightly different moment.
///
/// **Thread safety:** a plain value.
/// **Cancel safety:** not an operation.
///
/// ```cpp
/// eddy::pool_stats s = pool.stats();
/// std::printf("%zu queued, %zu running, %llu stolen\n", s.queued, s.running,
///             static_cast<unsigned long long>(s.stolen));
/// ```
struct pool_stats {
  std::size_t threads = 0;      ///< live worker threads
  std::size_t queued = 0;       ///< jobs in the pool's queues, not started (a work class's
                                ///< backlog is not counted: see work_class::waiting())
  std::size_t running = 0;      ///< jobs executing now (a fork-join parent and the child it
                                ///< runs while waiting count as two)
  std::size_t parked = 0;       ///< workers asleep, waiting for work (including ones
                                ///< asleep inside a join until new work or their child)
  std::uint64_t stolen = 0;     ///< jobs ever taken from another worker's deque
  std::uint64_t completed = 0;  ///< jobs ever finished (run, cancelled or discarded)
  /// From submission to the start of the run, for jobs that ran (pool_options::
  /// metrics; a work class's backlog counts as waiting). Since the pool started: take
  /// two snapshots and `delta()` them for an interval.
  latency_histogram queue_wait;
  /// How long each of those jobs ran (a fork-join parent's run includes the jobs it
  /// ran itself while waiting for its children).
  latency_histogram run_time;
};

/// Per-job options for thread_pool::submit.
///
/// - `stop`: cancels the job if requested before a worker starts it (the job is dropped
///   and its future holds eddy::job_cancelled, at once, without waiting for a worker).
///   Once the job runs, a callable whose first parameter is a std::stop_token receives
///   this token, so it can stop early.
/// - `work`: runs the job under a work_class cap (see work_class).
///
/// **Thread safety:** a plain value.
/// **Cancel safety:** not an operation.
///
/// ```cpp
/// std::stop_source stop;
/// auto f = pool.submit(eddy::job_options{.stop = stop.get_token()}, slow_call);
/// stop.request_stop();  // if slow_call has not started: f.get() throws job_cancelled
/// ```
struct job_options {
  std::stop_token stop{};
  work_class* work = nullptr;
};

/// A class of work with a cap on how many of its jobs a pool runs at once, so that one
/// kind of work (slow DNS lookups, a flood of blocking calls) cannot take every thread.
/// Jobs over the cap wait in the class's own FIFO backlog without holding a thread; each
/// finishing job of the class starts the next one.
///
/// A class belongs to one pool and must not be used after that pool is destroyed. It
/// may be destroyed while its jobs are still queued or running (they keep its state
/// alive).
///
/// **Thread safety:** all members may be called from any thread.
/// **Cancel safety:** not an operation; a job cancelled while in the backlog gives its
/// place up when it reaches the front.
///
/// ```cpp
/// eddy::thread_pool pool(8);
/// eddy::work_class dns(pool, "dns", 2);  // at most 2 of the 8 threads resolve names
/// auto f = pool.submit(eddy::job_options{.work = &dns}, lookup, "example.org");
/// ```
class work_class {
 public:
  /// Throws std::invalid_argument unless 1 <= max_concurrent <= pool.max_threads() and
  /// the name is 1 to 64 bytes.
  work_class(thread_pool& pool, std::string name, std::size_t max_concurrent);
  ~work_class();
  work_class(const work_class&) = delete;
  work_class& operator=(const work_class&) = delete;

  /// The class's name, cap and pool, as constructed; active(): jobs of this class
  /// holding a slot now (queued in the pool or running); waiting(): jobs of this class
  /// in its backlog, waiting for a slot.
  ///
  /// **Thread safety:** any thread; active() and waiting() take the class's lock and
  /// are snapshots.
  /// **Cancel safety:** not operations.
  ///
  /// ```cpp
  /// std::printf("%s: %zu/%zu busy, %zu waiting\n", dns.name().c_str(), dns.active(),
  ///             dns.max_concurrent(), dns.waiting());
  /// ```
  const std::string& name() const noexcept;
  std::size_t max_concurrent() const noexcept;
  std::size_t active() const;
  std::size_t waiting() const;
  thread_pool& pool() const noexcept;

 private:
  friend class thread_pool;
  detail::class_state* state_;
};

namespace detail {

/// A heap job whose result goes to a std::promise.
template <class R, class Fn, class... Args>
class future_job final : public pool_job {
 public:
  template <class F, class... A>
  future_job(std::stop_token run_token, F&& fn, A&&... args)
      : token_(std::move(run_token)), fn_(std::forward<F>(fn)), args_(std::forward<A>(args)...) {}

  std::future<R> get_future() { return promise_.get_future(); }

  /// Drops the job, if it has not started, when `cancel` is requested.
  void cancel_on(const std::stop_token& cancel) { on_stop_.emplace(cancel, canceller{this}); }

  void run() noexcept override {
    if (gate_.try_start()) {
      try {
        if constexpr (std::is_void_v<R>) {
          call();
          promise_.set_value();
        } else {
          promise_.set_value(call());
        }
      } catch (...) {
        promise_.set_exception(std::current_exception());
      }
    }
    delete this;
  }

  void discard() noexcept override {
    cancel("eddy: job dropped by thread_pool shutdown before it started");
    delete this;
  }

 private:
  struct canceller {
    future_job* self;
    void operator()() noexcept { self->cancel("eddy: job cancelled before it started"); }
  };

  decltype(auto) call() {
    return std::apply(
        [this](auto&&... a) -> decltype(auto) {
          return invoke_maybe_with_token(token_, std::move(fn_), std::move(a)...);
        },
        std::move(args_));
  }

  void cancel(const char* why) noexcept {
    if (gate_.try_cancel()) promise_.set_exception(std::make_exception_ptr(job_cancelled(why)));
  }

  std::promise<R> promise_;
  std::stop_token token_;
  Fn fn_;
  std::tuple<Args...> args_;
  start_gate gate_;
  // Last member, so it is destroyed first: std::stop_callback's destructor waits for a
  // callback running on another thread, so cancel() never touches a destroyed promise.
  std::optional<std::stop_callback<canceller>> on_stop_;
};

/// A heap job with no result (thread_pool::post).
template <class Fn, class... Args>
class posted_job final : public pool_job {
 public:
  template <class F, class... A>
  posted_job(std::stop_token run_token, F&& fn, A&&... args)
      : token_(std::move(run_token)), fn_(std::forward<F>(fn)), args_(std::forward<A>(args)...) {}

  // noexcept: an exception escaping a posted job has nowhere to go, so it terminates, as
  // one escaping a std::thread does.
  void run() noexcept override {
    std::apply(
        [this](auto&&... a) { invoke_maybe_with_token(token_, std::move(fn_), std::move(a)...); },
        std::move(args_));
    delete this;
  }
  void discard() noexcept override { delete this; }

 private:
  std::stop_token token_;
  Fn fn_;
  std::tuple<Args...> args_;
};

template <class T>
concept not_job_options = !std::same_as<std::remove_cvref_t<T>, job_options>;

}  // namespace detail

/// A pool of worker threads with per-worker work-stealing deques.
///
/// Each worker owns a Chase-Lev deque: jobs submitted from inside a worker go to its own
/// deque (LIFO for the owner, FIFO for thieves); jobs from outside go to a global
/// injection queue. A worker out of work steals from a random victim, spins for
/// `spin_before_park`, then sleeps on a futex: an idle pool uses no CPU.
///
/// Destruction calls shutdown() without a deadline: it waits for every queued and
/// running job. Shutting a pool down from one of its own workers throws std::logic_error.
///
/// **Thread safety:** every member may be called from any thread, concurrently.
/// **Cancel safety:** submit() and post() are not coroutines. Cancelling a job is done
/// through job_options::stop: a job not yet started is dropped; a running job only sees
/// its stop token.
///
/// ```cpp
/// eddy::thread_pool pool(4);
/// std::future<int> answer = pool.submit([](int x) { return x * 2; }, 21);
/// assert(answer.get() == 42);
/// pool.shutdown(std::chrono::seconds(1));
/// ```
class thread_pool {
 public:
  /// Throws std::invalid_argument naming the bad option and its limit, or
  /// std::system_error if the threads of a fixed pool cannot be started.
  explicit thread_pool(const pool_options& options);
  /// A fixed pool of `threads` workers named "eddy-pool-N".
  explicit thread_pool(std::size_t threads);
  ~thread_pool();
  thread_pool(const thread_pool&) = delete;
  thread_pool& operator=(const thread_pool&) = delete;

  /// Runs f(args...) on a worker; the future holds its result or exception. `f` and
  /// `args` are decay-copied into the job (as std::thread does). If `f` takes a
  /// std::stop_token first, it gets the pool's shutdown token (see shutdown_token()).
  /// Throws eddy::pool_closed after shutdown has begun.
  ///
  /// **Thread safety:** any thread. From one of this pool's workers the job goes on that
  /// worker's own deque (cheap, and stealable by the others).
  /// **Cancel safety:** see job_options.
  ///
  /// ```cpp
  /// auto f = pool.submit([] { return read_config("/etc/app.conf"); });
  /// ```
  template <class F, class... Args>
  requires detail::not_job_options<F>
  [[nodiscard]] auto submit(F&& f, Args&&... args)
      -> std::future<detail::job_result_t<std::decay_t<F>, std::decay_t<Args>...>> {
    return submit(job_options{}, std::forward<F>(f), std::forward<Args>(args)...);
  }

  /// As above, with a stop token that cancels the job before it starts and a work class.
  /// Throws std::invalid_argument if the work class belongs to another pool.
  ///
  /// **Thread safety:** any thread.
  /// **Cancel safety:** see job_options.
  ///
  /// ```cpp
  /// std::stop_source stop;
  /// auto f = pool.submit(eddy::job_options{.stop = stop.get_token()},
  ///                      [](std::stop_token st) { while (!st.stop_requested()) step(); });
  /// stop.request_stop();
  /// ```
  template <class F, class... Args>
  [[nodiscard]] auto submit(const job_options& options, F&& f, Args&&... args)
      -> std::future<detail::job_result_t<std::decay_t<F>, std::decay_t<Args>...>> {
    using result = detail::job_result_t<std::decay_t<F>, std::decay_t<Args>...>;
    using job = detail::future_job<result, std::decay_t<F>, std::decay_t<Args>...>;
    const bool cancellable = options.stop.stop_possible();
    auto j = std::make_unique<job>(run_token_for<F, Args...>(options.stop), std::forward<F>(f),
                                   std::forward<Args>(args)...);
    std::future<result> fut = j->get_future();
    if (cancellable) j->cancel_on(options.stop);
    enqueue(j.get(), options.work);  // may throw; the unique_ptr still owns the job
    j.release();
    return fut;
  }

  /// Runs f(args...) on a worker with no result to wait for. An exception escaping `f`
  /// calls std::terminate (as one escaping a std::thread does). Throws eddy::pool_closed
  /// after shutdown has begun.
  ///
  /// **Thread safety:** any thread.
  /// **Cancel safety:** a posted job cannot be cancelled; it is dropped only by a
  /// shutdown that passes its deadline.
  ///
  /// ```cpp
  /// pool.post([&hits] { hits.fetch_add(1, std::memory_order_relaxed); });
  /// ```
  template <class F, class... Args>
  void post(F&& f, Args&&... args) {
    using job = detail::posted_job<std::decay_t<F>, std::decay_t<Args>...>;
    auto j = std::make_unique<job>(run_token_for<F, Args...>(std::stop_token{}), std::forward<F>(f),
                                   std::forward<Args>(args)...);
    enqueue(j.get(), nullptr);
    j.release();
  }

  /// Stops accepting outside submissions, then waits up to `timeout` for the queued and
  /// running jobs to finish and the workers to exit (jobs running in the pool may still
  /// submit sub-jobs meanwhile). Past the deadline it requests stop on shutdown_token(),
  /// drops every job not yet started (futures get eddy::job_cancelled) and returns
  /// without waiting for jobs still running; the destructor waits for those. Returns
  /// true if every job ran and every worker exited in time. Idempotent; a negative
  /// timeout throws std::invalid_argument.
  ///
  /// **Thread safety:** any thread except this pool's workers (std::logic_error).
  /// **Cancel safety:** blocking; not a coroutine.
  ///
  /// ```cpp
  /// if (!pool.shutdown(std::chrono::seconds(2))) log("some jobs were dropped or still run");
  /// ```
  template <class Rep, class Period>
  bool shutdown(std::chrono::duration<Rep, Period> timeout) {
    return shutdown_for(std::chrono::duration_cast<std::chrono::nanoseconds>(timeout));
  }

  /// A snapshot of the pool's counters.
  ///
  /// **Thread safety:** any thread; lock-free except for a short lock on the idle list.
  /// Each worker writes its own latency counters (relaxed atomics, no locked
  /// instruction); stats() sums them, so a job finishing meanwhile may be counted in
  /// `count` and not yet in a bucket, or the reverse: they agree once the pool is idle.
  /// **Cancel safety:** not an operation.
  ///
  /// ```cpp
  /// assert(pool.stats().queued == 0);
  /// ```
  pool_stats stats() const;

  /// The configured thread limit (`pool_options::threads`) and name.
  ///
  /// **Thread safety:** any thread.
  /// **Cancel safety:** not operations.
  ///
  /// ```cpp
  /// std::printf("%s: up to %zu threads\n", pool.name().c_str(), pool.max_threads());
  /// ```
  std::size_t max_threads() const noexcept;
  const std::string& name() const noexcept;

  /// Stop is requested on this token when shutdown() passes its deadline. Jobs that take
  /// a std::stop_token and were given none through job_options receive this one.
  ///
  /// **Thread safety:** any thread.
  /// **Cancel safety:** not an operation.
  ///
  /// ```cpp
  /// pool.post([](std::stop_token st) { while (!st.stop_requested()) poll_device(); });
  /// ```
  std::stop_token shutdown_token() const noexcept;

  /// The pool whose worker is the calling thread, or nullptr.
  ///
  /// **Thread safety:** any thread (it reads a thread-local).
  /// **Cancel safety:** not an operation.
  ///
  /// ```cpp
  /// if (eddy::thread_pool::current() == &eddy::cpu_pool()) { /* on a cpu worker */ }
  /// ```
  static thread_pool* current() noexcept;

  /// Not API (used by offload.hpp): queues a job built by the caller. On success the
  /// pool owns it; on failure (pool_closed, invalid_argument) the caller still does.
  void enqueue(detail::pool_job* job, work_class* work);

 private:
  friend class work_class;

  template <class F, class... Args>
  std::stop_token run_token_for(const std::stop_token& given) const {
    if constexpr (detail::takes_stop_token_v<std::decay_t<F>, std::decay_t<Args>...>)
      return given.stop_possible() ? given : shutdown_token();
    else
      return {};
  }

  bool shutdown_for(std::chrono::nanoseconds timeout);

  std::unique_ptr<detail::pool_core> core_;
};

/// The pool for CPU work: one worker per CPU this process may run on
/// (sched_getaffinity), fixed, named "eddy-cpu-N". Created on first use and never
/// destroyed (its threads sleep at exit, so no job is cut off by a static destructor).
///
/// **Thread safety:** any thread; the first call constructs it (thread-safe static).
/// **Cancel safety:** not an operation.
///
/// ```cpp
/// auto sum = eddy::cpu_pool().submit([&] { return std::reduce(v.begin(), v.end()); });
/// ```
thread_pool& cpu_pool();

/// The pool for blocking calls: elastic, up to 512 workers named "eddy-blk-N", each
/// retiring after 10 s idle (tokio's spawn_blocking limits). Created on first use and
/// never destroyed.
///
/// **Thread safety:** any thread.
/// **Cancel safety:** not an operation.
///
/// ```cpp
/// auto text = eddy::blocking_pool().submit([] { return slurp("/proc/meminfo"); });
/// ```
thread_pool& blocking_pool();

/// The work class for slow, unbounded-latency calls on blocking_pool() (getaddrinfo,
/// eddy::resolve): at most 16 at once, so a burst of lookups against a dead DNS server
/// leaves the rest of the pool to other blocking calls.
///
/// **Thread safety:** any thread.
/// **Cancel safety:** not an operation.
///
/// ```cpp
/// auto f = eddy::blocking_pool().submit(eddy::job_options{.work = &eddy::slow_work_class()},
///                                       [] { return gethostname_slow(); });
/// ```
work_class& slow_work_class();

/// The work class of eddy::to_thread on blocking_pool(): at most 496 (512 - 16) calls at
/// once, so that a flood of blocking calls always leaves slow_work_class() its 16
/// threads (and DNS keeps working while every other thread is stuck).
///
/// **Thread safety:** any thread.
/// **Cancel safety:** not an operation.
///
/// ```cpp
/// auto f = eddy::blocking_pool().submit(eddy::job_options{.work = &eddy::blocking_work_class()},
///                                       [] { return read_sensor(); });
/// ```
work_class& blocking_work_class();

}  // namespace eddy
