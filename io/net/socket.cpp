// Socket plumbing shared by TCP, UDP and Unix sockets: creation (always
// non-blocking and close-on-exec, so helper processes inherit nothing), connect,
// options, addresses, and the stream and datagram operations.
//
// Sends go through op_code::send / sendmsg, to which every backend adds
// MSG_NOSIGNAL: a peer that reset the connection gives EPIPE, never SIGPIPE.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <eddy/io/detail/datagram_socket.hpp>
#include <eddy/io/detail/stream_socket.hpp>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace eddy::detail {

namespace {

[[noreturn]] void sys_fail(int err, const std::string& what) {
  throw std::system_error(err, std::system_category(), what);
}

struct msg_awaiter : size_awaiter {
  msghdr msg{};
  msg_awaiter(loop& l, const char* w, op_code c, int fd) : size_awaiter(l, w, c, fd) {
    op.buf = &msg;
  }
};

}  // namespace

unique_fd open_socket(int family, int type, int protocol) {
  const int fd = ::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
  if (fd < 0) sys_fail(errno, "eddy: socket");
  return unique_fd(fd);
}

task<void> connect_socket(int fd, socket_address addr) {
  const int r = co_await raw_op_awaiter(loop::current(), "eddy: connect", op_code::connect, fd,
                                     const_cast<sockaddr*>(addr.data()), addr.size());
  if (r < 0) sys_fail(-r, "eddy: connect to " + addr.to_string());
}

socket_address local_address_of(int fd, const char* what) {
  socket_address a;
  socklen_t len = socket_address::capacity();
  if (::getsockname(fd, a.data(), &len) != 0) sys_fail(errno, std::string(what) + ": getsockname");
  a.resize(len);
  return a;
}

socket_address peer_address_of(int fd, const char* what) {
  socket_address a;
  socklen_t len = socket_address::capacity();
  if (::getpeername(fd, a.data(), &len) != 0) sys_fail(errno, std::string(what) + ": getpeername");
  a.resize(len);
  return a;
}

void set_int_option(int fd, int level, int name, int value, const char* what) {
  if (::setsockopt(fd, level, name, &value, sizeof value) != 0) sys_fail(errno, what);
}

int get_int_option(int fd, int level, int name, const char* what) {
  int v = 0;
  socklen_t len = sizeof v;
  if (::getsockopt(fd, level, name, &v, &len) != 0) sys_fail(errno, what);
  return v;
}

// ---- stream_socket ----

task<void> stream_socket::write_all(std::span<const std::byte> buf) const {
  while (!buf.empty()) {
    const std::size_t n = co_await write_some(buf);
    buf = buf.subspan(n);
  }
}

task<std::size_t> stream_socket::write_vectored(
    std::span<const std::span<const std::byte>> bufs) const {
  constexpr std::size_t iov_max = 1024;
  // Up to 8 buffers (a header and a body, a few queued messages) need no heap.
  iovec small[8];
  std::vector<iovec> big;
  iovec* iov = small;
  std::size_t n = 0;
  const std::size_t want = std::min(bufs.size(), iov_max);
  if (want > std::size(small)) {
    big.resize(want);
    iov = big.data();
  }
  for (std::size_t i = 0; i < bufs.size() && n < iov_max; ++i) {
    if (!bufs[i].empty()) iov[n++] = {const_cast<std::byte*>(bufs[i].data()), bufs[i].size()};
  }
  if (n == 0) co_return 0;
  msg_awaiter a(loop::current(), "eddy: sendmsg", op_code::sendmsg, fd_.get());
  a.msg.msg_iov = iov;
  a.msg.msg_iovlen = n;
  co_return co_await a;
}

task<void> stream_socket::write_all(std::span<const std::span<const std::byte>> bufs) const {
  // One sendmsg per kernel acceptance: a short send leaves the rest of the list,
  // trimmed in place, for the next one. Few buffers stay on the frame.
  std::span<const std::byte> small[8];
  std::vector<std::span<const std::byte>> big;
  std::span<std::span<const std::byte>> rest;
  if (bufs.size() <= std::size(small)) {
    std::copy(bufs.begin(), bufs.end(), small);
    rest = std::span(small, bufs.size());
  } else {
    big.assign(bufs.begin(), bufs.end());
    rest = big;
  }
  std::size_t first = 0;
  while (first < rest.size()) {
    std::size_t n = co_await write_vectored(rest.subspan(first));
    while (first < rest.size() && n >= rest[first].size()) n -= rest[first++].size();
    if (first < rest.size()) rest[first] = rest[first].subspan(n);
  }
}

task<void> stream_socket::read_exact(std::span<std::byte> buf) const {
  std::size_t have = 0;
  while (have < buf.size()) {
    const std::size_t n = co_await read_some(buf.subspan(have));
    if (n == 0)
      throw incomplete_read_error("eddy: read_exact: end of stream after " + std::to_string(have) +
                                      " of " + std::to_string(buf.size()) + " bytes",
                                  std::string(reinterpret_cast<const char*>(buf.data()), have));
    have += n;
  }
}

