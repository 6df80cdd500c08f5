// Timers as awaitables: sleep_for, sleep_until, yield_now, with_timeout.
#pragma once

#include <chrono>
#include <stdexcept>
#include <string>

#include <eddy/runtime/detail/await_traits.hpp>
#include <eddy/runtime/loop.hpp>

namespace eddy {

namespace detail {

struct [[nodiscard]] sleep_awaiter {
  loop* l;
  std::int64_t deadline_ns;
  timer_node node{};
  cancel_hook hook{&on_cancel, &describe};
  task_core* core = nullptr;
  std::coroutine_handle<> h{};
  bool cancelled = false;

  sleep_awaiter(loop* lp, std::int64_t d) noexcept : l(lp), deadline_ns(d) {}
  sleep_awaiter(const sleep_awaiter&) = delete;
  // Movable only before it is awaited (with_timeout moves it into a child task):
  // the deadline travels, nothing is armed yet. An awaited awaiter never moves (it
  // lives in the suspended coroutine's frame).
  sleep_awaiter(sleep_awaiter&& o) noexcept : l(o.l), deadline_ns(o.deadline_ns) {}

  bool await_ready() {
    if (consume_pending_cancel()) {
      cancelled = true;
      return true;
    }
    return false;
  }
  void await_suspend(std::coroutine_handle<> hh) noexcept {
    h = hh;
    core = current_core();
    node.fire = &on_fire;
    detail::loop_timers(*l).arm(node, deadline_ns);
    if (core != nullptr) core->hook_ = &hook;
  }
  void await_resume() {
    if (core != nullptr) core->hook_ = nullptr;
    if (cancelled) throw cancelled_error{};
  }

