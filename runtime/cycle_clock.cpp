#include "runtime/cycle_clock.hpp"

#include <chrono>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

namespace eddy::detail {
namespace {

std::uint64_t monotonic_ns() noexcept {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

}  // namespace

#if defined(__x86_64__)

std::uint64_t cycle_count() noexcept { return __rdtsc(); }

std::uint64_t cycles_per_us() noexcept {
  // Two reads of each, 20 µs apart: the clock's nanosecond resolution makes the
  // ratio good to about 0.1 %, which is far more than a threshold needs.
  static const std::uint64_t per_us = [] {
    const std::uint64_t n0 = monotonic_ns();
    const std::uint64_t c0 = __rdtsc();
    std::uint64_t n1 = n0;
    while (n1 - n0 < 20'000) n1 = monotonic_ns();
    const std::uint64_t c1 = __rdtsc();
    const std::uint64_t r = (c1 - c0) * 1000 / (n1 - n0);
    return r != 0 ? r : 1;  // a TSC slower than 1 MHz: treat it as 1 tick per µs
  }();
  return per_us;
}

#else

std::uint64_t cycle_count() noexcept { return monotonic_ns(); }
std::uint64_t cycles_per_us() noexcept { return 1000; }

#endif

}  // namespace eddy::detail
