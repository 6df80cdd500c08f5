// The waiting half of one remote call, shared by process_pool and cluster_pool.
//
// A call lives in the frame of the coroutine that awaits it; its pool keeps a
// pointer to it wherever it waits (a queue, a helper's flights, the jobs in Redis)
// until the pool sets its outcome and wakes it. What is the same in both pools is
// here: the awaiting coroutine and its task, the cancel hook on that task, the
// awaiter, and the wake-up.
//
//   struct my_call : pending_call<my_call, my_outcome> { my_core* core; ... };
//
// The call type gives `core` with `submit(my_call*)` (takes the call; may finish it
// at once) and `cancel(my_call*) noexcept` (takes it back and finishes it as
// cancelled); the outcome enum has `pending` and `cancelled`. The pool finishes a
// call by filling in its own fields and then calling settle() on the loop thread.
//
// Cancellation: a cancel pending before the call had any effect wins (the call is
// never submitted); later, the hook asks the pool to cancel a call still pending,
// and does nothing once it is settled (its resumption is queued already).
#pragma once

#include <coroutine>
#include <eddy/runtime/loop.hpp>

namespace eddy::detail {

template <class Call, class Outcome>
struct pending_call {
  Outcome out = Outcome::pending;
  bool suspended = false;
  std::coroutine_handle<> h{};
  task_core* waiter = nullptr;
  cancel_hook hook;

  explicit pending_call(void (*describe)(const cancel_hook*, wait_description&) noexcept = nullptr)
      : hook{&on_cancel, describe} {}
  pending_call(const pending_call&) = delete;
  pending_call& operator=(const pending_call&) = delete;

  // Records the outcome and resumes the awaiting coroutine (if it is suspended).
  void settle(loop& l, Outcome o) noexcept {
    out = o;
    if (!suspended) return;
    suspended = false;
    if (waiter != nullptr && waiter->hook_ == &hook) waiter->hook_ = nullptr;
    loop_schedule(l, waiter, h);
  }

  struct awaiter {
    Call* c;
    bool await_ready() {
      if (consume_pending_cancel()) {
        c->out = Outcome::cancelled;
        return true;
      }
      c->core->submit(c);
      return c->out != Outcome::pending;
    }
    void await_suspend(std::coroutine_handle<> handle) noexcept {
      c->h = handle;
      c->waiter = current_core();
      c->suspended = true;
      if (c->waiter != nullptr) c->waiter->hook_ = &c->hook;
    }
    void await_resume() const noexcept {
      if (c->waiter != nullptr && c->waiter->hook_ == &c->hook) c->waiter->hook_ = nullptr;
    }
  };
  awaiter operator co_await() noexcept { return awaiter{static_cast<Call*>(this)}; }

 private:
  static bool on_cancel(cancel_hook* hk) noexcept {
    Call* c = static_cast<Call*>(outer_of(hk, &pending_call::hook));
    if (c->out != Outcome::pending) return false;
    c->core->cancel(c);
    return true;
  }
};

}  // namespace eddy::detail