task<std::size_t> stream_socket::read_to_end(std::vector<std::byte>& out, std::size_t max) const {
  const std::size_t start = out.size();
  std::size_t want = 64 * 1024;
  for (;;) {
    const std::size_t used = out.size();
    if (used - start >= max) {
      // One more byte tells a stream of exactly `max` from a longer one.
      std::byte probe{};
      if (co_await read_some(std::span(&probe, 1)) == 0) co_return used - start;
      out.push_back(probe);
      throw stream_limit_error("eddy: read_to_end: more than " + std::to_string(max) + " bytes");
    }
    const std::size_t room = std::min(want, max - (used - start));
    out.resize(used + room);
    std::size_t n = 0;
    try {
      n = co_await read_some(std::span(out).subspan(used, room));
    } catch (...) {
      out.resize(used);
      throw;
    }
    out.resize(used + n);
    if (n == 0) co_return used - start;
    if (n == room && want < (4u << 20)) want *= 2;  // reads that fill grow, as receive()'s do
  }
}

task<std::size_t> stream_socket::send_file(int file_fd, std::uint64_t offset,
                                          std::size_t count) const {
  if (file_fd < 0) throw std::invalid_argument("eddy: send_file: bad file descriptor");
  constexpr auto off_max = static_cast<std::uint64_t>(INT64_MAX);
  if (count > off_max || offset > off_max - count)
    throw std::invalid_argument("eddy: send_file: offset + count overflows a file offset");
  loop& l = loop::current();
  std::size_t sent = 0;
  auto off = static_cast<off_t>(offset);
  while (sent < count) {
    // At most 1 GiB per call: sendfile moves at most 0x7ffff000 bytes anyway, and
    // a smaller step lets other tasks run between steps of a huge file.
    const std::size_t step = std::min<std::size_t>(count - sent, std::size_t{1} << 30);
    const ssize_t r = ::sendfile(fd_.get(), file_fd, &off, step);
    if (r > 0) {
      sent += static_cast<std::size_t>(r);
      continue;
    }
    if (r == 0) break;  // the file ended
    const int e = errno;
    if (e == EINTR) continue;
    if (e != EAGAIN && e != EWOULDBLOCK) sys_fail(e, "eddy: send_file");
    const int p = co_await raw_op_awaiter(l, "eddy: send_file (poll)", op_code::poll, fd_.get(),
                                          nullptr, 0, POLLOUT);
    if (p < 0) sys_fail(-p, "eddy: send_file (poll)");
  }
  co_return sent;
}

void stream_socket::shutdown_write() const {
  if (::shutdown(fd_.get(), SHUT_WR) != 0) sys_fail(errno, "eddy: shutdown(SHUT_WR)");
}

socket_address stream_socket::local_address() const {
  return local_address_of(fd_.get(), "eddy: local_address");
}
socket_address stream_socket::peer_address() const {
  return peer_address_of(fd_.get(), "eddy: peer_address");
}

// ---- datagram_socket ----

void datagram_socket::connect(const socket_address& peer) {
  if (::connect(fd_.get(), peer.data(), peer.size()) != 0)
    sys_fail(errno, "eddy: connect to " + peer.to_string());
}

task<std::size_t> datagram_socket::send_to(std::span<const std::byte> buf,
                                           socket_address to) const {
  iovec iov{const_cast<std::byte*>(buf.data()), buf.size()};
  msg_awaiter a(loop::current(), "eddy: sendto", op_code::sendmsg, fd_.get());
  a.msg.msg_name = to.data();
  a.msg.msg_namelen = to.size();
  a.msg.msg_iov = &iov;
  a.msg.msg_iovlen = 1;
  co_return co_await a;
}

task<datagram> datagram_socket::recv_from(std::span<std::byte> buf) const {
  datagram d;
  iovec iov{buf.data(), buf.size()};
  msg_awaiter a(loop::current(), "eddy: recvfrom", op_code::recvmsg, fd_.get());
  a.msg.msg_name = d.from.data();
  a.msg.msg_namelen = socket_address::capacity();
  a.msg.msg_iov = &iov;
  a.msg.msg_iovlen = 1;
  d.size = co_await a;
  if (a.msg.msg_namelen == 0) {
    // Linux reports an unbound Unix sender with no address at all: say "unnamed".
    d.from.data()->sa_family = AF_UNIX;
    d.from.resize(sizeof(sa_family_t));
  } else {
    d.from.resize(a.msg.msg_namelen);
  }
  d.truncated = (a.msg.msg_flags & MSG_TRUNC) != 0;
  co_return d;
}

task<void> datagram_socket::close() {
  if (fd_) co_await fd_.close();
}

socket_address datagram_socket::local_address() const {
  return local_address_of(fd_.get(), "eddy: local_address");
}
socket_address datagram_socket::peer_address() const {
  return peer_address_of(fd_.get(), "eddy: peer_address");
}

}  // namespace eddy::detail
