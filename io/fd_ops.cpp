// Glue between eddy's fd awaitables and the running loop's backend.
#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <system_error>

#include <eddy/io/fd.hpp>

#include "io/backend.hpp"

namespace eddy::detail {

// The loop that closes need not be the one that watches fd (docs/fd_ownership.md):
// its backend, or hand_off_close where no loop runs, sends the close to the
// watching loop.
void close_fd_now(loop* l, int fd) noexcept {
  if (l != nullptr && !l->is_closed())
    detail::loop_io(*l).close_now(fd);
  else if (!hand_off_close(fd))
    ::close(fd);
}

void throw_errno(int err, const char* what, int fd) {
  throw std::system_error(err, std::system_category(), std::string(what) + " (fd " + std::to_string(fd) + ")");
}

}  // namespace eddy::detail

namespace eddy {

task<void> write_all(int fd, std::span<const std::byte> buf) {
  while (!buf.empty()) {
    const std::size_t n = co_await write(fd, buf);
    buf = buf.subspan(n);
  }
}

std::pair<unique_fd, unique_fd> make_pipe() {
  int p[2];
  if (::pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0)
    throw std::system_error(errno, std::system_category(), "eddy::make_pipe");
  return {unique_fd(p[0]), unique_fd(p[1])};
}

}  // namespace eddy
