// Relaying two streams into each other, both ways, until both directions have
// ended: what a proxy does with each connection (tokio's copy_bidirectional).
// Between two plain sockets the bytes go socket -> pipe -> socket with splice(2)
// and never enter user space; anything else (a TLS side, a socket whose bytes
// receive() already owns, a file type splice refuses) is copied.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <eddy/io/detail/stream_socket.hpp>
#include <eddy/io/recv_buffer.hpp>
#include <eddy/runtime/task.hpp>
#include <eddy/runtime/when.hpp>
#include <span>
#include <tuple>
#include <type_traits>

namespace eddy {

/// What `relay` moved: bytes read from `a` and written to `b`, and the reverse.
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
///
/// ```cpp
/// eddy::relay_result moved = co_await eddy::relay(client, upstream);
/// log("up {} down {}", moved.a_to_b, moved.b_to_a);
/// ```
struct relay_result {
  std::uint64_t a_to_b = 0;
  std::uint64_t b_to_a = 0;
};

/// Options for `relay` between two sockets.
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
///
/// ```cpp
/// co_await eddy::relay(a, b, {.pipe_size = 256 * 1024});
/// ```
struct relay_options {
  /// Capacity of each direction's pipe, which bounds what one direction holds in
  /// flight: 0 keeps the kernel's default (16 pages, 64 KiB); otherwise
  /// 4 KiB..1 MiB (the kernel rounds it up to a power of two of pages). Past the
  /// user's pipe quota (fs.pipe-user-pages-soft) the kernel refuses the size and
  /// the default is kept.
  std::size_t pipe_size = 0;
  /// false: copy through buffers the loop lends (`receive()` then write) even
  /// where splice would work.
  bool splice = true;
  /// If set, kept current as bytes reach their destination (after every write),
  /// so another task of the loop can watch the relay (an idle timeout, a rate
  /// meter), and after a failure or a cancel it says what was delivered. Must
  /// outlive the await.
  relay_result* progress = nullptr;
};

/// Moves bytes both ways between the connected stream sockets `a` and `b`
/// (tcp_stream, unix_stream, in any mix) until both directions have ended, and
/// returns how many bytes went each way. Each direction runs on its own: end of
/// stream read from one side becomes `shutdown_write()` (a FIN) on the other
/// while the opposite direction keeps flowing, so a client may send its request,
/// half-close, and still read the whole reply. The streams are not closed.
///
/// Each direction splices socket -> pipe -> socket: the kernel moves the pages
/// and the bytes never enter user space; at most one pipe's worth (64 KiB by
/// default) per direction is between the sockets. The splice calls are made
/// non-blocking on every backend and only readiness is awaited (io_uring's own
/// SPLICE op would park a kernel worker thread in each idle socket read). A
/// direction copies instead when splice cannot be used: `opts.splice` is false,
/// `receive()` has been used on its source (its receiver owns the socket's
/// incoming bytes, some of which may be queued already), or the kernel refuses
/// splice for the pair (EINVAL); bytes already in the pipe are delivered first.
/// A peer's reset never raises SIGPIPE, whatever its disposition (splice has no
/// MSG_NOSIGNAL: where SIGPIPE is not ignored, each splice out runs with it
/// blocked and a SIGPIPE it raised is discarded).
///
/// Errors: the first failure (ECONNRESET reading, EPIPE writing, ...) cancels the
/// other direction, waits for it, and is rethrown as std::system_error naming the
/// direction; the counts are lost then, as with tokio. std::invalid_argument if
/// either stream is closed, both are the same socket, or `opts.pipe_size` is out
/// of range.
///
/// **Thread safety:** loop thread only; `a` and `b` must outlive the await, and
/// no other task may read from or write to them meanwhile.
/// **Cancel safety:** not cancel-safe. Cancelling stops both directions and
/// throws cancelled_error; both streams stay open, each with its read position
/// unknown: bytes already taken from one side (up to one pipe or one receive
/// buffer per direction) may not have reached the other, and a direction that
/// had ended may already have shut down its output. Close both streams after a
/// cancel.
///
/// ```cpp
/// auto client = co_await listener.accept();
/// auto upstream = co_await eddy::tcp_stream::connect(backend);
/// eddy::relay_result moved = co_await eddy::relay(client, upstream);
/// co_await client.close();
/// co_await upstream.close();
/// ```
task<relay_result> relay(detail::stream_socket& a, detail::stream_socket& b,
                         relay_options opts = {});

namespace detail {

/// What the copying relay needs of a stream: receive() into lent buffers,
/// write_some, shutdown_write (void or awaitable).
template <class S>
concept relay_stream = requires(S& s, std::span<const std::byte> b) {
  { s.receive() } -> std::same_as<task<recv_buffer>>;
  s.write_some(b);
  s.shutdown_write();
};

template <class To>
task<void> forward_end(To& to) {
  if constexpr (std::is_void_v<decltype(to.shutdown_write())>)
    to.shutdown_write();
  else
    co_await to.shutdown_write();
}

/// One direction of the copying relay: receive, write it all, until end of
/// stream. write_some rather than write_all, so `progress` moves with every
/// partial write into a slow reader.
template <class From, class To>
task<std::uint64_t> relay_copy(From& from, To& to, std::uint64_t* progress) {
  std::uint64_t moved = 0;
  for (;;) {
    recv_buffer chunk = co_await from.receive();
    if (chunk.empty()) break;
    while (!chunk.empty()) {
      const std::size_t n = co_await to.write_some(chunk.data());
      chunk.consume(n);
      moved += n;
      if (progress != nullptr) *progress += n;
    }
  }
  co_await forward_end(to);
  co_return moved;
}

}  // namespace detail

/// `relay` for streams that are not both plain sockets: a TLS stream on either
/// side (tls_stream), or any type with `receive()`, `write_some(span)` and
/// `shutdown_write()`. Bytes are copied through the buffers the loop lends
/// (one receive per step, written whole before the next). The same semantics as
/// the socket form: counts each way, end of stream forwarded as
/// `shutdown_write()` (close_notify and then a FIN over TLS), the first failure
/// cancels the other direction and is rethrown. Of `opts`, only `progress` is
/// used.
///
/// **Thread safety:** loop thread only; both streams outlive the await.
/// **Cancel safety:** not cancel-safe, as the socket form: up to one received
/// buffer per direction may be lost; close both streams after a cancel.
///
/// ```cpp
/// auto tls = co_await eddy::tls_stream::accept(std::move(client), ctx);
/// co_await eddy::relay(tls, upstream);  // decrypt, forward, encrypt the replies back
/// ```
template <class A, class B>
requires detail::relay_stream<A> && detail::relay_stream<B> &&
    (!(std::derived_from<A, detail::stream_socket> && std::derived_from<B, detail::stream_socket>))
        task<relay_result> relay(A& a, B& b, relay_options opts = {}) {
  // No structured bindings in coroutines: GCC 12 mishandles them across suspensions.
  std::tuple<std::uint64_t, std::uint64_t> moved =
      co_await when_all(detail::relay_copy(a, b, opts.progress ? &opts.progress->a_to_b : nullptr),
                        detail::relay_copy(b, a, opts.progress ? &opts.progress->b_to_a : nullptr));
  co_return relay_result{std::get<0>(moved), std::get<1>(moved)};
}

}  // namespace eddy
