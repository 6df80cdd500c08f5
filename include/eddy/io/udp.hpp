// UDP sockets.
#pragma once

#include <eddy/io/address.hpp>
#include <eddy/io/detail/datagram_socket.hpp>

namespace eddy {

/// Options for `udp_socket::bind`.
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
///
/// ```cpp
/// auto s = eddy::udp_socket::bind(eddy::socket_address::any(5353), {.reuse_port = true});
/// ```
struct udp_options {
  bool reuse_address = false;  ///< SO_REUSEADDR
  bool reuse_port = false;     ///< SO_REUSEPORT (several sockets share the port)
  bool broadcast = false;      ///< SO_BROADCAST
  bool v6_only = false;        ///< IPV6_V6ONLY for an IPv6 address
};

/// A UDP socket: `send_to` / `recv_from`, or `connect` then `send` / `recv`.
///
/// A datagram is never split: `recv_from` into a short buffer returns
/// `truncated = true` and the kernel drops the rest. ICMP errors from a connected
/// peer (ECONNREFUSED) surface on the next operation as std::system_error.
///
/// **Thread safety:** a move-only value; loop thread only. Concurrent sends (or
/// receives) from several tasks are fine: each is one whole datagram.
/// **Cancel safety:** every operation is cancel-safe: a cancelled receive consumes
/// no datagram, a cancelled send sent the whole datagram or nothing.
///
/// ```cpp
/// auto s = eddy::udp_socket::bind(eddy::socket_address::parse("127.0.0.1:0"));
/// co_await s.send_to(std::as_bytes(std::span("hi", 2)), peer);
/// std::array<std::byte, 1500> b;
/// eddy::datagram d = co_await s.recv_from(b);   // d.size, d.from, d.truncated
/// ```
class udp_socket : public detail::datagram_socket {
 public:
  udp_socket() noexcept = default;

  /// A socket bound to `addr` (port 0 picks one). Throws std::system_error naming
  /// the address, std::invalid_argument for a non-IP address.
  static udp_socket bind(const socket_address& addr, udp_options opts = {});
  /// An unbound socket of `family` (AF_INET or AF_INET6); the kernel binds it to
  /// an ephemeral port on the first send.
  static udp_socket open(int family = AF_INET);

  // connect, send_to, recv_from, send, recv, close, local_address, peer_address,
  // fd: see detail::datagram_socket and the class comment.

 private:
  explicit udp_socket(unique_fd fd) noexcept : datagram_socket(std::move(fd)) {}
};

}  // namespace eddy
