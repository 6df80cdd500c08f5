// eddy::cluster_pool: process_pool's calls across machines, through Redis Streams
// (DESIGN.md §13). Callers XADD jobs to one stream; workers (eddy::cluster_worker_main,
// any number of processes on any number of machines) read them in one consumer
// group; each result comes back on its caller's own stream. docs/cluster_pool.md has
// the protocol, the guarantees and the arithmetic of spreading it over machines.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <eddy/runtime/task.hpp>
#include <eddy/sched/detail/remote_call.hpp>
#include <eddy/sched/remote.hpp>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace eddy {

class loop;

/// The Redis server could not be used: unreachable for longer than `broker_timeout`,
/// it refused the login (wrong password, unknown user), it refused a command (out of
/// memory: OOM), or the pool was shut down. The message names the server (never the
/// password) and quotes Redis's own error.
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
///
/// ```cpp
/// try { co_await pool.call<work>(x); }
/// catch (const eddy::broker_error& e) { log(e.what()); }  // "... Redis at redis://..."
/// ```
class broker_error : public std::runtime_error {
 public:
  explicit broker_error(const std::string& what) : std::runtime_error("eddy: " + what) {}
};

/// A job was delivered `max_deliveries` times and never finished (each worker that
/// took it died or hung): a poison job. It was moved to the dead-letter stream
/// (`<ns>:dead`, with its function, arguments, caller and delivery count) and its call
/// fails with this error, which says so.
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
///
/// ```cpp
/// try { co_await pool.call<parse>(blob); }
/// catch (const eddy::dead_letter_error& e) { quarantine(blob); }
/// ```
class dead_letter_error : public std::runtime_error {
 public:
  explicit dead_letter_error(const std::string& what) : std::runtime_error("eddy: " + what) {}
};

/// Options of a cluster_pool (the caller's side). Checked by the constructor
/// (std::invalid_argument names the field).
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
struct cluster_pool_options {
  /// Prefix of every key: `<ns>:jobs` (the job stream), `<ns>:workers` (its consumer
  /// group), `<ns>:dead` (dead letters), `<ns>:res:<caller>` (this caller's results).
  /// 1..64 bytes of [A-Za-z0-9_.-:{}] (braces: a Redis Cluster hash tag such as
  /// "{video}" keeps every key of the pool in one slot). Workers must use the same.
  std::string ns = "eddy";
  /// Jobs of this caller in Redis at once (1..1,000,000); further calls wait in the
  /// caller's memory (backpressure: a caller never floods the broker).
  unsigned max_in_flight = 4096;
  /// Largest encoded arguments, 1 KiB..512 MiB (Redis's own bulk-string limit).
  std::uint64_t max_message_size = std::uint64_t{64} << 20;
  /// How long the broker may stay unreachable (refused connections, no answer)
  /// before every waiting call fails with broker_error (10 ms..1 h). New calls fail at
  /// once while it stays down, until a reconnect succeeds. Also bounds a connect.
  std::chrono::milliseconds broker_timeout{5000};
};

/// Counters from `cluster_pool::stats()`.
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
///
/// ```cpp
/// if (pool.stats().duplicates_dropped > 0) log("a job ran twice (at-least-once)");
/// ```
struct cluster_pool_stats {
  bool connected = false;                ///< both connections to Redis are up
  std::size_t waiting = 0;               ///< calls not yet in Redis (max_in_flight, down)
  std::size_t in_flight = 0;             ///< jobs in Redis awaiting their result
  std::uint64_t submitted = 0;           ///< XADDs sent (resends after a reconnect count)
  std::uint64_t results = 0;             ///< results delivered to a caller
  std::uint64_t duplicates_dropped = 0;  ///< results for a job already answered or cancelled
  std::uint64_t reconnects = 0;          ///< successful connects after the first
};

namespace detail {
class cluster_core;
task<std::vector<char>> cluster_exchange(std::shared_ptr<cluster_core> core,
                                         const remote_entry* entry, std::vector<char> args);
std::shared_ptr<cluster_core> make_cluster_core(loop& l, std::string_view url,
                                                const cluster_pool_options& opts);
void close_cluster_core(cluster_core& core) noexcept;
task<void> shutdown_cluster_core(std::shared_ptr<cluster_core> core);
task<void> cluster_core_connected(std::shared_ptr<cluster_core> core);
cluster_pool_stats cluster_core_stats(const cluster_core& core) noexcept;
const std::string& cluster_core_caller(const cluster_core& core) noexcept;
void cluster_check_size(const cluster_core& core, std::string_view name, std::size_t n);
}  // namespace detail

