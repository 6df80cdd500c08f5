// Options for a new eddy::loop (DESIGN.md §3, §4).
#pragma once

#include <chrono>

#include <eddy/io/backend_kind.hpp>

namespace eddy {

/// Options for a new loop. Every field is checked by the loop's constructor, which
/// throws std::invalid_argument naming the field, its range and the value given.
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
///
/// ```cpp
/// eddy::loop_options o;
/// o.backend = eddy::backend_kind::epoll;
/// o.ready_batch = 64;
/// eddy::loop l(o);
/// ```
struct loop_options {
  backend_kind backend = backend_kind::from_env;
  /// io_uring submission queue entries (power of two, 2..32768).
  unsigned uring_entries = 256;
  /// io_uring completion queue entries; 0 = twice uring_entries. (power of two,
  /// ≥ uring_entries, ≤ 65536). A small CQ is handled: overflow is never lost.
  unsigned uring_cq_entries = 0;
  /// Most ready callbacks and resumptions run per iteration before timers and I/O
  /// are polled (1..1,000,000); 0 = the default, 256.
  unsigned ready_batch = 0;
  /// Before blocking, poll the cross-thread queue for up to this long (0..1 ms;
  /// default 0 = never spin). On a VM a blocked thread is woken by an
  /// inter-processor interrupt that costs tens of µs; a short spin trades a
  /// little CPU after each burst of work for µs-scale cross-thread latency
  /// (Seastar's poll mode and Linux busy_poll make the same trade).
  std::chrono::microseconds idle_spin{0};
  /// How long a task awaiting an offloaded call (to_thread, run_cpu) may have the
  /// loop watch for its result before the loop blocks (0..1 ms; default 20 µs).
  /// The loop watches only while it has nothing else to do: no ready task, no
  /// due timer, no completion waiting; anything else ends the watch at once.
  /// 0 turns it off (every result then comes back through a wakeup).
  std::chrono::microseconds offload_spin{20};
};

}  // namespace eddy
