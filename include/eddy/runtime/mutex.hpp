// eddy::mutex: mutual exclusion between tasks on one loop (asyncio.Lock).
#pragma once

#include <stdexcept>
#include <utility>

#include <eddy/runtime/detail/wait_list.hpp>

namespace eddy {

class mutex;

/// Owns a locked eddy::mutex; unlocks on destruction.
/// **Thread safety:** loop thread only. **Cancel safety:** n/a.
class mutex_guard {
 public:
  mutex_guard() noexcept = default;
  explicit mutex_guard(mutex* m) noexcept : m_(m) {}
  mutex_guard(mutex_guard&& o) noexcept : m_(std::exchange(o.m_, nullptr)) {}
  mutex_guard& operator=(mutex_guard&& o) noexcept {
    if (this != &o) {
      unlock();
      m_ = std::exchange(o.m_, nullptr);
    }
    return *this;
  }
  ~mutex_guard() { unlock(); }
  inline void unlock() noexcept;
  bool owns_lock() const noexcept { return m_ != nullptr; }

 private:
  mutex* m_ = nullptr;
};

/// A fair (FIFO) mutex for tasks. `unlock()` hands the lock straight to the first
/// waiter, so a stream of new lockers cannot starve a waiting one.
///
/// **Thread safety:** loop thread only. It never blocks a thread.
/// **Cancel safety:** `lock()` is cancel-safe: a cancelled waiter does not get the
/// lock. A waiter that was handed the lock just before its cancellation holds it
/// and sees the cancellation at its next await, so use `scoped_lock()` to make sure
/// it is released.
///
/// ```cpp
/// auto guard = co_await m.scoped_lock();
/// ```
class mutex {
 public:
  mutex() noexcept = default;
  mutex(const mutex&) = delete;
  mutex& operator=(const mutex&) = delete;

  bool try_lock() noexcept {
    if (locked_) return false;
    locked_ = true;
    return true;
  }
  /// Releases the lock (handing it to the first waiter, if any). Throws
  /// std::logic_error if the mutex is not locked.
  void unlock() {
    if (!locked_) throw std::logic_error("eddy::mutex::unlock: not locked");
    if (waiters_.grant_front() == nullptr) locked_ = false;
  }
  bool is_locked() const noexcept { return locked_; }

  struct [[nodiscard]] lock_awaiter : detail::waiter {
    mutex* m;
    explicit lock_awaiter(mutex* mm) noexcept : m(mm) {}
    bool await_ready() noexcept { return take_precancel() || m->try_lock(); }
    void await_suspend(std::coroutine_handle<> h) { suspend_on(m->waiters_, h); }
    void await_resume() { resume_check(); }
  };
  struct [[nodiscard]] guard_awaiter : lock_awaiter {
    using lock_awaiter::lock_awaiter;
    mutex_guard await_resume() {
      resume_check();
      return mutex_guard(m);
    }
  };
  /// Waits for the lock; the caller must `unlock()`. A cancellation point.
  lock_awaiter lock() noexcept { return lock_awaiter(this); }
  /// Waits for the lock and returns a guard that unlocks.
  guard_awaiter scoped_lock() noexcept { return guard_awaiter(this); }

 private:
  detail::wait_list waiters_;
  bool locked_ = false;
};

inline void mutex_guard::unlock() noexcept {
  if (m_ != nullptr) std::exchange(m_, nullptr)->unlock();
}

}  // namespace eddy
