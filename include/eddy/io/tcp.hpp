// TCP: tcp_listener (bind, listen, accept) and tcp_stream (connect, read, write,
// half-close, options). Both run on the current loop's backend: io_uring (with
// multishot accept where the kernel has it) or epoll (try the syscall, then wait).
//
// Every send is MSG_NOSIGNAL: writing into a socket the peer has reset gives
// EPIPE or ECONNRESET as std::system_error, never SIGPIPE.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <eddy/io/accepted.hpp>
#include <eddy/io/address.hpp>
#include <eddy/io/detail/stream_socket.hpp>
#include <eddy/io/fd.hpp>
#include <eddy/runtime/task.hpp>
#include <span>
#include <string>

namespace eddy {

/// Options for `tcp_listener::bind`.
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
///
/// ```cpp
/// auto l = eddy::tcp_listener::bind(addr, {.backlog = 4096, .reuse_port = true});
/// ```
struct tcp_listen_options {
  /// listen() backlog, 1..65535 (the kernel caps it at net.core.somaxconn).
  int backlog = 1024;
  /// SO_REUSEADDR: rebind a port whose old connections are in TIME_WAIT.
  bool reuse_address = true;
  /// SO_REUSEPORT: several listeners (threads, processes) share the port.
  bool reuse_port = false;
  /// IPV6_V6ONLY for an IPv6 address (false: also accept IPv4-mapped peers).
  bool v6_only = false;
};

/// Options for `tcp_stream::connect` and `eddy::tcp_connect` (<eddy/sched/tcp_connect.hpp>).
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
///
/// ```cpp
/// auto s = co_await eddy::tcp_stream::connect(addr, {.timeout = 2s, .nodelay = false});
/// ```
struct tcp_connect_options {
  /// The whole connect (for eddy::tcp_connect, name resolution included) must
  /// finish within this, or timeout_error is thrown. Must be positive; default 30 s.
  std::chrono::milliseconds timeout{30'000};
  /// TCP_NODELAY on the new stream (Nagle off), as most RPC clients want.
  bool nodelay = true;
};

/// A connected TCP socket.
///
/// `read_some` returns 0 at end of stream (EOF is a value, not an exception);
/// errors are std::system_error with the errno (ECONNRESET, EPIPE, ...).
///
/// **Thread safety:** a move-only value; use it from the loop thread it was made
/// on. One task may read while another writes; two concurrent reads (or two
/// concurrent writes) interleave unpredictably. With no operation in flight it may
/// be moved to another loop or thread and closed or dropped there (returned from
/// spawn_on, say): the loop that watched it ends the watch (docs/fd_ownership.md).
/// **Cancel safety:** `read_some`, `receive`, `write_some`, `write_vectored` are cancel-safe
/// (a cancelled op either did nothing and throws cancelled_error, or returns what
/// it did). `write_all` and `connect` are not: a cancelled write_all has sent an
/// unknown prefix; a cancelled connect leaves nothing open.
/// Destroying (or `close()`-ing) a stream with operations in flight cancels them;
/// they resume with cancelled_error, and no completion reaches a reused fd number.
///
/// ```cpp
/// auto s = co_await eddy::tcp_stream::connect(eddy::socket_address::ip("127.0.0.1", 7000));
/// co_await s.write_all(std::as_bytes(std::span("ping", 4)));
/// std::array<std::byte, 4096> buf;
/// std::size_t n = co_await s.read_some(buf);   // 0 = the peer closed
/// s.shutdown_write();                          // half-close: peer sees EOF
/// co_await s.close();
/// ```
class tcp_stream : public detail::stream_socket {
 public:
  tcp_stream() noexcept = default;
  /// Adopts a connected TCP socket (it is made non-blocking and close-on-exec).
  /// Throws std::invalid_argument, naming the fd and what it is, for anything
  /// but an AF_INET or AF_INET6 SOCK_STREAM socket (a UDP or Unix socket, a pipe);
  /// the fd is closed then.
  explicit tcp_stream(unique_fd fd);

  /// Connects to `addr` (IPv4 or IPv6). Throws timeout_error, std::system_error
  /// (ECONNREFUSED, ENETUNREACH, ...), std::invalid_argument for a non-IP address
  /// or a non-positive timeout. To connect to a host name, use eddy::tcp_connect
  /// (<eddy/sched/tcp_connect.hpp>): a name needs the resolver, which runs on the
  /// thread pool, a layer above io/ (docs/layers.md).
  static task<tcp_stream> connect(socket_address addr, tcp_connect_options opts = {});

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

