// A FIFO of suspended tasks, shared by event, mutex, semaphore and channel.
//
// A waiter is linked while it waits. Whoever grants it (set, unlock, release, a
// channel hand-off) unlinks it, marks it granted and schedules its resumption.
// Cancellation unlinks a still-linked waiter and schedules it with `cancelled`;
// a waiter already granted cannot be cancelled (the hook returns false and the
// cancellation is delivered at the task's next await): what was handed over is
// never lost.
#pragma once

#include <coroutine>
#include <cstddef>

#include <eddy/detail/intrusive_list.hpp>
#include <eddy/runtime/detail/await_traits.hpp>
#include <eddy/runtime/errors.hpp>
#include <eddy/runtime/loop.hpp>

namespace eddy::detail {

struct wait_list;

struct waiter {
  waiter* next = nullptr;
  waiter* prev = nullptr;
  wait_list* list = nullptr;
  loop* l = nullptr;
  task_core* core = nullptr;
  std::coroutine_handle<> h{};
  cancel_hook hook{&on_cancel, &describe};
  bool cancelled = false;
  bool precancelled = false;

  /// Call first in await_ready: a pending cancellation is delivered here.
  bool take_precancel() noexcept {
    precancelled = consume_pending_cancel();
    return precancelled;
  }
  inline void suspend_on(wait_list& wl, std::coroutine_handle<> hh);
  /// Call first in await_resume.
  void resume_check() {
    if (core != nullptr && core->hook_ == &hook) core->hook_ = nullptr;
    if (precancelled || cancelled) throw cancelled_error{};
  }
  static inline bool on_cancel(cancel_hook* hk) noexcept;
  static void describe(const cancel_hook*, wait_description& d) noexcept {
    d.kind = "event, mutex, semaphore or channel";
  }
};

struct wait_list : intrusive_list<waiter> {
  std::size_t size = 0;

  void push(waiter* w) noexcept {
    push_back(w);
    w->list = this;
    ++size;
  }
  void remove(waiter* w) noexcept {
    intrusive_list<waiter>::remove(w);
    w->list = nullptr;
    --size;
  }
  /// Unlinks the first waiter and schedules it (granted).
  waiter* grant_front() noexcept {
    waiter* w = head;
    if (w != nullptr) {
      remove(w);
      detail::loop_schedule(*w->l, w->core, w->h);
    }
    return w;
  }
  /// Wakes every waiter with `cancelled = false`; used by close/set.
  void grant_all() noexcept {
    while (grant_front() != nullptr) {
    }
  }
};

inline void waiter::suspend_on(wait_list& wl, std::coroutine_handle<> hh) {
  l = &loop::current();
  h = hh;
  core = current_core();
  wl.push(this);
  if (core != nullptr) core->hook_ = &hook;
}

inline bool waiter::on_cancel(cancel_hook* hk) noexcept {
  waiter* w = outer_of(hk, &waiter::hook);
  if (w->list == nullptr) return false;  // already granted
  w->list->remove(w);
  w->cancelled = true;
  detail::loop_schedule(*w->l, w->core, w->h);
  return true;
}

}  // namespace eddy::detail
