// eddy::timer_handle: what a task holds for a call_later / call_at callback.
#pragma once

#include <cstdint>
#include <utility>

#include <eddy/runtime/detail/timer_wheel.hpp>

namespace eddy {

class loop;

/// A cancellable handle to a `call_later` / `call_at` callback.
///
/// Dropping the handle does not cancel the callback (as asyncio's TimerHandle).
/// `cancel()` after the callback ran, or twice, does nothing.
///
/// **Thread safety:** loop thread only. **Cancel safety:** n/a.
class timer_handle {
 public:
  timer_handle() noexcept = default;
  timer_handle(timer_handle&& o) noexcept : n_(std::exchange(o.n_, nullptr)) {}
  timer_handle& operator=(timer_handle&& o) noexcept {
    if (this != &o) {
      reset();
      n_ = std::exchange(o.n_, nullptr);
    }
    return *this;
  }
  ~timer_handle() { reset(); }

  /// Prevents the callback from running if it has not run yet. Returns true if it
  /// was prevented.
  bool cancel() noexcept;
  /// True while the callback is still due to run.
  bool pending() const noexcept;

  /// detail, not API: the loop makes handles from its armed nodes.
  struct node;
  explicit timer_handle(node* n) noexcept : n_(n) {}

 private:
  void reset() noexcept;
  node* n_ = nullptr;
};

// The shared state behind a timer_handle (detail, not API).
struct timer_handle::node {
  detail::timer_node tn;
  loop* owner = nullptr;
  void (*invoke)(node*) = nullptr;
  void (*destroy)(node*) noexcept = nullptr;
  std::uint32_t refs = 2;  // the handle and the wheel/ready queue
  bool cancelled = false;
  bool fired = false;
  void release() noexcept {
    if (--refs == 0) destroy(this);
  }
};

}  // namespace eddy
