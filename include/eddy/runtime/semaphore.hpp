// eddy::semaphore: a counting semaphore for tasks (asyncio.Semaphore).
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <utility>

#include <eddy/runtime/detail/wait_list.hpp>

namespace eddy {

class semaphore;

/// One permit of an eddy::semaphore, released on destruction (tokio's
/// SemaphorePermit, asyncio's `async with sem:`). What `scoped_acquire()` returns.
/// **Thread safety:** loop thread only. **Cancel safety:** n/a.
class semaphore_permit {
 public:
  semaphore_permit() noexcept = default;
  explicit semaphore_permit(semaphore* s) noexcept : s_(s) {}
  semaphore_permit(semaphore_permit&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  semaphore_permit& operator=(semaphore_permit&& o) noexcept {
    if (this != &o) {
      release();
      s_ = std::exchange(o.s_, nullptr);
    }
    return *this;
  }
  ~semaphore_permit() { release(); }
  /// Gives the permit back now (once; later calls do nothing).
  inline void release() noexcept;
  /// True while this object holds a permit.
  bool owns_permit() const noexcept { return s_ != nullptr; }

 private:
  semaphore* s_ = nullptr;
};

/// A counting semaphore, fair (FIFO): a release goes to the longest waiter.
///
/// **Thread safety:** loop thread only; never blocks a thread.
/// **Cancel safety:** `acquire()` is cancel-safe: a cancelled waiter takes no
/// permit (one handed over just before the cancellation is kept, and the
/// cancellation is delivered at the next await).
///
/// ```cpp
/// eddy::semaphore limit(8);
/// {
///   auto permit = co_await limit.scoped_acquire();  // released at the end of the scope
///   co_await fetch(url);
/// }
/// co_await limit.acquire(); /* ... */ limit.release();  // the same, by hand
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
  struct [[nodiscard]] permit_awaiter : awaiter {
    using awaiter::awaiter;
    semaphore_permit await_resume() {
      resume_check();
      return semaphore_permit(s);
    }
  };
  /// Waits for a permit; the caller must `release()` it. A cancellation point.
  awaiter acquire() noexcept { return awaiter(this); }
  /// Waits for a permit and returns a guard that releases it (as mutex's
  /// scoped_lock). Cancel-safe as acquire(): a permit handed over just before a
  /// cancellation is held by the guard, so it is released all the same.
  permit_awaiter scoped_acquire() noexcept { return permit_awaiter(this); }

 private:
  detail::wait_list waiters_;
  std::size_t permits_;
};

inline void semaphore_permit::release() noexcept {
  // release(1) throws only past max_permits, which a held permit cannot reach.
  if (s_ != nullptr) std::exchange(s_, nullptr)->release(1);
}

}  // namespace eddy
