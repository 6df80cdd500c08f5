// eddy::event: a flag tasks can wait for (asyncio.Event).
#pragma once

#include <eddy/runtime/detail/wait_list.hpp>

namespace eddy {

/// A flag that tasks wait on. `set()` wakes every waiter (in the order they began
/// waiting); waits on a set event complete at once until `clear()`.
///
/// **Thread safety:** loop thread only (all users on one loop). From another
/// thread, post `set()` with `loop_handle::call_soon_threadsafe`.
/// **Cancel safety:** `wait()` is cancel-safe: a cancelled waiter is simply removed.
///
/// ```cpp
/// eddy::event ready;
/// // task A: co_await ready.wait();     task B: ready.set();
/// ```
class event {
 public:
  event() noexcept = default;
  explicit event(bool initially_set) noexcept : set_(initially_set) {}
  event(const event&) = delete;
  event& operator=(const event&) = delete;
  ~event() = default;

  void set() noexcept {
    set_ = true;
    waiters_.grant_all();
  }
  void clear() noexcept { set_ = false; }
  bool is_set() const noexcept { return set_; }
  std::size_t waiters() const noexcept { return waiters_.size; }

  struct [[nodiscard]] awaiter : detail::waiter {
    event* e;
    explicit awaiter(event* ev) noexcept : e(ev) {}
    bool await_ready() noexcept { return take_precancel() || e->set_; }
    void await_suspend(std::coroutine_handle<> h) { suspend_on(e->waiters_, h); }
    void await_resume() { resume_check(); }
  };
  /// Waits until the event is set.
  awaiter wait() noexcept { return awaiter(this); }

 private:
  detail::wait_list waiters_;
  bool set_ = false;
};

}  // namespace eddy
