// eddy::spawn_on: start a task on another loop and await its result from this one
// (DESIGN.md §8).
//
// Protocol (three threads may be involved: the home loop that spawns and awaits, the
// target loop that runs the task, and whoever closes either):
//  1. spawn_on (home thread) makes the shared state and posts a `starter` to the
//     target with loop_handle::call_soon_threadsafe (coalesced wakeup). The task's
//     frame travels inside the starter untouched: it is first resumed, and finally
//     destroyed, on the target, inside a runner task spawned there.
//  2. The runner awaits the task, stores its value or exception in the state and
//     posts a completion to the home loop; only there is the awaiting coroutine
//     scheduled. Results pass through the posts, whose queue orders the writes.
//  3. Cancelling (cancel() or cancelling the awaiting task) posts a cancel to the
//     target, after the starter (posts from one thread keep their order), which
//     cancels the runner and with it the task. The awaiter keeps waiting for the
//     task to finish and then resumes with its outcome (usually cancelled_error).
//  4. A target loop that closes before the task finished: the starter is dropped
//     unrun, or runs on a closed loop, or the runner is cancelled by close(); each
//     path completes the call with loop_closed_error. A home loop cannot close while
//     a task awaits (close() waits for its tasks, and the completion still arrives).
// Fields are grouped by the thread that may touch them; nothing is shared without a
// post in between, so the state needs no lock.
#pragma once

#include <coroutine>
#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <variant>

#include <eddy/runtime/errors.hpp>
#include <eddy/runtime/loop.hpp>
#include <eddy/runtime/loop_handle.hpp>
#include <eddy/runtime/task.hpp>

namespace eddy {

namespace detail {

template <class T>
using cross_value_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

template <class T>
struct cross_state {
  // ---- set on the home thread before the first post; read-only afterwards ----
  loop_handle home;
  loop* home_loop = nullptr;
  loop_handle target;

  // ---- target thread only ----
  task_core* runner = nullptr;  // while the runner task is alive
  bool cancel_seen = false;

  // ---- written by the target before it posts the completion, read by home after ----
  std::optional<cross_value_t<T>> value;
  std::exception_ptr error;

  // ---- home thread only ----
  std::coroutine_handle<> waiter{};
  task_core* waiter_core = nullptr;
  bool done = false;
  bool detached = false;
  bool taken = false;
};

template <class T>
void cross_complete_on_home(const std::shared_ptr<cross_state<T>>& st) noexcept {
  st->done = true;
  if (st->waiter) {
    detail::loop_schedule(*st->home_loop, st->waiter_core, st->waiter);
  } else if (st->detached && st->error) {
    try {
      std::rethrow_exception(st->error);
    } catch (const cancelled_error&) {
    } catch (...) {
      st->home_loop->report_exception(st->error);
    }
  }
}

/// Target side: tells the home loop the call is over. If the home loop is closed,
/// nobody is waiting (close() waits for every task) and there is no one to tell.
template <class T>
void cross_post_completion(std::shared_ptr<cross_state<T>> st) noexcept {
  try {
    loop_handle home = st->home;
    (void)home.call_soon_threadsafe([s = std::move(st)] { cross_complete_on_home<T>(s); });
  } catch (...) {
    // Out of memory while posting: the awaiter cannot be told. Nothing better to do.
  }
}

template <class T>
void cross_fail_closed(std::shared_ptr<cross_state<T>> st) noexcept {
  st->error = std::make_exception_ptr(
      loop_closed_error("eddy::spawn_on: the target loop closed before the task finished"));
  cross_post_completion<T>(std::move(st));
}

template <class T>
task<void> cross_runner(std::shared_ptr<cross_state<T>> st, task<T> work) {
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(work);
      st->value.emplace();
    } else {
      st->value.emplace(co_await std::move(work));
    }
  } catch (const cancelled_error&) {
    if (st->runner != nullptr && st->runner->close_cancelled_ && !st->cancel_seen)
      st->error = std::make_exception_ptr(
          loop_closed_error("eddy::spawn_on: the target loop closed before the task finished"));
    else
      st->error = std::current_exception();
  } catch (...) {
    st->error = std::current_exception();
  }
  st->runner = nullptr;
  work = task<T>();  // the task's frame dies here, on its own loop
  cross_post_completion<T>(std::move(st));
}

/// Posted to the target: spawns the runner there. Dropped unrun (the target closed),
/// it fails the call instead.
template <class T>
struct cross_starter {
  std::shared_ptr<cross_state<T>> st;
  task<T> work;
  cross_starter(std::shared_ptr<cross_state<T>> s, task<T> w) noexcept
      : st(std::move(s)), work(std::move(w)) {}
  cross_starter(cross_starter&& o) noexcept = default;
  cross_starter& operator=(cross_starter&&) = delete;
  ~cross_starter() {
    if (st) cross_fail_closed<T>(std::move(st));
  }
  void operator()() {
    std::shared_ptr<cross_state<T>> s = std::move(st);
    loop* l = loop::current_or_null();
    try {
      if (l == nullptr || l->is_closed()) throw loop_closed_error("spawn_on");
      join_handle<void> h = l->spawn(cross_runner<T>(s, std::move(work)));
      s->runner = h.core();
      h.detach();
    } catch (...) {
      work = task<T>();
      cross_fail_closed<T>(std::move(s));
    }
  }
};

}  // namespace detail

