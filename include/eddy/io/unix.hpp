// Unix-domain sockets: streams (listener + stream) and datagrams, on filesystem
// paths or Linux abstract names (see socket_address).
#pragma once

#include <eddy/io/accepted.hpp>
#include <eddy/io/address.hpp>
#include <eddy/io/detail/datagram_socket.hpp>
#include <eddy/io/detail/stream_socket.hpp>
#include <utility>

namespace eddy {

/// A connected Unix stream socket. The same operations as tcp_stream (read_some,
/// write_some, write_all, write_vectored, shutdown_write, close, addresses) minus
/// the TCP options; sends are MSG_NOSIGNAL, so a closed peer gives EPIPE.
///
/// **Thread safety:** a move-only value; loop thread only; one reader and one
/// writer task may run at once. Closing or dropping it on another loop or thread,
/// with no operation in flight, is handed to the loop that watched it
/// (docs/fd_ownership.md).
/// **Cancel safety:** as tcp_stream: reads and single writes are cancel-safe,
/// write_all and connect are not.
///
/// ```cpp
/// auto s = co_await eddy::unix_stream::connect(eddy::socket_address::unix_path("/run/app.sock"));
/// auto [a, b] = eddy::unix_stream::pair();   // a connected pair, like socketpair(2)
/// ```
class unix_stream : public detail::stream_socket {
 public:
  unix_stream() noexcept = default;
  /// Adopts a connected Unix stream socket (made non-blocking, close-on-exec).
  /// Throws std::invalid_argument, naming the fd and what it is, for anything
  /// but an AF_UNIX SOCK_STREAM socket (SOCK_SEQPACKET and SOCK_DGRAM included:
  /// their message boundaries would be lost); the fd is closed then.
  explicit unix_stream(unique_fd fd);

  /// Connects to a listening Unix socket. Throws std::system_error (ENOENT,
  /// ECONNREFUSED, ...) naming the address, std::invalid_argument for a non-Unix
  /// address.
  static task<unix_stream> connect(socket_address addr);
  /// A connected pair (socketpair(AF_UNIX, SOCK_STREAM)).
  static std::pair<unix_stream, unix_stream> pair();

  // ---- reading (choose read_some or receive for a stream, not both) ----

  /// Receives up to `buf.size()` bytes into `buf`; returns the count, 0 at end of
  /// stream (the peer half-closed or closed). Throws std::system_error
  /// (ECONNRESET, ...); std::logic_error once receive() was used on io_uring.
  /// Cancel-safe: a cancelled read received nothing.
  using stream_socket::read_some;
  /// Fills `buf` with receives straight into it (no copy through a loop
  /// buffer; tokio's read_exact). Throws incomplete_read_error at end of stream,
  /// its `partial` holding what arrived. Not cancel-safe: a cancelled read_exact
  /// has consumed the bytes already in `buf`. std::logic_error after receive().
  using stream_socket::read_exact;
  /// Appends everything up to end of stream to `out` (which must outlive the
  /// call), reading straight into it in growing steps; returns the count. Throws
  /// stream_limit_error past `max` bytes (default 1 GiB). Not cancel-safe.
  using stream_socket::read_to_end;
  /// Receives the next bytes into a buffer the loop lends (recv_buffer: hand it
  /// back by dropping it); an empty buffer at end of stream. On io_uring a
  /// multishot recv on the provided-buffer ring stays armed, so a connection
  /// waiting for data holds no buffer and a busy one costs no submission per
  /// read; on epoll it reads into pooled blocks once the socket is readable.
  /// Cancel-safe: bytes that arrive while nobody waits stay queued.
  using stream_socket::receive;
  /// The next bytes if receive()'s multishot read has already queued them (up to
  /// 8 chunks wait per socket), without waiting and without a system call; an
  /// empty buffer when none are queued (not end of stream: receive() reports that
  /// and errors). With receive(), several chunks can go out in one gathered
  /// `write_all` without a copy:
  /// ```cpp
  /// eddy::recv_buffer b[4];
  /// b[0] = co_await s.receive();
  /// std::size_t n = 1;
  /// while (n < 4 && !(b[n] = s.try_receive()).empty()) ++n;
  /// ```
  /// **Thread safety:** loop thread. **Cancel safety:** n/a (no await).
  using stream_socket::try_receive;
  /// Caps what one receive() hands over (16 KiB..loop_options::recv_limit; 0 = the
  /// loop's limit), e.g. to keep a latency-sensitive connection's reads small. Loop
  /// thread only; takes effect from the next arming of the receive.
  using stream_socket::set_receive_limit;
  /// True once receive() has been used on this stream: its receiver owns the
  /// incoming bytes from then on (some may be queued there), so nothing else may
  /// read the fd directly (eddy::relay copies instead of splicing then).
  /// **Thread safety:** loop thread. **Cancel safety:** n/a (no await).
  using stream_socket::receiving;

  // ---- writing (every send is MSG_NOSIGNAL: EPIPE, never SIGPIPE) ----