  static void on_fire(timer_node* n) noexcept {
    sleep_awaiter* s = outer_of(n, &sleep_awaiter::node);
    detail::loop_schedule(*s->l, s->core, s->h);
  }
  static void describe(const cancel_hook* hk, wait_description& d) noexcept {
    d.kind = "timer";
    d.deadline_ns = outer_of(const_cast<cancel_hook*>(hk), &sleep_awaiter::hook)->deadline_ns;
  }
  static bool on_cancel(cancel_hook* hk) noexcept {
    sleep_awaiter* s = outer_of(hk, &sleep_awaiter::hook);
    if (!timer_wheel::armed(s->node)) return false;  // fired; resumption queued
    detail::loop_timers(*s->l).cancel(s->node);
    s->cancelled = true;
    detail::loop_schedule(*s->l, s->core, s->h);
    return true;
  }
};

struct [[nodiscard]] yield_awaiter {
  bool cancelled = false;
  bool await_ready() noexcept {
    cancelled = consume_pending_cancel();
    return cancelled;
  }
  void await_suspend(std::coroutine_handle<> h) { detail::loop_schedule(loop::current(), current_core(), h); }
  void await_resume() const {
    if (cancelled) throw cancelled_error{};
  }
};

template <class Rep, class Period>
std::int64_t checked_ns(std::chrono::duration<Rep, Period> d, const char* who) {
  if (d < d.zero()) throw std::invalid_argument(std::string(who) + ": negative duration");
  using ns = std::chrono::nanoseconds;
  constexpr auto max = std::chrono::duration_cast<std::chrono::duration<long double>>(ns::max() / 4);
  if (std::chrono::duration_cast<std::chrono::duration<long double>>(d) > max)
    throw std::invalid_argument(std::string(who) + ": duration longer than 73 years");
  return std::chrono::ceil<ns>(d).count();
}

template <class A>
task<await_result_t<A>> as_task(A a) {
  co_return co_await std::move(a);
}

// deadline_ns < 0: a relative limit, counted from when the returned task starts
// (its first await), not from when it was made: tasks are lazy.
template <class T>
task<T> timeout_task(std::int64_t deadline_ns, task<T> inner, std::string what = {},
                     std::int64_t limit_ns = 0) {
  loop& l = loop::current();
  if (deadline_ns < 0) deadline_ns = detail::loop_clock_ns(l) + limit_ns;
  join_handle<T> child = l.spawn(std::move(inner));
  bool expired = false;
  detail::task_core* c = child.core();
  struct expiry {
    detail::timer_node node{};
    detail::task_core* child;
    bool* expired;
    static void fire(detail::timer_node* n) noexcept {
      expiry* e = detail::outer_of(n, &expiry::node);
      *e->expired = true;
      e->child->request_cancel();
    }
  } ex{{}, c, &expired};
  ex.node.fire = &expiry::fire;
  detail::loop_timers(l).arm(ex.node, deadline_ns);
  try {
    if constexpr (std::is_void_v<T>) {
      co_await child;
      detail::loop_timers(l).cancel(ex.node);
    } else {
      decltype(auto) v = co_await child;
      detail::loop_timers(l).cancel(ex.node);
      co_return static_cast<T>(std::forward<decltype(v)>(v));
    }
  } catch (const cancelled_error&) {
    detail::loop_timers(l).cancel(ex.node);
    if (expired) throw timeout_error(what, std::chrono::nanoseconds(limit_ns));
    throw;
  } catch (...) {
    detail::loop_timers(l).cancel(ex.node);
    throw;
  }
}

}  // namespace detail

/// Suspends the current task for at least `d` (never less; on an idle loop at most
/// about one millisecond more). `sleep_for(0s)` yields to the loop once.
/// Throws std::invalid_argument for a negative duration.
///
/// **Thread safety:** loop thread only.
/// **Cancel safety:** cancel-safe: a cancelled sleep resumes with cancelled_error
/// and leaves nothing armed.
///
/// ```cpp
/// co_await eddy::sleep_for(std::chrono::milliseconds(10));
/// ```
template <class Rep, class Period>
detail::sleep_awaiter sleep_for(std::chrono::duration<Rep, Period> d) {
  const std::int64_t ns = detail::checked_ns(d, "eddy::sleep_for");
  loop& l = loop::current();
  return detail::sleep_awaiter(&l, detail::loop_clock_ns(l) + ns);
}

/// Suspends the current task until `when` on the loop clock (`eddy::clock`);
/// a time in the past yields once.
///
/// **Thread safety:** loop thread only. **Cancel safety:** as sleep_for.
inline detail::sleep_awaiter sleep_until(clock::time_point when) {
  loop& l = loop::current();
  return detail::sleep_awaiter(&l, detail::loop_to_ns(l, when));
}

/// Lets every other ready task run once, then resumes (asyncio's `sleep(0)`).
///
/// **Thread safety:** loop thread only.
/// **Cancel safety:** a cancellation point; nothing to undo.
inline detail::yield_awaiter yield_now() noexcept { return {}; }

/// Awaits `aw` until the time point `when` (on `eddy::clock`) at most: with_timeout
/// with an absolute deadline (tokio's `timeout_at`, asyncio's `timeout_at`). A
/// deadline already past still starts `aw` and cancels it at once. The
/// timeout_error names the limit as it was when with_deadline was called. Same
/// cancel safety as with_timeout; `what` names the operation as there.
///
/// **Thread safety:** loop thread only.
/// **Cancel safety:** as with_timeout.
///
/// ```cpp
/// const auto deadline = eddy::clock::now() + 5s;  // one budget for the whole exchange
/// auto line = co_await eddy::with_deadline(deadline, s.read_line(), "request line");
/// co_await eddy::with_deadline(deadline, s.write_all(reply));
/// ```
template <class A>
task<detail::await_result_t<A>> with_deadline(clock::time_point when, A aw, std::string what = {}) {
  loop& l = loop::current();
  using R = detail::await_result_t<A>;
  const std::int64_t at = detail::loop_to_ns(l, when);
  const std::int64_t now = detail::loop_clock_ns(l);
  const std::int64_t limit = at > now ? at - now : 0;
  const std::int64_t deadline = at > 0 ? at : 0;
  if constexpr (std::is_same_v<std::decay_t<A>, task<R>>) {
    return detail::timeout_task<R>(deadline, std::move(aw), std::move(what), limit);
  } else {
    return detail::timeout_task<R>(deadline, detail::as_task(std::move(aw)), std::move(what), limit);
  }
}

/// The same as with_deadline (tokio's and asyncio's name).
template <class A>
task<detail::await_result_t<A>> timeout_at(clock::time_point when, A aw, std::string what = {}) {
  return with_deadline(when, std::move(aw), std::move(what));
}

/// with_timeout, naming the operation for the error: the timeout_error's message
/// reads "eddy: <what> timed out after <d>" (without a name: "eddy: operation
/// timed out after <d>"). Same errors, thread safety and cancel safety.
///
/// ```cpp
/// co_await eddy::with_timeout(5s, s.read_line(), "reading the request line");
/// ```
template <class Rep, class Period, class A>
task<detail::await_result_t<A>> with_timeout(std::chrono::duration<Rep, Period> d, A aw, std::string what) {
  const std::int64_t ns = detail::checked_ns(d, "eddy::with_timeout");
  loop& l = loop::current();
  using R = detail::await_result_t<A>;
  (void)l;  // checks that a loop runs here
  if constexpr (std::is_same_v<std::decay_t<A>, task<R>>) {
    return detail::timeout_task<R>(-1, std::move(aw), std::move(what), ns);
  } else {
    return detail::timeout_task<R>(-1, detail::as_task(std::move(aw)), std::move(what), ns);
  }
}

/// Awaits `aw` for at most `d`, counted from when the returned task is first
/// awaited (tasks are lazy: a with_timeout made now and awaited later gets its
/// whole `d` then; use with_deadline for a fixed point in time). On expiry the
/// operation is cancelled, awaited until it has really stopped, and timeout_error
/// is thrown. Throws std::invalid_argument
/// for a negative duration. `aw` is any awaitable: a task, a sleep, an fd or socket
/// operation (`eddy::read(fd, buf)`), a channel or event wait; it runs as a child
/// task (so it starts on the next turn of the loop).
///
/// **Thread safety:** loop thread only.
/// **Cancel safety:** cancelling the caller cancels `aw` and throws
/// cancelled_error (not timeout_error); the operation's own cancel safety applies.
///
/// ```cpp
/// try { auto n = co_await eddy::with_timeout(1s, read_request()); }
/// catch (const eddy::timeout_error& e) { log(e.what()); }  // "... timed out after 1 s"
/// ```
template <class Rep, class Period, class A>
task<detail::await_result_t<A>> with_timeout(std::chrono::duration<Rep, Period> d, A aw) {
  return with_timeout(d, std::move(aw), std::string());
}

}  // namespace eddy