/// process_pool's call surface over Redis Streams: `co_await pool.call<fn>(args...)`
/// runs an EDDY_REMOTE function on whichever worker takes the job, on this machine
/// or another.
///
/// **Delivery.** At least once: a job whose worker dies (or hangs without
/// heartbeats for `claim_after`) is claimed by another worker and runs again, so
/// functions should be idempotent or tolerate a second run. The caller sees one
/// result per call: the first to arrive; later duplicates are dropped (and counted).
/// A job delivered `max_deliveries` times goes to the dead-letter stream and its call
/// throws dead_letter_error.
///
/// **Errors.** remote_error (the function threw), remote_call_error (unknown name,
/// signature differs between caller and worker, undecodable payload, too large),
/// dead_letter_error (poison job), broker_error (Redis unreachable past
/// `broker_timeout`, wrong password, out of memory; names the server). A call has no
/// deadline of its own while Redis is up and no worker reads the jobs (as with any
/// queue): bound it with `eddy::with_timeout`.
///
/// **Broker restarts.** Both connections reconnect with backoff. Jobs whose XADD was
/// not acknowledged are sent again; after a reconnect the caller reads the results
/// it missed and re-sends any job of its own that Redis no longer has (a restart
/// without AOF), so a restart loses no call: each ends with its result or, past
/// `broker_timeout` down, broker_error.
///
/// **Thread safety:** bound to the loop it was created on; use and destroy it on
/// that loop's thread.
/// **Cancel safety:** cancelling a call that is not yet in Redis forgets it;
/// cancelling one in Redis deletes its job (XDEL): a worker that has not taken it
/// never runs it; a worker already running it finishes and its result is dropped.
/// Either way the call throws cancelled_error.
///
/// ```cpp
/// static long fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
/// EDDY_REMOTE(fib);
///
/// eddy::task<void> caller() {
///   eddy::cluster_pool pool("redis://:secret@10.0.0.5:6379/0");
///   long a = co_await pool.call<fib>(30);
///   long b = co_await pool.call<long>("fib", 31);
/// }
/// // on every worker machine, the same program:  return eddy::cluster_worker_main(url);
/// ```
class cluster_pool {
 public:
  /// Starts connecting to the Redis server at `url` on the current thread's loop:
  /// `redis://[[user]:password@]host[:port][/db]` (IPv6 hosts in brackets) or
  /// `unix:/path/redis.sock[?db=N&user=U&password=P]`. A malformed URL or option throws
  /// std::invalid_argument; an unreachable server is reported by calls (or by
  /// connected()), not by the constructor.
  explicit cluster_pool(std::string_view url, cluster_pool_options options = {});
  cluster_pool(loop& l, std::string_view url, cluster_pool_options options);
  /// Fails calls still waiting with broker_error ("shut down") and closes the
  /// connections. Jobs already in Redis still run; their results expire unread.
  ~cluster_pool();
  cluster_pool(const cluster_pool&) = delete;
  cluster_pool& operator=(const cluster_pool&) = delete;

  /// Runs the registered function `Fn` on a worker with `args` converted to its
  /// parameter types (encoded before this returns: temporaries are safe).
  template <auto Fn, class... A>
  task<detail::remote_result_t<Fn>> call(A&&... args) {
    static const detail::remote_entry* entry = detail::entry_of<Fn>("cluster_pool::call");
    std::vector<char> bytes = detail::encode_call<Fn>(std::forward<A>(args)...);
    detail::cluster_check_size(*core_, entry->name, bytes.size());
    return detail::finish_call<detail::remote_result_t<Fn>>(
        detail::cluster_exchange(core_, entry, std::move(bytes)), entry);
  }

