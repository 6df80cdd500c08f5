// eddy::make_loop_channel: a bounded multi-producer channel across loops and threads
// (DESIGN.md §8). The receiver lives on one loop; senders may be on any loop or any
// thread.
//
// Protocol. Everything shared is under one mutex, held for a few instructions and
// never across a post or a resumption:
//  - a sender with room pushes and returns; if the receiver is parked, the value goes
//    straight into the receiver's slot instead and that sender posts one resumption
//    to the receiver's loop. Only the sender that finds the receiver parked posts, so
//    a burst costs at most one post (and loop_handle's coalescing makes that at most
//    one system call, none when the loop is awake);
//  - a sender on a full channel parks (linked under the mutex, with its value). The
//    receiver, taking an item, moves the first parked sender's value into the buffer,
//    unlinks it and posts its resumption to that sender's loop. Threads that are not
//    loops use send_blocking, which waits on a condition variable;
//  - cancelling a parked sender or receiver unlinks it under the mutex if it is still
//    parked; if it was already served, the hand-off stands (nothing is lost) and the
//    cancellation is delivered at the task's next await;
//  - a parked task is resumed only by a post to its own loop, so every frame is
//    resumed on the loop that owns it.
// close(), dropping the receiver, or dropping the last sender closes the channel.
#pragma once

#include <condition_variable>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include <eddy/runtime/errors.hpp>
#include <eddy/runtime/loop.hpp>
#include <eddy/detail/intrusive_list.hpp>
#include <eddy/runtime/loop_handle.hpp>

namespace eddy {

namespace detail {

/// Where a parked task is resumed: its loop, reached from any thread.
struct loop_wake_target {
  loop_handle handle;
  loop* l = nullptr;
  task_core* core = nullptr;
  std::coroutine_handle<> h{};

  void capture(std::coroutine_handle<> hh) {
    l = &loop::current();
    handle = l->handle();
    core = current_core();
    h = hh;
  }
  /// Schedules the resumption on its loop: directly when called there, else by a
  /// post. Call without holding the channel's lock.
  static void fire(loop_handle handle, loop* l, task_core* core, std::coroutine_handle<> h) noexcept {
    if (loop::current_or_null() == l) {
      detail::loop_schedule(*l, core, h);
      return;
    }
    try {
      (void)handle.call_soon_threadsafe([l, core, h] { detail::loop_schedule(*l, core, h); });
    } catch (...) {
    }
  }
};

template <class T>
struct loop_channel_state {
  struct parked_sender {
    parked_sender* next = nullptr;
    parked_sender* prev = nullptr;
    loop_wake_target where;
    std::optional<T>* value = nullptr;
    bool linked = false;
    bool closed_out = false;  // woken by close: the value was not sent
  };
  struct parked_receiver {
    loop_wake_target where;
    std::optional<T>* slot = nullptr;
  };
  struct pending_wake {
    loop_handle handle;
    loop* l;
    task_core* core;
    std::coroutine_handle<> h;
  };

  explicit loop_channel_state(std::size_t c) : cap(c) {}

  std::mutex mu;
  std::deque<T> buf;
  const std::size_t cap;
  intrusive_list<parked_sender> parked;  // senders waiting for room, oldest first
  parked_receiver* receiver = nullptr;
  std::size_t senders = 1;
  std::size_t blocking_waiters = 0;
  std::condition_variable room;
  std::uint64_t receiver_wakes = 0;  // hand-offs to a parked receiver (each one post)
  bool closed = false;

  void link(parked_sender* s) noexcept {
    parked.push_back(s);
    s->linked = true;
  }
  void unlink(parked_sender* s) noexcept {
    parked.remove(s);
    s->linked = false;
  }
  static pending_wake wake_of(const loop_wake_target& w) { return {w.handle, w.l, w.core, w.h}; }

  /// Under the lock: hands `v` to a parked receiver (returns its wake) or buffers it.
  /// Returns false if full. Precondition: not closed.
  bool offer(T& v, std::optional<pending_wake>& wake) {
    if (parked_receiver* r = receiver) {
      r->slot->emplace(std::move(v));
      receiver = nullptr;
      ++receiver_wakes;
      wake.emplace(wake_of(r->where));
      return true;
    }
    if (buf.size() >= cap) return false;
    buf.push_back(std::move(v));
    return true;
  }

