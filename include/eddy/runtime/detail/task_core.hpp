// The per-spawned-task state: who waits for it, what it is suspended on, and
// whether a cancellation is pending. Nested `co_await some_task()` chains share the
// core of the spawned task at their root.
//
// Cancellation protocol (DESIGN.md §2):
//  1. `request_cancel()` runs on the loop thread. If the task is suspended on a
//     cancellable operation, that operation registered a `cancel_hook`; the hook
//     asks the operation to stop (timer removal, io_uring ASYNC_CANCEL, unlinking
//     a waiter) and returns true when the operation will resume the task with
//     `cancelled_error`.
//  2. Otherwise (the task is running, queued to run, or its operation already
//     completed) the request is remembered in `cancel_pending_` and delivered at
//     the task's next cancellation point: every eddy awaitable that can suspend
//     checks it first, before having any effect.
//  3. An operation that completes successfully despite a cancel request delivers
//     its result and re-arms `cancel_pending_`: no completed I/O is ever lost to a
//     cancellation.
#pragma once

#include <coroutine>
#include <cstdint>
#include <source_location>
#include <utility>

namespace eddy {
class loop;
}

namespace eddy::detail {

struct promise_base;

/// What a suspended task waits for, as a task dump shows it (cancel_hook::describe).
struct wait_description {
  const char* kind = nullptr;    // "recv", "timer", "join", "event/mutex/semaphore/channel", ...
  int fd = -1;                   // the operation's fd, or -1
  std::int64_t deadline_ns = -1;  // a timer's deadline on the loop clock, or -1
};

struct cancel_hook {
  bool (*request)(cancel_hook*) noexcept;
  // Optional: fills in what the awaiting task waits for (task dumps). Costs nothing
  // until a dump asks.
  void (*describe)(const cancel_hook*, wait_description&) noexcept = nullptr;
};

class task_core {
 public:
  loop* loop_ = nullptr;
  promise_base* promise_ = nullptr;
  void* frame_ = nullptr;
  std::coroutine_handle<> waiter_{};
  task_core* waiter_core_ = nullptr;
  cancel_hook* hook_ = nullptr;
  task_core* live_prev_ = nullptr;
  task_core* live_next_ = nullptr;
  void (*on_done_)(task_core*, void*) noexcept = nullptr;
  void* on_done_arg_ = nullptr;
  task_core* group_prev_ = nullptr;  // sibling links inside a task_group
  task_core* group_next_ = nullptr;
  std::uint32_t refs_ = 2;  // the join handle and the running task
  bool done_ = false;
  bool cancel_pending_ = false;
  // A cancel hook took a cancel that the task has not yet seen: set when
  // request_cancel's hook accepts, cleared at the task's next cancellation point
  // (consume_pending_cancel). With cancel_pending_ it tells a join whether the
  // joined task can take another cancel or would swallow it (join_handle).
  bool cancel_accepted_ = false;
  bool result_taken_ = false;
  bool close_cancelled_ = false;
  bool scheduled_ = false;  // queued to run (task dumps)
  // Task dumps and per-task metrics (runtime/task_dump.cpp): where it was spawned,
  // the loop clock at spawn and at its last resumption, polls and time polled.
  std::source_location site_{};
  std::int64_t spawned_ns_ = 0;
  std::int64_t last_run_ns_ = 0;
  std::uint64_t polls_ = 0;
  std::uint64_t poll_ns_ = 0;

  /// Links this task first in a group's sibling list (task_group, join_set).
  void link_sibling(task_core*& head) noexcept {
    group_prev_ = nullptr;
    group_next_ = head;
    if (head != nullptr) head->group_prev_ = this;
    head = this;
  }
  /// Takes this task out of the sibling list headed by `head`.
  void unlink_sibling(task_core*& head) noexcept {
    if (group_prev_ != nullptr) group_prev_->group_next_ = group_next_;
    else head = group_next_;
    if (group_next_ != nullptr) group_next_->group_prev_ = group_prev_;
    group_prev_ = group_next_ = nullptr;
  }

  void request_cancel() noexcept {
    if (done_) return;
    if (cancel_hook* h = hook_; h != nullptr && h->request(h)) {
      cancel_accepted_ = true;
      return;
    }
    cancel_pending_ = true;
  }
  /// True while a cancel is requested and the task has not yet reached the
  /// cancellation point that delivers it; a further request would merge with it.
  bool cancel_undelivered() const noexcept { return cancel_pending_ || cancel_accepted_; }
};

[[gnu::tls_model("initial-exec")]] extern constinit thread_local task_core* tls_current_core;
/// Inline completions the running task may still make before it yields
/// (loop_options::coop_budget); the loop refills it at each resumption.
[[gnu::tls_model("initial-exec")]] extern constinit thread_local unsigned tls_coop_left;

// The task whose poll is being timed (loop_options::task_poll_times); cleared when
// it finishes, so the loop never touches a freed core.
[[gnu::tls_model("initial-exec")]] extern constinit thread_local task_core* tls_timed_core;

inline task_core* current_core() noexcept { return tls_current_core; }

/// Consumes a pending cancellation of the running task; every eddy awaitable that
/// can suspend calls this first (step 2 above).
inline bool consume_pending_cancel() noexcept {
  task_core* c = tls_current_core;
  if (c != nullptr && c->cancel_undelivered()) [[unlikely]] {
    c->cancel_accepted_ = false;  // a hook's cancel was delivered when it resumed
    return std::exchange(c->cancel_pending_, false);
  }
  return false;
}

/// Called from a spawned task's final suspend point; returns what to resume next.
std::coroutine_handle<> on_root_done(task_core* core) noexcept;

/// Drops the join handle's reference.
void release_handle(task_core* core) noexcept;

}  // namespace eddy::detail
