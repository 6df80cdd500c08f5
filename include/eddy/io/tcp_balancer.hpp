// eddy::tcp_balancer: accept on one loop, hand each connection to the least loaded
// loop of a group (DESIGN.md §8).
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <optional>
#include <vector>

#include <eddy/io/fd.hpp>
#include <eddy/io/tcp.hpp>
#include <eddy/runtime/loop_channel.hpp>
#include <eddy/runtime/task.hpp>

namespace eddy {

/// Accepts connections on one loop and hands each to the loop that has the fewest
/// open connections (of those it handed out; ties go to the lowest index), through
/// one bounded inbox per loop.
///
/// When to use it rather than a SO_REUSEPORT listener per loop: the kernel's
/// SO_REUSEPORT hash spreads connections evenly in number, blind to how long each
/// lives and how much work it brings, so a few long, busy connections can pile up
/// on one loop while another idles. The balancer places each new connection by the
/// loops' current load, at the price of one accepting loop and one cross-loop hand-
/// off per connection (a post, coalesced). Prefer SO_REUSEPORT for many short,
/// similar connections (HTTP/1 request bursts, an echo benchmark); prefer the
/// balancer for long-lived connections of uneven weight (proxies of streams,
/// WebSocket or database sessions).
///
/// **Thread safety:** construct anywhere; `accept_from` on the listener's loop;
/// `next(i)` on loop i only (one waiter at a time); `open`, `close` from any
/// thread. **Cancel safety:** `accept_from` may be cancelled at any time (a
/// connection accepted but not yet handed off is closed); `next` is cancel-safe (a
/// connection handed to a cancelled `next` stays in the inbox).
///
/// ```cpp
/// eddy::tcp_balancer bal(g.size());
/// // loop 0: co_await bal.accept_from(listener);
/// // loop i: while (auto c = co_await bal.next(i)) conns.spawn(serve(std::move(*c)));
/// ```
class tcp_balancer {
 public:
  /// A connection handed to a loop. It counts as open on that loop until this
  /// object is destroyed (keep it alive for as long as the connection is served).
  class connection {
   public:
    connection(tcp_stream s, std::shared_ptr<std::atomic<std::size_t>[]> loads, std::size_t index) noexcept
        : stream(std::move(s)), loads_(std::move(loads)), index_(index) {}
    connection(connection&&) noexcept = default;
    connection& operator=(connection&&) = delete;
    ~connection() {
      if (loads_) loads_[index_].fetch_sub(1, std::memory_order_relaxed);
    }
    tcp_stream stream;
    std::size_t loop_index() const noexcept { return index_; }

   private:
    std::shared_ptr<std::atomic<std::size_t>[]> loads_;
    std::size_t index_;
  };

  /// Throws std::invalid_argument unless 1 ≤ loops ≤ 1024 and 1 ≤ backlog ≤ 2^20.
  explicit tcp_balancer(std::size_t loops, std::size_t backlog = 1024);
  tcp_balancer(const tcp_balancer&) = delete;
  tcp_balancer& operator=(const tcp_balancer&) = delete;
  ~tcp_balancer();

  std::size_t loops() const noexcept { return senders_.size(); }

  /// Accepts on `listener` until cancelled, handing every connection to the least
  /// loaded loop's inbox; waits (without blocking) while that inbox is full. After
  /// close() it returns at its next connection (which it closes); cancel it, or
  /// close the listener, to stop at once. Errors of accept() propagate.
  task<void> accept_from(tcp_listener& listener);

  /// On loop `i`: the next connection handed to it; std::nullopt once the balancer
  /// is closed and the inbox is drained. Throws std::out_of_range for a bad index.
  task<std::optional<connection>> next(std::size_t i);

  /// Connections handed to loop `i` and still open (a snapshot).
  std::size_t open(std::size_t i) const;

  /// Stops handing out: accept_from returns, next() drains and returns
  /// std::nullopt. Idempotent.
  void close() noexcept;

 private:
  std::size_t least_loaded() const noexcept;

  std::shared_ptr<std::atomic<std::size_t>[]> loads_;
  std::vector<loop_sender<unique_fd>> senders_;
  std::vector<loop_receiver<unique_fd>> receivers_;
  std::atomic<bool> closed_{false};
};

}  // namespace eddy