  /// Under the lock: takes the front item, lets the first parked sender in.
  T take(std::optional<pending_wake>& wake) {
    T v(std::move(buf.front()));
    buf.pop_front();
    if (parked_sender* s = parked.head) {
      buf.push_back(std::move(**s->value));
      s->value->reset();
      unlink(s);
      wake.emplace(wake_of(s->where));
    } else if (blocking_waiters != 0) {
      room.notify_one();
    }
    return v;
  }

  void close() noexcept {
    std::deque<pending_wake> wakes;
    {
      std::lock_guard lk(mu);
      if (closed) return;
      closed = true;
      if (receiver) {
        wakes.push_back(wake_of(receiver->where));
        receiver = nullptr;
      }
      while (parked_sender* s = parked.head) {
        s->closed_out = true;
        unlink(s);
        wakes.push_back(wake_of(s->where));
      }
      room.notify_all();
    }
    for (auto& w : wakes) loop_wake_target::fire(w.handle, w.l, w.core, w.h);
  }
};

}  // namespace detail

template <class T>
class loop_receiver;

/// The sending side of a loop channel (see make_loop_channel). Copy it to give
/// more producers their own; when the last copy is dropped the channel closes.
///
/// **Thread safety:** every member may be called from any thread; `send` must be
/// awaited on a loop thread, `send_blocking` on a thread that runs no loop. Copies
/// are independent objects; one object is not to be used by two threads at once.
/// **Cancel safety:** `send` cancelled while it waits for room did not send (the
/// value is dropped with the awaiter); if room was granted just before, the value
/// is sent and the cancellation comes at the task's next await.
template <class T>
class loop_sender {
 public:
  loop_sender() noexcept = default;
  explicit loop_sender(std::shared_ptr<detail::loop_channel_state<T>> s) noexcept : s_(std::move(s)) {}
  loop_sender(const loop_sender& o) : s_(o.s_) {
    if (s_) {
      std::lock_guard lk(s_->mu);
      ++s_->senders;
    }
  }
  loop_sender(loop_sender&& o) noexcept : s_(std::move(o.s_)) {}
  loop_sender& operator=(loop_sender o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  ~loop_sender() { reset(); }

  /// Drops this sender; the last one dropped closes the channel.
  void reset() noexcept {
    if (!s_) return;
    bool last;
    {
      std::lock_guard lk(s_->mu);
      last = --s_->senders == 0;
    }
    if (last) s_->close();
    s_.reset();
  }

  /// Sends without waiting: false if the channel is full (the value is dropped).
  /// Throws channel_closed_error if closed.
  bool try_send(T v) {
    check();
    std::optional<typename state::pending_wake> wake;
    {
      std::lock_guard lk(s_->mu);
      if (s_->closed) throw channel_closed_error();
      if (!s_->offer(v, wake)) return false;
    }
    if (wake) detail::loop_wake_target::fire(wake->handle, wake->l, wake->core, wake->h);
    return true;
  }

  /// Sends from a thread that is not a loop, blocking the thread while the channel
  /// is full. Throws channel_closed_error if closed (before or while waiting), and
  /// std::logic_error on a loop thread (await send() there).
  void send_blocking(T v) {
    check();
    if (loop::current_or_null() != nullptr)
      throw std::logic_error("eddy::loop_sender::send_blocking on a loop thread: co_await send() instead");
    std::optional<typename state::pending_wake> wake;
    {
      std::unique_lock lk(s_->mu);
      for (;;) {
        if (s_->closed) throw channel_closed_error();
        if (s_->offer(v, wake)) break;
        ++s_->blocking_waiters;
        s_->room.wait(lk);
        --s_->blocking_waiters;
      }
    }
    if (wake) detail::loop_wake_target::fire(wake->handle, wake->l, wake->core, wake->h);
  }

  struct [[nodiscard]] send_awaiter {
    using parked = typename detail::loop_channel_state<T>::parked_sender;
    send_awaiter(detail::loop_channel_state<T>* st, T&& v) : s(st), value(std::move(v)) {}
    send_awaiter(const send_awaiter&) = delete;
    detail::loop_channel_state<T>* s;
    std::optional<T> value;
    parked p;
    struct back_hook : detail::cancel_hook {
      send_awaiter* self;
    };
    back_hook hook{{&on_cancel}, this};
    bool precancelled = false;
    bool cancelled = false;

    bool await_ready() noexcept {
      precancelled = detail::consume_pending_cancel();
      return precancelled;
    }
    bool await_suspend(std::coroutine_handle<> h) {
      std::optional<typename state::pending_wake> wake;
      {
        std::lock_guard lk(s->mu);
        if (s->closed) {
          p.closed_out = true;
          return false;
        }
        if (!s->offer(*value, wake)) {
          p.where.capture(h);
          p.value = &value;
          s->link(&p);
          if (p.where.core != nullptr) p.where.core->hook_ = &hook;
          return true;
        }
      }
      value.reset();
      if (wake) detail::loop_wake_target::fire(wake->handle, wake->l, wake->core, wake->h);
      return false;
    }
    void await_resume() {
      if (p.where.core != nullptr && p.where.core->hook_ == &hook) p.where.core->hook_ = nullptr;
      if (precancelled || cancelled) throw cancelled_error{};
      if (p.closed_out) throw channel_closed_error();
    }
    static bool on_cancel(detail::cancel_hook* hk) noexcept {
      auto* a = static_cast<back_hook*>(hk)->self;
      {
        std::lock_guard lk(a->s->mu);
        if (!a->p.linked) return false;  // already served: the value was sent
        a->s->unlink(&a->p);
      }
      a->cancelled = true;
      detail::loop_schedule(*a->p.where.l, a->p.where.core, a->p.where.h);
      return true;
    }
  };

  /// Waits (without blocking the thread) for room, then sends `v`. Throws
  /// channel_closed_error if the channel is or becomes closed while waiting.
  send_awaiter send(T v) {
    check();
    return send_awaiter(s_.get(), std::move(v));
  }

  bool is_closed() const {
    check();
    std::lock_guard lk(s_->mu);
    return s_->closed;
  }
  /// Closes the channel for everyone (see loop_receiver::close).
  void close() const {
    check();
    s_->close();
  }

 private:
  using state = detail::loop_channel_state<T>;
  void check() const {
    if (!s_) throw std::logic_error("eddy::loop_sender: empty (moved-from or reset) sender");
  }
  std::shared_ptr<state> s_;
};

/// The receiving side of a loop channel: it belongs to the loop that receives.
/// Dropping it closes the channel (waiting senders get channel_closed_error), so a
/// receiver that lives in a task frame closes the channel when its loop closes.
///
/// **Thread safety:** one loop thread (the one that awaits recv). `close()` is
/// thread-safe. **Cancel safety:** `recv` is cancel-safe: an item handed to a
/// receiver just before its cancellation is returned, and the cancellation comes at
/// the next await.
template <class T>
class loop_receiver {
 public:
  loop_receiver() noexcept = default;
  explicit loop_receiver(std::shared_ptr<detail::loop_channel_state<T>> s) noexcept : s_(std::move(s)) {}
  loop_receiver(loop_receiver&&) noexcept = default;
  loop_receiver& operator=(loop_receiver&& o) noexcept {
    if (this != &o) {
      if (s_) s_->close();
      s_ = std::move(o.s_);
    }
    return *this;
  }
  ~loop_receiver() {
    if (s_) s_->close();
  }

