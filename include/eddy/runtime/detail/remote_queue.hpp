// What other threads share with a loop: a lock-free MPSC stack of callbacks and the
// wakeup protocol. The stack is a Treiber push / take-all; the loop reverses what
// it takes to keep FIFO order per producer.
//
// Wakeup protocol (coalesced, no syscall while the loop is busy):
//   poster: push (seq_cst); if sleeping (seq_cst): backend wake(), which writes a
//           token only if none is on its way (the backend's wakeup_token).
//   loop:   sleeping = true (seq_cst); if the stack is non-empty, do not block;
//           after the wait: sleeping = false.
// The seq_cst store/load pairs form a Dekker handshake: either the loop sees the
// item before blocking or the poster sees the loop asleep and wakes it. "A token
// is on its way" is the backend's to clear, exactly where it reads the token (in
// a blocking wait or a non-blocking reap alike): a flag cleared anywhere else can
// outlive its token and silence every later post (io/backend.hpp).
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>

namespace eddy::detail {

class backend;

struct remote_node {
  remote_node* next = nullptr;
  void (*fn)(remote_node* self, bool run) = nullptr;
};

template <class F>
struct remote_callback final : remote_node {
  explicit remote_callback(F&& f) : f_(static_cast<F&&>(f)) { fn = &call; }
  static void call(remote_node* self, bool run) {
    auto* me = static_cast<remote_callback*>(self);
    struct guard {
      remote_callback* p;
      ~guard() { delete p; }
    } g{me};
    if (run) me->f_();
  }
  F f_;
};

struct loop_shared {
  std::atomic<remote_node*> head{nullptr};
  std::atomic<bool> sleeping{false};
  std::atomic<bool> stop_requested{false};
  // Posters in flight and the closed flag, so close() can wait until no poster
  // can still push or touch the backend.
  std::atomic<std::uint32_t> posters{0};
  std::atomic<bool> closed{false};
  backend* be = nullptr;
  std::atomic<std::uint64_t> wakeups{0};

  ~loop_shared();

  /// Thread-safe. Returns false (and destroys n) if the loop is closed.
  bool post(remote_node* n) noexcept;
  /// Thread-safe: asks the loop to wake up (used by post and stop).
  void wake() noexcept;
  remote_node* take_all() noexcept;
};

}  // namespace eddy::detail
