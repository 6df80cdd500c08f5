// The one intrusive doubly linked FIFO eddy uses wherever things wait in line:
// the readiness engine's per-fd op lists, the listener's accept waiters, a loop
// channel's parked senders and the sync primitives' wait lists. The element keeps
// its own links, so linking allocates nothing and unlinking from the middle (a
// cancellation) is O(1). detail, not API. Not synchronized: one thread owns a
// list (each user says which); nothing here suspends, so cancel safety is the
// user's.
#pragma once

namespace eddy::detail {

/// Where an element keeps its links: members `next` and `prev` by default. The
/// accessors are instantiated only when the list is used, so a list may be a
/// member before its element type is complete.
template <class T>
struct member_links {
  static T*& next(T* x) noexcept { return x->next; }
  static T*& prev(T* x) noexcept { return x->prev; }
};

template <class T, class Links = member_links<T>>
struct intrusive_list {
  T* head = nullptr;
  T* tail = nullptr;

  bool empty() const noexcept { return head == nullptr; }

  void push_back(T* x) noexcept {
    Links::next(x) = nullptr;
    Links::prev(x) = tail;
    if (tail != nullptr)
      Links::next(tail) = x;
    else
      head = x;
    tail = x;
  }

  /// x must be in this list.
  void remove(T* x) noexcept {
    T* const n = Links::next(x);
    T* const p = Links::prev(x);
    if (p != nullptr)
      Links::next(p) = n;
    else
      head = n;
    if (n != nullptr)
      Links::prev(n) = p;
    else
      tail = p;
    Links::next(x) = Links::prev(x) = nullptr;
  }

  /// Unlinks and returns the first element, or nullptr.
  T* pop_front() noexcept {
    T* x = head;
    if (x != nullptr) remove(x);
    return x;
  }
};

}  // namespace eddy::detail