  std::size_t capacity() const noexcept { return s_ ? s_->cap : 0; }

  /// How many times a sender had to wake this receiver (each one post to its loop):
  /// at most one per time the receiver parked in recv, however many items came.
  std::uint64_t wakeups() const {
    check();
    std::lock_guard lk(s_->mu);
    return s_->receiver_wakes;
  }

  /// Closes the channel: buffered items stay readable, then recv returns
  /// std::nullopt; senders (waiting ones too) get channel_closed_error. Idempotent;
  /// thread-safe.
  void close() const {
    check();
    s_->close();
  }

  /// Receives without waiting: std::nullopt if nothing is buffered.
  std::optional<T> try_recv() {
    check();
    std::optional<typename state::pending_wake> wake;
    std::optional<T> v;
    {
      std::lock_guard lk(s_->mu);
      if (s_->buf.empty()) return std::nullopt;
      v.emplace(s_->take(wake));
    }
    if (wake) detail::loop_wake_target::fire(wake->handle, wake->l, wake->core, wake->h);
    return v;
  }

  struct [[nodiscard]] recv_awaiter {
    explicit recv_awaiter(detail::loop_channel_state<T>* st) noexcept : s(st) {}
    recv_awaiter(const recv_awaiter&) = delete;
    detail::loop_channel_state<T>* s;
    std::optional<T> slot;
    typename detail::loop_channel_state<T>::parked_receiver p;
    struct back_hook : detail::cancel_hook {
      recv_awaiter* self;
    };
    back_hook hook{{&on_cancel}, this};
    bool precancelled = false;
    bool cancelled = false;

