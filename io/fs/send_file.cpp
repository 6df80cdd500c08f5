// eddy::send_file: sendfile(2) on a non-blocking socket, waiting for POLLOUT
// through the loop whenever the socket's buffer is full.
#include <poll.h>
#include <sys/sendfile.h>

#include <cerrno>
#include <stdexcept>
#include <string>
#include <system_error>

#include <eddy/io/fd.hpp>
#include <eddy/io/send_file.hpp>

namespace eddy {

task<std::uint64_t> send_file(const detail::stream_socket& s, const fs::file& f,
                              std::uint64_t offset, std::uint64_t count) {
  if (offset + count < offset)
    throw std::invalid_argument("eddy::send_file: offset + count overflows");
  std::uint64_t sent = 0;
  while (sent < count) {
    off_t off = static_cast<off_t>(offset + sent);
    const std::uint64_t want = std::min<std::uint64_t>(count - sent, 0x7ffff000);
    const ssize_t r = ::sendfile(s.fd(), f.fd(), &off, static_cast<std::size_t>(want));
    if (r > 0) {
      sent += static_cast<std::uint64_t>(r);
      continue;
    }
    if (r == 0)
      throw std::system_error(EIO, std::system_category(),
                              "eddy::send_file " + f.path() + ": the file ends at " +
                                  std::to_string(offset + sent) + ", before " +
                                  std::to_string(offset + count));
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      (void)co_await eddy::poll(s.fd(), POLLOUT);
      continue;
    }
    throw std::system_error(errno, std::system_category(),
                            "eddy::send_file " + f.path() + " (socket fd " +
                                std::to_string(s.fd()) + ")");
  }
  co_return sent;
}

}  // namespace eddy
