// Giving a burst's memory back (loop_options::trim_after_tasks).
//
// After thousands of connections come and go, their frames and buffers are free
// again but the memory stays with the process: the frame caches hold up to
// frame_cache_cap blocks per size class, and glibc's malloc returns free pages to
// the kernel only from the top of its heap, so a heap whose top is still in use
// keeps every free page below it resident. Measured on tcp_proxy at 5,000
// abandoned connections per cycle (io_uring): 16.7 MB in use and 27.7 MB free in
// the heap once the connections were gone, RSS rising from 34 to 45 MB over 14
// cycles; malloc_trim(0) brought it back to 28-32 MB each time.
//
// So the loop, once its live tasks have fallen far below their peak and it has
// then been idle for a short while, trims its thread's frame caches and calls
// malloc_trim(0), which also releases free pages in the middle of the heap
// (MADV_DONTNEED). It costs a walk of the heap, so it runs once per burst, never
// on a hot path.
#pragma once

#include <cstdint>

namespace eddy::detail {

/// How long the loop must have been idle after a burst before it trims.
inline constexpr std::int64_t trim_idle_ns = 100'000'000;

/// Trims this thread's frame caches and returns the heap's free pages to the kernel.
void release_idle_memory() noexcept;

}  // namespace eddy::detail