/// What spawn_on returns: the join handle of a task running on another loop. Await
/// it for the task's result, `cancel()` it, or `detach()` it.
///
/// Dropping it detaches the task (as join_handle does): it keeps running, and an
/// exception nobody retrieved goes to the home loop's exception handler.
///
/// **Thread safety:** the home loop's thread only (the loop that called spawn_on).
/// **Cancel safety:** awaiting is a cancellation point. Cancelling the awaiting task
/// cancels the remote task and keeps waiting until it has finished on its loop, then
/// resumes with its outcome (usually cancelled_error; a value if the task finished
/// anyway), as awaiting a join_handle does. One cancel is forwarded per wait (the
/// remote task's state is not readable from here, so unlike join_handle it cannot
/// tell whether someone else already cancelled it); another stays pending on the
/// awaiting task for its next cancellation point.
template <class T>
class [[nodiscard]] cross_join_handle {
 public:
  cross_join_handle() noexcept = default;
  explicit cross_join_handle(std::shared_ptr<detail::cross_state<T>> st) noexcept
      : st_(std::move(st)) {}
  cross_join_handle(cross_join_handle&&) noexcept = default;
  cross_join_handle& operator=(cross_join_handle&& o) noexcept {
    if (this != &o) {
      detach();
      st_ = std::move(o.st_);
    }
    return *this;
  }
  ~cross_join_handle() { detach(); }

  bool valid() const noexcept { return static_cast<bool>(st_); }
  /// True once the result is back on this loop.
  bool done() const noexcept { return st_ && st_->done; }

  /// Asks the remote task to stop: it sees cancelled_error at its current or next
  /// await, on its own loop. No effect once it has finished.
  void cancel() const noexcept {
    if (!st_ || st_->done) return;
    try {
      (void)st_->target.call_soon_threadsafe([s = st_] {
        s->cancel_seen = true;
        if (s->runner != nullptr) s->runner->request_cancel();
      });
    } catch (...) {
    }
  }

  /// Lets the task run on without this handle.
  void detach() noexcept {
    if (!st_) return;
    auto st = std::move(st_);
    st->detached = true;
    if (st->done && !st->taken && st->error) {
      st->waiter = {};
      detail::cross_complete_on_home<T>(st);  // reports an unretrieved failure
    }
  }

  struct awaiter {
    detail::cross_state<T>* st;
    const cross_join_handle* self;
    detail::task_core* me = nullptr;
    struct back_hook : detail::cancel_hook {
      awaiter* owner;  // set when the hook is registered (await_suspend)
    };
    back_hook hook{{&forward_cancel}, nullptr};
    bool precancelled = false;
    bool forwarded = false;

    bool await_ready() {
      if (st == nullptr) throw std::logic_error("eddy::cross_join_handle: awaiting an empty handle");
      if (st->done) return true;
      if (detail::consume_pending_cancel()) {
        self->cancel();
        precancelled = true;
        return true;
      }
      return false;
    }
    void await_suspend(std::coroutine_handle<> h) {
      if (st->waiter) throw std::logic_error("eddy::cross_join_handle: a task has one awaiter");
      me = detail::current_core();
      st->waiter = h;
      st->waiter_core = me;
      hook.owner = this;
      if (me != nullptr) me->hook_ = &hook;
    }
    T await_resume() {
      if (me != nullptr && me->hook_ == &hook) me->hook_ = nullptr;
      st->waiter = {};
      if (precancelled) throw cancelled_error{};
      st->taken = true;
      if (st->error) std::rethrow_exception(st->error);
      if constexpr (!std::is_void_v<T>) return T(std::move(*st->value));
    }
    static bool forward_cancel(detail::cancel_hook* h) noexcept {
      // One cancel per wait is forwarded: a second, or one after the task
      // finished, stays pending on the awaiting task.
      awaiter* a = static_cast<back_hook*>(h)->owner;
      if (a->forwarded || a->st->done) return false;
      a->forwarded = true;
      a->self->cancel();
      return true;  // the completion resumes us, with the task's outcome
    }
  };
  /// Awaits the result: the task's value, or its exception rethrown;
  /// loop_closed_error if the target loop closed before the task finished.
  awaiter operator co_await() const noexcept { return awaiter{st_.get(), this}; }

 private:
  std::shared_ptr<detail::cross_state<T>> st_;
};

/// Starts `t` on the loop behind `target` (another loop of a loop_group, or any
/// loop's handle) and returns a handle to await its result on this loop. The task
/// is first resumed, and its frame destroyed, on the target loop. If the target
/// loop is closed, or closes before the task finishes, awaiting the handle throws
/// loop_closed_error.
///
/// Cost: one post each way (loop_handle::call_soon_threadsafe: no system call when
/// the other loop is busy, at most one per burst when it sleeps).
///
/// **Thread safety:** call on a loop thread (the home loop); `target` may be any loop,
/// including this one. **Cancel safety:** not a suspension point; see
/// cross_join_handle for awaiting.
///
/// ```cpp
/// eddy::task<int> work(int x) { co_return x * 2; }
/// int v = co_await eddy::spawn_on(group.handle(1), work(21));  // 42, computed on loop 1
/// ```
template <class T>
cross_join_handle<T> spawn_on(const loop_handle& target, task<T> t) {
  if (!t.valid()) throw std::invalid_argument("eddy::spawn_on: empty task");
  if (!target.valid()) throw std::invalid_argument("eddy::spawn_on: empty loop_handle");
  loop& home = loop::current();
  auto st = std::make_shared<detail::cross_state<T>>();
  st->home = home.handle();
  st->home_loop = &home;
  st->target = target;
  cross_join_handle<T> h(st);
  // If the target is closed, post() destroys the starter unrun, which fails the
  // call through the home loop like any other completion.
  (void)target.call_soon_threadsafe(detail::cross_starter<T>(st, std::move(t)));
  return h;
}

}  // namespace eddy