  /// Runs the function registered as `name`, which must have exactly the signature
  /// `R(stored_t<A>...)` here (string literals travel as std::string); the worker
  /// checks the signature hash again and refuses a mismatch (remote_call_error).
  template <class R = void, class... A>
  task<R> call(std::string_view name, A&&... args) {
    const detail::remote_entry* entry = detail::entry_named<R, A...>(name);
    std::vector<char> bytes;
    detail::encode_args(bytes, std::forward<A>(args)...);
    detail::cluster_check_size(*core_, entry->name, bytes.size());
    return detail::finish_call<std::remove_cvref_t<R>>(
        detail::cluster_exchange(core_, entry, std::move(bytes)), entry);
  }

  /// Waits until the pool is connected and logged in; throws broker_error once the
  /// broker has been unreachable (or refused the login) for `broker_timeout`.
  ///
  /// **Thread safety:** loop thread only. **Cancel safety:** cancel-safe.
  ///
  /// ```cpp
  /// co_await pool.connected();  // fail fast on a wrong URL or password
  /// ```
  task<void> connected() { return detail::cluster_core_connected(core_); }

  /// Fails waiting calls, deletes this caller's result stream and closes the
  /// connections; returns when they are closed.
  ///
  /// **Thread safety:** loop thread only. **Cancel safety:** cancel-safe.
  ///
  /// ```cpp
  /// co_await pool.shutdown();
  /// ```
  task<void> shutdown() { return detail::shutdown_cluster_core(core_); }

  /// Current counters. Loop thread only.
  cluster_pool_stats stats() const noexcept { return detail::cluster_core_stats(*core_); }
  /// This caller's id (its results arrive on `<ns>:res:<id>`).
  const std::string& caller_id() const noexcept { return detail::cluster_core_caller(*core_); }

 private:
  std::shared_ptr<detail::cluster_core> core_;
};

/// Options of a worker. Checked by cluster_worker_main (std::invalid_argument).
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
struct cluster_worker_options {
  /// Jobs run at once (1..1024), each on its own thread of the worker's pool; with 1,
  /// on the thread that called cluster_worker_main (no hand-off to another thread
  /// per job), while a side thread heartbeats it.
  unsigned concurrency = 1;
  /// Key prefix; the callers' cluster_pool_options::ns.
  std::string ns = "eddy";
  /// A job pending this long without a heartbeat from its worker is claimed by
  /// another (XAUTOCLAIM), 10 ms..1 day. Celery's visibility timeout is an hour by
  /// default; a few seconds here, since running jobs heartbeat.
  std::chrono::milliseconds claim_after{5000};
  /// How often a running job's idle time is reset (XCLAIM JUSTID); 0 means
  /// claim_after / 3. Must be below claim_after.
  std::chrono::milliseconds heartbeat{0};
  /// A job claimed for its (max_deliveries + 1)-th delivery is dead-lettered instead
  /// of run (1..1000).
  unsigned max_deliveries = 3;
  /// Largest result, 1 KiB..512 MiB; a larger one fails its call (remote_call_error).
  std::uint64_t max_message_size = std::uint64_t{64} << 20;
  /// How long a result stream lives unread (a caller that died), 1 s..30 days.
  std::chrono::milliseconds result_ttl{std::chrono::hours(24)};
  /// This worker's consumer name in the group; "" means host:pid.
  std::string consumer;
  /// Print one line per connect, reconnect and dead letter on stderr.
  bool verbose = false;
};

/// Runs a worker until SIGTERM or SIGINT: reads jobs from the consumer group, runs
/// their functions (registered with EDDY_REMOTE in this program) `concurrency` at a
/// time (see cluster_worker_options::concurrency), answers each caller, heartbeats
/// running jobs, claims the jobs of dead workers, dead-letters poison jobs, and
/// reconnects with backoff when Redis goes away. On SIGTERM it stops taking jobs,
/// finishes and acknowledges the running ones, leaves the group and returns 0. Returns 2 (after printing why) for a
/// bad URL or option, 1 when the login is refused.
///
/// Creates its own loop on the calling thread; call from main().
///
/// **Thread safety:** blocks the calling thread. **Cancel safety:** n/a.
///
/// ```cpp
/// int main(int argc, char** argv) {
///   return eddy::cluster_worker_main(argv[1], {.concurrency = 4});
/// }
/// ```
int cluster_worker_main(std::string_view url, cluster_worker_options options = {});

}  // namespace eddy
