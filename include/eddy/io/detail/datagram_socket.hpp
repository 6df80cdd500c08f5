// What udp_socket and unix_datagram share: a non-blocking, close-on-exec datagram
// socket and its awaitable operations. Installed, not API: use udp.hpp / unix.hpp.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <eddy/io/address.hpp>
#include <eddy/io/fd.hpp>
#include <eddy/runtime/task.hpp>
#include <span>

namespace eddy {

/// What `recv_from` returns: the datagram's length, its sender, and whether it was
/// cut to fit the buffer (the rest of a datagram is discarded, as the kernel does).
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
///
/// ```cpp
/// eddy::datagram d = co_await sock.recv_from(buf);
/// if (!d.truncated) co_await sock.send_to(std::span(buf).first(d.size), d.from);
/// ```
struct datagram {
  std::size_t size = 0;    ///< bytes stored in the buffer
  socket_address from;     ///< the sender (unnamed for an unbound Unix peer)
  bool truncated = false;  ///< the datagram was longer than the buffer
};

namespace detail {

class datagram_socket {
 public:
  datagram_socket() noexcept = default;
  explicit datagram_socket(unique_fd fd) noexcept : fd_(std::move(fd)) {}

  /// Sets the default peer: `send`/`recv` then talk to it only. Not awaitable
  /// (connect on a datagram socket only records the address).
  void connect(const socket_address& peer);
  /// Sends one datagram to `to`; returns the bytes sent (all of them, or an error
  /// such as EMSGSIZE). Cancel-safe.
  task<std::size_t> send_to(std::span<const std::byte> buf, socket_address to) const;
  /// Receives one datagram and its sender. Cancel-safe (nothing is consumed by a
  /// cancelled receive).
  task<datagram> recv_from(std::span<std::byte> buf) const;
  /// Sends one datagram to the connected peer. Cancel-safe.
  size_awaiter send(std::span<const std::byte> buf) const {
    return size_awaiter(loop::current(), "eddy: send", op_code::send, fd_.get(),
                        const_cast<std::byte*>(buf.data()), clamp_len(buf.size()));
  }
  /// Receives one datagram (from the connected peer, if connected); extra bytes
  /// of a longer datagram are dropped. Cancel-safe.
  size_awaiter recv(std::span<std::byte> buf) const {
    return size_awaiter(loop::current(), "eddy: recv", op_code::recv, fd_.get(), buf.data(),
                        clamp_len(buf.size()));
  }
  /// Closes the socket, cancelling operations in flight on it; closing a closed
  /// or empty socket does nothing.
  task<void> close();
  socket_address local_address() const;
  socket_address peer_address() const;
  int fd() const noexcept { return fd_.get(); }
  explicit operator bool() const noexcept { return static_cast<bool>(fd_); }

 protected:
  unique_fd fd_;
};

}  // namespace detail
}  // namespace eddy