  // ---- TCP options ----

  /// TCP_NODELAY: send small writes at once instead of coalescing (Nagle off).
  void set_nodelay(bool on);
  bool nodelay() const;
  /// SO_KEEPALIVE, and when `on`, the probe timing: first probe after `idle`,
  /// then every `interval`, giving up after `count` probes (each must be ≥ 1;
  /// idle and interval ≤ 32767 s). Throws std::invalid_argument for bad values.
  void set_keepalive(bool on, std::chrono::seconds idle = std::chrono::seconds(60),
                     std::chrono::seconds interval = std::chrono::seconds(10), int count = 6);
  bool keepalive() const;
};

/// A listening TCP socket.
///
/// `accept()` waits for the next connection. On io_uring it runs a multishot
/// accept (one SQE serves every connection; 5.19+), on epoll it tries accept4
/// and waits for readiness on EAGAIN. Either way, when the process runs out of
/// file descriptors (EMFILE/ENFILE), the listener does not spin: it frees its
/// reserve fd, accepts and closes the waiting connection (the client sees a reset
/// rather than a hang), takes the reserve back, and stops as soon as that accept
/// fails (queue empty); if even the reserve cannot be taken back it backs off
/// (10 ms doubling to 1 s) before accepting again. Those connections are counted
/// in `shed_connections()`. Accepts resume by themselves once fds are free.
///
/// **Thread safety:** a move-only value; loop thread only. Several tasks may wait
/// in `accept()` at once; each connection goes to exactly one of them.
/// **Cancel safety:** `accept()` is cancel-safe: a connection accepted by the
/// kernel but not yet handed out stays queued for the next accept().
///
/// ```cpp
/// auto l = eddy::tcp_listener::bind(eddy::socket_address::parse("127.0.0.1:7000"));
/// for (;;) {
///   eddy::tcp_stream s = co_await l.accept();
///   eddy::spawn(serve(std::move(s))).detach();
/// }
/// ```
class tcp_listener {
 public:
  tcp_listener() noexcept = default;

  /// socket + SO_REUSEADDR/SO_REUSEPORT + bind + listen, non-blocking and
  /// close-on-exec. Port 0 picks a free port (see `local_address()`). Throws
  /// std::system_error (EADDRINUSE, EACCES, ...) naming the address,
  /// std::invalid_argument for a non-IP address or a backlog outside 1..65535.
  /// Must be called on a loop thread (the listener uses that loop's backend).
  static tcp_listener bind(const socket_address& addr, tcp_listen_options opts = {});

  /// The next connection (non-blocking, close-on-exec). Throws std::system_error
  /// for errors other than EMFILE/ENFILE/ECONNABORTED (handled, see above).
  task<tcp_stream> accept();
  /// The next connection and its peer's address, as one value (tokio's
  /// `accept() -> (TcpStream, SocketAddr)`): `auto [s, peer] = co_await
  /// l.accept_with_peer();`. Use it rather than `accept()` followed by
  /// `peer_address()`, which throws ENOTCONN once the peer has reset. On epoll
  /// (and io_uring without multishot accept) accept4 fills the address in the same
  /// call, so even a connection that has reset since comes with its address. With
  /// io_uring's multishot accept one address buffer would serve every completion,
  /// so the address is read right after the accept; a connection whose peer reset
  /// in between is closed and skipped, as ECONNABORTED is. Both forms exist
  /// because `accept()` costs nothing extra and most servers never look at the
  /// address. Errors, thread safety and cancel safety: as `accept()`.
  task<accepted<tcp_stream>> accept_with_peer();
  /// Closes the listening socket, cancelling accepts in flight (their waiters get
  /// cancelled_error) and closing connections accepted but not handed out.
  task<void> close();

  socket_address local_address() const;
  int fd() const noexcept { return core_.fd(); }
  explicit operator bool() const noexcept { return core_.fd() >= 0; }
  /// Connections accepted and closed at once because fds ran out (EMFILE/ENFILE).
  std::uint64_t shed_connections() const noexcept { return core_.shed_connections(); }

 private:
  detail::listener_core core_;
};

}  // namespace eddy
