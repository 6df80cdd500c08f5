// Private helpers shared by the socket sources in io/net/ (not installed).
#pragma once

#include <eddy/io/address.hpp>
#include <eddy/io/detail/stream_socket.hpp>
#include <eddy/io/fd.hpp>

namespace eddy::detail {

/// Makes an adopted fd non-blocking and close-on-exec, as the backends require.
unique_fd adopt_nonblocking(unique_fd fd, const char* what);
/// Throws std::invalid_argument, naming the fd and what it is, unless `fd` is a
/// SOCK_STREAM socket of family AF_UNIX (`unix_family`) or AF_INET/AF_INET6.
void check_stream_socket(int fd, bool unix_family, const char* what);
/// Puts an fd eddy opened itself (non-blocking, close-on-exec, of the right kind:
/// accepted, connected, from socketpair) in a stream type, with no system call.
template <class Stream>
Stream wrap_own_stream(unique_fd fd) {
  Stream s;
  static_cast<stream_socket&>(s) = stream_socket(std::move(fd));
  return s;
}
/// Throws std::invalid_argument unless 1 <= backlog <= 65535.
void check_backlog(int backlog, const char* what);
/// bind + listen; std::system_error names the address.
void bind_and_listen(int fd, const socket_address& addr, int backlog);

}  // namespace eddy::detail