  /// Sends up to `buf.size()` bytes; returns the count sent (possibly fewer).
  /// Cancel-safe: a cancelled send sent nothing.
  using stream_socket::write_some;
  /// Sends every byte: of a byte span, of a std::string / string_view / literal,
  /// or of a list of buffers (in order, with as few sendmsg as the kernel
  /// allows). The bytes must stay alive until it returns. Not cancel-safe: a
  /// cancelled write_all has sent an unknown prefix.
  using stream_socket::write_all;
  /// One sendmsg of up to 1024 buffers (IOV_MAX); returns the bytes sent.
  /// Cancel-safe as write_some.
  using stream_socket::write_vectored;
  /// Sends `count` bytes of a file from `offset` with sendfile(2) (no copy
  /// through user space), waiting for room as write_all does; returns the bytes
  /// sent (fewer only if the file ends). The file's position is not moved. Throws
  /// std::system_error, std::invalid_argument for a negative fd or an offset that
  /// overflows. Not cancel-safe.
  using stream_socket::send_file;

  // ---- closing and the rest ----

  /// shutdown(SHUT_WR): the peer reads end of stream; this side can still read.
  using stream_socket::shutdown_write;
  /// Closes the socket, first cancelling operations in flight on it (their
  /// tasks resume with cancelled_error). Closing a closed socket does nothing.
  /// Dropping the object closes it too.
  using stream_socket::close;
  /// This end's address (getsockname). Throws std::system_error.
  using stream_socket::local_address;
  /// The peer's address (getpeername). Throws std::system_error with ENOTCONN
  /// once the peer has reset: a server wanting it should take it from
  /// accept_with_peer().
  using stream_socket::peer_address;
  /// The socket's fd (-1 when empty), for setsockopt and the like; still owned here.
  using stream_socket::fd;
  /// True while the object holds a socket.
  using stream_socket::operator bool;
  /// Gives up the fd (for eddy::stream or another library). Throws
  /// std::logic_error after receive() on io_uring (bytes may be queued).
  using stream_socket::release;
};

/// Options for `unix_listener::bind`.
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
///
/// ```cpp
/// auto l = eddy::unix_listener::bind(eddy::socket_address::unix_path(p), {.unlink_existing =
/// true});
/// ```
struct unix_listen_options {
  int backlog = 1024;  ///< 1..65535
  /// Remove a stale socket file at the path before binding (only if it is a
  /// socket; any other file is left alone and bind fails with EADDRINUSE).
  bool unlink_existing = false;
};

/// A listening Unix stream socket; accepts as tcp_listener does (multishot on
/// io_uring, EMFILE without spinning, cancel-safe accept).
///
/// The socket file of a path address is not removed on close (as with every
/// Unix socket API); abstract names vanish with the socket.
///
/// **Thread safety:** a move-only value; loop thread only.
/// **Cancel safety:** `accept()` is cancel-safe.
///
/// ```cpp
/// auto l = eddy::unix_listener::bind(eddy::socket_address::unix_abstract("my-service"));
/// eddy::unix_stream s = co_await l.accept();
/// ```
class unix_listener {
 public:
  unix_listener() noexcept = default;
  /// Throws std::system_error (EADDRINUSE, EACCES, ENOENT ...) naming the address,
  /// std::invalid_argument for a non-Unix address or a bad backlog.
  static unix_listener bind(const socket_address& addr, unix_listen_options opts = {});
  /// The next connection (non-blocking, close-on-exec); errors as
  /// tcp_listener::accept.
  task<unix_stream> accept();
  /// The next connection and its peer's address (usually unnamed for Unix
  /// sockets: only a client that bound its socket has one); see
  /// tcp_listener::accept_with_peer for why both forms exist.
  task<accepted<unix_stream>> accept_with_peer();
  task<void> close();
  socket_address local_address() const;
  int fd() const noexcept { return core_.fd(); }
  std::uint64_t shed_connections() const noexcept { return core_.shed_connections(); }

 private:
  detail::listener_core core_;
};

/// A Unix datagram socket (SOCK_DGRAM, reliable and ordered on Linux, message
/// boundaries kept). The same operations as udp_socket.
///
/// **Thread safety:** a move-only value; loop thread only.
/// **Cancel safety:** every operation is cancel-safe.
///
/// ```cpp
/// auto srv = eddy::unix_datagram::bind(eddy::socket_address::unix_abstract("logd"));
/// auto cli = eddy::unix_datagram::open();
/// co_await cli.send_to(bytes, srv.local_address());
/// ```
class unix_datagram : public detail::datagram_socket {
 public:
  unix_datagram() noexcept = default;
  /// Bound to `addr`. Throws std::system_error naming it, std::invalid_argument
  /// for a non-Unix address.
  static unix_datagram bind(const socket_address& addr);
  /// Unbound (an unnamed sender; it cannot receive replies by address).
  static unix_datagram open();
  /// A connected pair (socketpair(AF_UNIX, SOCK_DGRAM)).
  static std::pair<unix_datagram, unix_datagram> pair();

 private:
  explicit unix_datagram(unique_fd fd) noexcept : datagram_socket(std::move(fd)) {}
};

}  // namespace eddy
