// Private helpers shared by the socket sources in io/net/ (not installed).
#pragma once

#include <eddy/io/address.hpp>
#include <eddy/io/detail/stream_socket.hpp>
#include <eddy/io/fd.hpp>

namespace eddy::detail {

/// Makes an adopted fd non-blocking and close-on-exec, as the backends require.
unique_fd adopt_nonblocking(unique_fd fd, const char* what);
/// Throws std::invalid_argument unless 1 <= backlog <= 65535.
void check_backlog(int backlog, const char* what);
/// bind + listen; std::system_error names the address.
void bind_and_listen(int fd, const socket_address& addr, int backlog);

}  // namespace eddy::detail
