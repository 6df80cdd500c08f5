// eddy::join_set: a set of tasks that do NOT fail together (tokio's JoinSet, an
// asyncio set of create_task()s), beside task_group, whose children do.
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <optional>
#include <utility>

#include <eddy/runtime/detail/wait_list.hpp>
#include <eddy/runtime/loop.hpp>
#include <eddy/runtime/outcome.hpp>
#include <eddy/runtime/task.hpp>

namespace eddy {

namespace detail {

// The part of join_set that does not depend on T (runtime/join_set.cpp).
class join_set_base {
 public:
  join_set_base(const join_set_base&) = delete;
  join_set_base& operator=(const join_set_base&) = delete;

  /// Requests cancellation of every running task; each ends with cancelled_error
  /// (or finishes normally if it completed first). The set stays usable.
  void cancel() noexcept;
  /// Tasks still running.
  std::size_t running() const noexcept { return running_; }
  /// Running tasks plus finished ones whose outcome next() has not taken yet.
  std::size_t size() const noexcept { return running_ + done_.size(); }
  bool empty() const noexcept { return size() == 0; }
  /// Waits until no task is running (tasks spawned meanwhile included). Outcomes
  /// stay for next(). Cancelling the caller cancels every task, still waits for
  /// all of them, then throws cancelled_error.
  task<void> join();
  /// cancel(), then join(): how a server stops its connections.
  task<void> shutdown();

 protected:
  using deliver_fn = void (*)(join_set_base*, task_core*) noexcept;
  explicit join_set_base(deliver_fn deliver);
  ~join_set_base();
  void adopt(task_core* c) noexcept;
  /// The next finished task (the set's reference moves to the caller), or nullptr.
  task_core* pop_done() noexcept;

  struct [[nodiscard]] finish_awaiter : waiter {
    join_set_base* s;
    explicit finish_awaiter(join_set_base* sp) noexcept : s(sp) {}
    bool await_ready() noexcept { return take_precancel() || !s->done_.empty() || s->running_ == 0; }
    void await_suspend(std::coroutine_handle<> h) { suspend_on(s->finish_waiters_, h); }
    void await_resume() { resume_check(); }
  };

 private:
  struct [[nodiscard]] join_awaiter : waiter {
    join_set_base* s;
    explicit join_awaiter(join_set_base* sp) noexcept : s(sp) {
      hook.request = &on_join_cancel;
      hook.describe = [](const cancel_hook*, wait_description& d) noexcept { d.kind = "join_set join"; };
    }
    bool await_ready() noexcept {
      if (take_precancel()) {  // forward it, and still wait for every task
        precancelled = false;
        s->join_cancelled_ = true;
        s->cancel();
      }
      return s->running_ == 0;
    }
    void await_suspend(std::coroutine_handle<> h) { suspend_on(s->joiners_, h); }
    void await_resume() { resume_check(); }
    static bool on_join_cancel(cancel_hook* hk) noexcept;
  };
  static void child_done(task_core* c, void* self) noexcept;

  loop* l_;
  deliver_fn deliver_;  // null: keep outcomes for next()
  task_core* head_ = nullptr;
  std::size_t running_ = 0;
  std::deque<task_core*> done_;  // each holds a handle reference
  wait_list finish_waiters_;
  wait_list joiners_;
  bool join_cancelled_ = false;
};

}  // namespace detail

/// A set of tasks that do not fail together: one task's exception cancels no other
/// task and not the task that owns the set. Every task's outcome (value, exception
/// or cancellation) is either kept for `next()`, in the order they finish (tokio's
/// `JoinSet::join_next`), or, when the set was made with a handler, passed to it as
/// the task finishes and then dropped, so a long-running server's set holds only
/// its live tasks (asyncio's "a set of tasks plus a done callback").
///
/// Use task_group instead when one failure should stop the rest (a request that
/// needs all its parts); use join_set for independent work — a server's
/// connections, a crawler's fetches — where a failure is reported and the others
/// carry on. Because a join_set never cancels its owner, a cancelled_error in the
/// owner always comes from outside (Ctrl-C under eddy::run, a timeout, a
/// `cancel()`), never from one of the set's tasks.
///
/// The set is cancellable and awaitable as a whole: `cancel()`, `join()` (wait for
/// all), `shutdown()` (both). Destroying a set cancels the tasks still running and
/// lets them finish on their own; an exception nobody took then goes to the loop's
/// exception handler, as for a detached task. With no handler, outcomes pile up
/// until `next()` takes them (as in tokio): a server that never calls next() should
/// pass a handler.
///
/// **Thread safety:** loop thread only (the loop the set was made on).
/// **Cancel safety:** `next()` is cancel-safe: a cancelled next() takes no
/// outcome, and every outcome stays for a later call. `join()` and `shutdown()`
/// forward a cancellation to every task and still wait for all of them.
///
/// ```cpp
/// eddy::join_set<> clients([](eddy::outcome<void> o) {
///   if (o.failed()) std::fprintf(stderr, "client: %s\n", o.message().c_str());
/// });
/// try {
///   for (;;) clients.spawn(serve(co_await listener.accept()));
/// } catch (const eddy::cancelled_error&) {  // Ctrl-C: never a client's failure
/// }
/// co_await clients.shutdown();  // (co_await is not allowed inside a catch block)
/// ```
template <class T = void>
class join_set : public detail::join_set_base {
 public:
  /// Called with each task's outcome as it finishes (on the loop thread). An
  /// exception escaping it goes to the loop's exception handler.
  using handler = std::function<void(outcome<T>)>;

  /// Keeps outcomes for next(). Throws std::logic_error off a loop thread.
  join_set() : join_set_base(nullptr) {}
  /// Passes each outcome to `on_finish` instead of keeping it. Throws
  /// std::invalid_argument for an empty handler, std::logic_error off a loop thread.
  explicit join_set(handler on_finish) : join_set_base(&deliver), on_finish_(std::move(on_finish)) {
    if (!on_finish_) throw std::invalid_argument("eddy::join_set: empty handler");
  }

  /// Starts `t` as a task of this set (on a later turn of the loop, as
  /// eddy::spawn). Throws std::logic_error for an empty task, loop_closed_error
  /// after the loop closed.
  void spawn(task<T> t, std::source_location site = std::source_location::current()) {
    join_handle<T> h = loop::current().spawn(std::move(t), site);
    detail::task_core* c = h.core();
    ++c->refs_;  // the set's reference, released when the outcome is delivered
    h.detach();
    adopt(c);
  }

  /// The outcome of the next task to finish, in finishing order, or std::nullopt
  /// once the set is empty. Throws std::logic_error on a set made with a handler.
  task<std::optional<outcome<T>>> next() {
    if (on_finish_) throw std::logic_error("eddy::join_set::next: this set passes outcomes to its handler");
    for (;;) {
      if (detail::task_core* c = pop_done()) {
        join_handle<T> owner(c);  // releases the set's reference
        co_return detail::settle<T>(c);
      }
      if (running() == 0) co_return std::nullopt;
      co_await finish_awaiter(this);
    }
  }

 private:
  static void deliver(detail::join_set_base* b, detail::task_core* c) noexcept {
    auto* self = static_cast<join_set*>(b);
    try {
      outcome<T> o = detail::settle<T>(c);
      detail::release_handle(c);
      self->on_finish_(std::move(o));
    } catch (...) {
      loop::current().report_exception(std::current_exception());
    }
  }

  handler on_finish_;
};

}  // namespace eddy
