// eddy::loop_handle: what other threads (and other loops) hold to reach a loop.
#pragma once

#include <memory>
#include <type_traits>
#include <utility>

#include <eddy/runtime/detail/remote_queue.hpp>

namespace eddy {

/// What other threads hold to reach a loop: its only power is to post.
///
/// Copyable and cheap; it may outlive the loop (posting then returns false).
///
/// **Thread safety:** every member may be called from any thread.
/// **Cancel safety:** n/a (not awaitable).
///
/// ```cpp
/// eddy::loop_handle h = eddy::loop::current().handle();
/// std::thread([h] { (void)h.call_soon_threadsafe([] { std::puts("hi"); }); }).detach();
/// ```
class loop_handle {
 public:
  loop_handle() = default;
  explicit loop_handle(std::shared_ptr<detail::loop_shared> s) noexcept : s_(std::move(s)) {}

  /// Runs `f()` on the loop thread soon. Wakeups are coalesced: posting to a busy
  /// loop makes no system call. Returns false, without running or keeping `f`, if
  /// the loop is closed. Callbacks from one thread run in the order posted.
  template <class F>
  [[nodiscard]] bool call_soon_threadsafe(F&& f) const {
    if (!s_) return false;
    using fn_t = std::decay_t<F>;
    return s_->post(new detail::remote_callback<fn_t>(fn_t(std::forward<F>(f))));
  }

  /// Asks the loop to stop after its current iteration (`loop::run_forever`
  /// returns; `loop::run(task)` throws). Returns false if the loop is closed.
  bool stop() const noexcept;

  bool valid() const noexcept { return static_cast<bool>(s_); }

 private:
  std::shared_ptr<detail::loop_shared> s_;
};

}  // namespace eddy
