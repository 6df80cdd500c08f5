// eddy::channel<T>: a bounded FIFO between tasks on one loop, with close().
#pragma once

#include <cstddef>
#include <deque>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include <eddy/runtime/detail/wait_list.hpp>

namespace eddy {

/// A bounded multi-producer, multi-consumer queue for tasks on one loop.
///
/// `send` waits while the channel holds `capacity` items; `recv` waits while it is
/// empty. Values pass straight from a sender to a waiting receiver. After
/// `close()`, `recv` drains what is buffered and then returns std::nullopt;
/// `send` throws channel_closed_error (waiting senders too; their values are
/// dropped).
///
/// **Thread safety:** loop thread only. From another thread, post with
/// `loop_handle::call_soon_threadsafe` and `try_send`.
/// **Cancel safety:** `recv` is cancel-safe: no item is lost (an item handed to a
/// receiver just before its cancellation is returned, and the cancellation comes at
/// the next await). `send` cancelled while waiting did not send; its value is
/// dropped with the awaiter.
///
/// ```cpp
/// eddy::channel<int> ch(16);
/// co_await ch.send(1);
/// while (auto v = co_await ch.recv()) use(*v);
/// ```
template <class T>
class channel {
 public:
  static constexpr std::size_t max_capacity = std::size_t{1} << 30;

  /// Throws std::invalid_argument unless 1 ≤ capacity ≤ 2^30.
  explicit channel(std::size_t capacity) : cap_(capacity) {
    if (capacity == 0 || capacity > max_capacity)
      throw std::invalid_argument("eddy::channel: capacity must be 1..2^30, got " + std::to_string(capacity));
  }
  channel(const channel&) = delete;
  channel& operator=(const channel&) = delete;
  ~channel() = default;

  std::size_t capacity() const noexcept { return cap_; }
  std::size_t size() const noexcept { return buf_.size(); }
  bool is_closed() const noexcept { return closed_; }

  /// Sends without waiting; false if full. Throws channel_closed_error if closed.
  bool try_send(T v) {
    if (closed_) throw channel_closed_error();
    if (auto* r = static_cast<recv_awaiter*>(receivers_.head)) {
      r->slot.emplace(std::move(v));
      receivers_.grant_front();
      return true;
    }
    if (buf_.size() >= cap_) return false;
    buf_.push_back(std::move(v));
    return true;
  }

  /// Receives without waiting; std::nullopt if nothing is buffered.
  std::optional<T> try_recv() {
    if (buf_.empty()) return std::nullopt;
    std::optional<T> v(std::move(buf_.front()));
    buf_.pop_front();
    refill_from_sender();
    return v;
  }

  /// Closes the channel: buffered items stay readable; waiting receivers get
  /// std::nullopt, waiting senders channel_closed_error. Idempotent.
  void close() noexcept {
    closed_ = true;
    receivers_.grant_all();
    senders_.grant_all();
  }

  struct [[nodiscard]] send_awaiter : detail::waiter {
    channel* ch;
    std::optional<T> value;
    send_awaiter(channel* c, T&& v) : ch(c), value(std::move(v)) {}
    bool await_ready() {
      if (take_precancel()) return true;
      if (ch->closed_) return true;
      if (ch->try_send(std::move(*value))) {
        value.reset();
        return true;
      }
      return false;
    }
    void await_suspend(std::coroutine_handle<> h) { suspend_on(ch->senders_, h); }
    void await_resume() {
      resume_check();
      if (value.has_value()) throw channel_closed_error();  // woken by close()
    }
  };

  struct [[nodiscard]] recv_awaiter : detail::waiter {
    channel* ch;
    std::optional<T> slot;
    explicit recv_awaiter(channel* c) noexcept : ch(c) {}
    bool await_ready() {
      if (take_precancel()) return true;
      if (!ch->buf_.empty()) {
        slot = ch->try_recv();
        return true;
      }
      return ch->closed_;
    }
    void await_suspend(std::coroutine_handle<> h) { suspend_on(ch->receivers_, h); }
    std::optional<T> await_resume() {
      if (slot.has_value()) {
        // Handed over: never lose it, even if a cancellation raced the hand-off.
        if (core != nullptr && core->hook_ == &hook) core->hook_ = nullptr;
        return std::move(slot);
      }
      resume_check();
      return std::nullopt;
    }
  };

  /// Waits for room, then sends `v`. Throws channel_closed_error if closed.
  send_awaiter send(T v) { return send_awaiter(this, std::move(v)); }
  /// Waits for an item; std::nullopt once closed and drained.
  recv_awaiter recv() noexcept { return recv_awaiter(this); }

 private:
  // After an item left the buffer: the first waiting sender's value takes its place.
  void refill_from_sender() {
    if (auto* s = static_cast<send_awaiter*>(senders_.head)) {
      buf_.push_back(std::move(*s->value));
      s->value.reset();
      senders_.grant_front();
    }
  }

  std::deque<T> buf_;
  detail::wait_list receivers_;
  detail::wait_list senders_;
  std::size_t cap_;
  bool closed_ = false;
};

}  // namespace eddy
