// attempt_op: the one system call behind each one-shot op, for the readiness
// engine (see readiness_engine.hpp). Sends always carry MSG_NOSIGNAL; splice is
// made non-blocking; a connect that was retried after EINPROGRESS reads its
// outcome from SO_ERROR, and counts as done only once the socket has a peer: a
// spurious wakeup (an event meant for an earlier file under the number) finds the
// handshake still running and waits on.
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <fcntl.h>

#include <cerrno>
#include <climits>

#include "io/readiness/readiness_engine.hpp"

namespace eddy::detail {

namespace {

ssize_t call(io_op& op) noexcept {
  const std::size_t len = op.len;
  const bool at_pos = op.offset == UINT64_MAX;
  const auto off = static_cast<off_t>(op.offset);
  switch (op.code) {
    case op_code::read:
      return at_pos ? ::read(op.fd, op.buf, len) : ::pread(op.fd, op.buf, len, off);
    case op_code::write:
      return at_pos ? ::write(op.fd, op.buf, len) : ::pwrite(op.fd, op.buf, len, off);
    case op_code::readv:
      return at_pos ? ::readv(op.fd, static_cast<iovec*>(op.buf), static_cast<int>(len))
                    : ::preadv(op.fd, static_cast<iovec*>(op.buf), static_cast<int>(len), off);
    case op_code::writev:
      return at_pos ? ::writev(op.fd, static_cast<iovec*>(op.buf), static_cast<int>(len))
                    : ::pwritev(op.fd, static_cast<iovec*>(op.buf), static_cast<int>(len), off);
    case op_code::accept:
      return ::accept4(op.fd, static_cast<sockaddr*>(op.buf), static_cast<socklen_t*>(op.aux),
                       static_cast<int>(op.flags));
    case op_code::connect: {
      if (op.state == op_state::in_flight) {
        int so = 0;
        socklen_t sl = sizeof so;
        if (::getsockopt(op.fd, SOL_SOCKET, SO_ERROR, &so, &sl) != 0) return -1;
        if (so != 0) {
          errno = so;
          return -1;
        }
        sockaddr_storage peer;
        socklen_t pl = sizeof peer;
        if (::getpeername(op.fd, reinterpret_cast<sockaddr*>(&peer), &pl) == 0) return 0;
        if (errno == ENOTCONN) errno = EAGAIN;  // still connecting
        return -1;
      }
      const int r = ::connect(op.fd, static_cast<sockaddr*>(op.buf), static_cast<socklen_t>(len));
      if (r != 0 && errno == EINPROGRESS) errno = EAGAIN;
      return r;
    }
    case op_code::recv:
      return ::recv(op.fd, op.buf, len, static_cast<int>(op.flags));
    case op_code::send:
      return ::send(op.fd, op.buf, len, static_cast<int>(op.flags) | MSG_NOSIGNAL);
    case op_code::recvmsg:
      return ::recvmsg(op.fd, static_cast<msghdr*>(op.buf), static_cast<int>(op.flags));
    case op_code::sendmsg:
      return ::sendmsg(op.fd, static_cast<msghdr*>(op.buf),
                       static_cast<int>(op.flags) | MSG_NOSIGNAL);
    case op_code::splice:
      return ::splice(op.fd, nullptr, op.aux_fd, nullptr, len, op.flags | SPLICE_F_NONBLOCK);
    default:
      errno = EINVAL;
      return -1;
  }
}

}  // namespace

int attempt_op(io_op& op) noexcept {
  for (;;) {
    const ssize_t r = call(op);
    if (r >= 0) return r > INT_MAX ? INT_MAX : static_cast<int>(r);
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK) return -EAGAIN;
    return -errno;
  }
}

}  // namespace eddy::detail
