// eddy::semaphore: a counting semaphore for tasks (asyncio.Semaphore).
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>

#include <eddy/runtime/detail/wait_list.hpp>

namespace eddy {

/// A counting semaphore, fair (FIFO): a release goes to the longest waiter.
///
/// **Thread safety:** loop thread only; never blocks a thread.
/// **Cancel safety:** `acquire()` is cancel-safe: a cancelled waiter takes no
/// permit (one handed over just before the cancellation is kept, and the
/// cancellation is delivered at the next await).
///
/// ```cpp
/// eddy::semaphore limit(8);
/// co_await limit.acquire(); /* ... */ limit.release();
/// ```
class semaphore {
 public:
  static constexpr std::size_t max_permits = std::size_t{1} << 48;

  /// Throws std::invalid_argument if `permits` exceeds max_permits.
  explicit semaphore(std::size_t permits) : permits_(permits) {
    if (permits > max_permits)
      throw std::invalid_argument("eddy::semaphore: at most 2^48 permits, got " + std::to_string(permits));
  }
  semaphore(const semaphore&) = delete;
  semaphore& operator=(const semaphore&) = delete;

  bool try_acquire() noexcept {
    if (permits_ == 0 || !waiters_.empty()) return false;
    --permits_;
    return true;
  }
  /// Returns `n` permits (n ≥ 1); throws std::invalid_argument past max_permits.
  void release(std::size_t n = 1) {
    if (n == 0 || n > max_permits - permits_)
      throw std::invalid_argument("eddy::semaphore::release: count must be 1..2^48 in total");
    while (n != 0 && waiters_.grant_front() != nullptr) --n;
    permits_ += n;
  }
  std::size_t available() const noexcept { return permits_; }
  std::size_t waiters() const noexcept { return waiters_.size; }

  struct [[nodiscard]] awaiter : detail::waiter {
    semaphore* s;
    explicit awaiter(semaphore* sp) noexcept : s(sp) {}
    bool await_ready() noexcept { return take_precancel() || s->try_acquire(); }
    void await_suspend(std::coroutine_handle<> h) { suspend_on(s->waiters_, h); }
    void await_resume() { resume_check(); }
  };
  awaiter acquire() noexcept { return awaiter(this); }

 private:
  detail::wait_list waiters_;
  std::size_t permits_;
};

}  // namespace eddy
