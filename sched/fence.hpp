// seq_cst_fence(): std::atomic_thread_fence(seq_cst), quiet under ThreadSanitizer.
//
// TSan does not model fences (GCC warns with -Wtsan). The pool uses full fences only to
// order a store before a load across threads (the Dekker pairs of the parking protocol
// and of Chase-Lev pop/steal); no data is ever published through a fence alone (jobs
// travel by release/acquire or under a mutex), so TSan misses no happens-before edge
// that it needs. The fence stays in TSan builds; only the warning is silenced.
#pragma once

#include <atomic>

namespace eddy::sched_detail {

#if defined(__GNUC__) && !defined(__clang__)
// The builtin that std::atomic_thread_fence wraps, called here so that the pragma
// covers the line GCC warns about.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wtsan"
inline void seq_cst_fence() noexcept {
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
}
#pragma GCC diagnostic pop
#else
inline void seq_cst_fence() noexcept {
  std::atomic_thread_fence(std::memory_order_seq_cst);
}
#endif

}  // namespace eddy::sched_detail