    bool await_ready() noexcept {
      precancelled = detail::consume_pending_cancel();
      return precancelled;
    }
    bool await_suspend(std::coroutine_handle<> h) {
      std::optional<typename state::pending_wake> wake;
      {
        std::lock_guard lk(s->mu);
        if (s->receiver != nullptr) throw std::logic_error("eddy::loop_receiver: one recv at a time");
        if (s->buf.empty()) {
          if (s->closed) return false;
          p.where.capture(h);
          p.slot = &slot;
          s->receiver = &p;
          if (p.where.core != nullptr) p.where.core->hook_ = &hook;
          return true;
        }
        slot.emplace(s->take(wake));
      }
      if (wake) detail::loop_wake_target::fire(wake->handle, wake->l, wake->core, wake->h);
      return false;
    }
    std::optional<T> await_resume() {
      if (p.where.core != nullptr && p.where.core->hook_ == &hook) p.where.core->hook_ = nullptr;
      if (slot.has_value()) return std::move(slot);  // handed over: never lost
      if (precancelled || cancelled) throw cancelled_error{};
      return std::nullopt;
    }
    static bool on_cancel(detail::cancel_hook* hk) noexcept {
      auto* a = static_cast<back_hook*>(hk)->self;
      {
        std::lock_guard lk(a->s->mu);
        if (a->s->receiver != &a->p) return false;  // an item (or close) is on its way
        a->s->receiver = nullptr;
      }
      a->cancelled = true;
      detail::loop_schedule(*a->p.where.l, a->p.where.core, a->p.where.h);
      return true;
    }
  };

  /// Waits for an item; std::nullopt once the channel is closed and drained.
  recv_awaiter recv() {
    check();
    return recv_awaiter(s_.get());
  }

 private:
  using state = detail::loop_channel_state<T>;
  void check() const {
    if (!s_) throw std::logic_error("eddy::loop_receiver: empty (moved-from) receiver");
  }
  std::shared_ptr<state> s_;
};

/// Makes a bounded channel whose receiver lives on one loop and whose senders may
/// be on any loop or thread (tokio's mpsc::channel across runtimes). `send` waits
/// without blocking its thread while `capacity` items are buffered; items from one
/// sender arrive in the order sent. Wakeups are coalesced: a sender posts to the
/// receiver's loop only when the receiver is parked, once per burst, and the post
/// itself makes no system call when that loop is awake.
///
/// Throws std::invalid_argument unless 1 ≤ capacity ≤ 2^30.
///
/// **Thread safety:** any thread. **Cancel safety:** not a suspension point.
///
/// ```cpp
/// auto [tx, rx] = eddy::make_loop_channel<int>(1024);
/// eddy::spawn_on(group.handle(1), produce(tx)).detach();  // co_await tx.send(i) there
/// while (auto v = co_await rx.recv()) use(*v);            // here, on loop 0
/// ```
template <class T>
std::pair<loop_sender<T>, loop_receiver<T>> make_loop_channel(std::size_t capacity) {
  if (capacity == 0 || capacity > (std::size_t{1} << 30))
    throw std::invalid_argument("eddy::make_loop_channel: capacity must be 1..2^30, got " +
                                std::to_string(capacity));
  auto s = std::make_shared<detail::loop_channel_state<T>>(capacity);
  return {loop_sender<T>(s), loop_receiver<T>(s)};
}

}  // namespace eddy
