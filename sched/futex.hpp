// Thin wrappers over the Linux futex syscall on a std::atomic<std::uint32_t>.
//
// std::atomic::wait has no timeout, and the pool needs one twice: an idle worker of an
// elastic pool retires after `idle_timeout`, and shutdown waits for workers until its
// deadline. Everything that publishes data still goes through the atomic itself (a
// release store before futex_wake, an acquire load after futex_wait returns), so the
// futex is only a sleeping aid and ThreadSanitizer sees every happens-before edge.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <ctime>

namespace eddy::sched_detail {

static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t),
              "futex needs a plain 32-bit word");

inline std::uint32_t* futex_addr(std::atomic<std::uint32_t>& word) {
  return reinterpret_cast<std::uint32_t*>(&word);
}

/// Sleeps while `word == expected`, at most `timeout` (negative: no limit). Returns on
/// wake, on a changed value, on a signal, or on timeout; the caller re-checks its state.
inline void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                       std::chrono::nanoseconds timeout = std::chrono::nanoseconds(-1)) {
  timespec ts{};
  timespec* tsp = nullptr;
  if (timeout.count() >= 0) {
    ts.tv_sec = static_cast<time_t>(timeout.count() / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(timeout.count() % 1'000'000'000);
    tsp = &ts;
  }
  // FUTEX_WAIT takes a relative timeout (CLOCK_MONOTONIC); EINTR and EAGAIN are fine:
  // every caller loops on its own condition.
  syscall(SYS_futex, futex_addr(word), FUTEX_WAIT_PRIVATE, expected, tsp, nullptr, 0);
}

inline void futex_wake(std::atomic<std::uint32_t>& word, int count) {
  syscall(SYS_futex, futex_addr(word), FUTEX_WAKE_PRIVATE, count, nullptr, nullptr, 0);
}

/// A pause hint for spin loops: it lets the sibling hyper-thread run and saves power.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

}  // namespace eddy::sched_detail
