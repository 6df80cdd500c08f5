// eddy::accepted: what accept_with_peer() returns, a new connection with the
// address of the peer it came from.
#pragma once

#include <eddy/io/address.hpp>

namespace eddy {

/// A connection taken by `tcp_listener::accept_with_peer()` or
/// `unix_listener::accept_with_peer()`, with its peer's address (tokio's
/// `(TcpStream, SocketAddr)`, Asio's `accept(socket, endpoint)`). An aggregate,
/// so it unpacks with a structured binding.
///
/// **Thread safety:** a move-only value (as `Stream`). **Cancel safety:** n/a.
///
/// ```cpp
/// auto [stream, peer] = co_await listener.accept_with_peer();
/// std::printf("connection from %s\n", peer.to_string().c_str());
/// ```
template <class Stream>
struct accepted {
  Stream stream;        ///< the connected socket
  socket_address peer;  ///< who connected (for a Unix socket, usually unnamed)
};

}  // namespace eddy
