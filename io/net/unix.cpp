// Unix-domain stream and datagram sockets.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <eddy/io/unix.hpp>
#include <stdexcept>
#include <string>
#include <system_error>

#include "io/net/socket_util.hpp"

namespace eddy {

namespace {

void check_unix(const socket_address& a, const char* what) {
  if (!a.is_unix() || a.is_unnamed_unix())
    throw std::invalid_argument(std::string(what) + ": not a named Unix address: '" +
                                a.to_string() + "'");
}

void bind_or_throw(int fd, const socket_address& addr) {
  if (::bind(fd, addr.data(), addr.size()) != 0)
    throw std::system_error(errno, std::system_category(), "eddy: bind " + addr.to_string());
}

template <class Pair>
Pair make_pair(int type) {
  int sv[2];
  if (::socketpair(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
    throw std::system_error(errno, std::system_category(), "eddy: socketpair");
  return Pair(unique_fd(sv[0]), unique_fd(sv[1]));
}

}  // namespace

unix_stream::unix_stream(unique_fd fd)
    : stream_socket((detail::check_stream_socket(fd.get(), true, "eddy: unix_stream"),
                     detail::adopt_nonblocking(std::move(fd), "eddy: unix_stream"))) {}

task<unix_stream> unix_stream::connect(socket_address addr) {
  check_unix(addr, "eddy: unix_stream::connect");
  unique_fd fd = detail::open_socket(AF_UNIX, SOCK_STREAM);
  co_await detail::connect_socket(fd.get(), addr);
  co_return detail::wrap_own_stream<unix_stream>(std::move(fd));
}

std::pair<unix_stream, unix_stream> unix_stream::pair() {
  auto [a, b] = make_pair<std::pair<unique_fd, unique_fd>>(SOCK_STREAM);
  return {detail::wrap_own_stream<unix_stream>(std::move(a)),
          detail::wrap_own_stream<unix_stream>(std::move(b))};
}

unix_listener unix_listener::bind(const socket_address& addr, unix_listen_options opts) {
  check_unix(addr, "eddy: unix_listener::bind");
  detail::check_backlog(opts.backlog, "eddy: unix_listener::bind");
  loop::current();
  if (opts.unlink_existing && !addr.is_abstract()) {
    const std::string path = addr.host();
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path.c_str());
  }
  unique_fd fd = detail::open_socket(AF_UNIX, SOCK_STREAM);
  detail::bind_and_listen(fd.get(), addr, opts.backlog);
  unix_listener l;
  l.core_ = detail::listener_core(std::move(fd), true);
  return l;
}

task<unix_stream> unix_listener::accept() {
  co_return detail::wrap_own_stream<unix_stream>(co_await core_.accept_fd());
}

task<accepted<unix_stream>> unix_listener::accept_with_peer() {
  detail::accepted_fd a = co_await core_.accept_fd_with_peer();
  co_return accepted<unix_stream>{detail::wrap_own_stream<unix_stream>(std::move(a.fd)), a.peer};
}

task<void> unix_listener::close() {
  return core_.close();
}

socket_address unix_listener::local_address() const {
  return detail::local_address_of(fd(), "eddy: unix_listener");
}

unix_datagram unix_datagram::bind(const socket_address& addr) {
  check_unix(addr, "eddy: unix_datagram::bind");
  unique_fd fd = detail::open_socket(AF_UNIX, SOCK_DGRAM);
  bind_or_throw(fd.get(), addr);
  return unix_datagram(std::move(fd));
}

unix_datagram unix_datagram::open() {
  return unix_datagram(detail::open_socket(AF_UNIX, SOCK_DGRAM));
}

std::pair<unix_datagram, unix_datagram> unix_datagram::pair() {
  auto [a, b] = make_pair<std::pair<unique_fd, unique_fd>>(SOCK_DGRAM);
  return {unix_datagram(std::move(a)), unix_datagram(std::move(b))};
}

}  // namespace eddy
