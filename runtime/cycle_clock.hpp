// A cheap "how long has this batch run?" counter for the loop's hot path.
//
// The ready batch asks after every entry whether it has run long enough that the
// I/O it queued should go to the kernel now (loop_options::submit_after). A
// clock_gettime through the vDSO costs 23 ns here; the TSC it is built on costs
// 10 ns to read directly, which is what the loop uses on x86-64. Elsewhere it is
// the monotonic clock in nanoseconds. Only differences between two reads on the
// same thread are used, and only to decide when to submit early: a counter that
// jumps (a VM moved to another host) costs at most one early submit.
#pragma once

#include <cstdint>

namespace eddy::detail {

/// The counter: TSC ticks on x86-64, nanoseconds elsewhere.
std::uint64_t cycle_count() noexcept;

/// Counter ticks per microsecond, measured once per process (about 20 µs of
/// spinning on first use; 1000 where the counter is the clock). Thread-safe.
std::uint64_t cycles_per_us() noexcept;

}  // namespace eddy::detail
