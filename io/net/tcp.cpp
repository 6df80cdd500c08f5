// tcp_stream and tcp_listener: socket set-up and TCP options. The I/O itself is
// in socket.cpp (shared with Unix sockets), accepting in listener.cpp.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <eddy/io/tcp.hpp>
#include <eddy/runtime/time.hpp>
#include <stdexcept>
#include <string>
#include <system_error>

#include "io/net/socket_util.hpp"

namespace eddy {

namespace detail {

// Adopted fds may come from anywhere (inherited, socketpair, another library):
// make them what the backends require.
unique_fd adopt_nonblocking(unique_fd fd, const char* what) {
  const int f = fd.get();
  const int fl = ::fcntl(f, F_GETFL);
  if (fl < 0 || ::fcntl(f, F_SETFL, fl | O_NONBLOCK) != 0 || ::fcntl(f, F_SETFD, FD_CLOEXEC) != 0)
    throw std::system_error(errno, std::system_category(), what);
  return fd;
}

void check_stream_socket(int fd, bool unix_family, const char* what) {
  const char* want = unix_family ? "a connected Unix stream socket (AF_UNIX, SOCK_STREAM)"
                                 : "a connected TCP socket (AF_INET or AF_INET6, SOCK_STREAM)";
  int type = 0, family = 0;
  socklen_t len = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
    if (errno != ENOTSOCK) throw std::system_error(errno, std::system_category(), what);
    throw std::invalid_argument(std::string(what) + ": fd " + std::to_string(fd) +
                                " is not a socket; wants " + want);
  }
  len = sizeof family;
  if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &len) != 0)
    throw std::system_error(errno, std::system_category(), what);
  const bool family_ok = unix_family ? family == AF_UNIX : family == AF_INET || family == AF_INET6;
  if (type == SOCK_STREAM && family_ok) return;
  const char* type_name = type == SOCK_STREAM      ? "stream"
                          : type == SOCK_DGRAM     ? "datagram"
                          : type == SOCK_SEQPACKET ? "seqpacket"
                          : type == SOCK_RAW       ? "raw"
                                                   : "other";
  const char* family_name = family == AF_UNIX    ? "AF_UNIX"
                            : family == AF_INET  ? "AF_INET"
                            : family == AF_INET6 ? "AF_INET6"
                                                 : "another family";
  throw std::invalid_argument(std::string(what) + ": fd " + std::to_string(fd) + " is a " +
                              type_name + " socket of " + family_name + "; wants " + want);
}

void check_backlog(int backlog, const char* what) {
  if (backlog < 1 || backlog > 65535)
    throw std::invalid_argument(std::string(what) + ": backlog must be 1..65535, got " +
                                std::to_string(backlog));
}

void bind_and_listen(int fd, const socket_address& addr, int backlog) {
  if (::bind(fd, addr.data(), addr.size()) != 0)
    throw std::system_error(errno, std::system_category(), "eddy: bind " + addr.to_string());
  if (::listen(fd, backlog) != 0)
    throw std::system_error(errno, std::system_category(), "eddy: listen " + addr.to_string());
}

}  // namespace detail

namespace {

void check_ip(const socket_address& a, const char* what) {
  if (!a.is_ipv4() && !a.is_ipv6())
    throw std::invalid_argument(std::string(what) + ": not an IP address: '" + a.to_string() + "'");
}

task<tcp_stream> connect_once(socket_address addr, bool nodelay) {
  unique_fd fd = detail::open_socket(addr.family(), SOCK_STREAM, IPPROTO_TCP);
  co_await detail::connect_socket(fd.get(), addr);
  tcp_stream s = detail::wrap_own_stream<tcp_stream>(std::move(fd));
  if (nodelay) s.set_nodelay(true);
  co_return s;
}

void check_timeout(std::chrono::milliseconds t) {
  if (t.count() <= 0)
    throw std::invalid_argument("eddy: tcp_stream::connect: timeout must be positive");
}

}  // namespace

tcp_stream::tcp_stream(unique_fd fd)
    : stream_socket((detail::check_stream_socket(fd.get(), false, "eddy: tcp_stream"),
                     detail::adopt_nonblocking(std::move(fd), "eddy: tcp_stream"))) {}

task<tcp_stream> tcp_stream::connect(socket_address addr, tcp_connect_options opts) {
  check_ip(addr, "eddy: tcp_stream::connect");
  check_timeout(opts.timeout);
  co_return co_await with_timeout(opts.timeout, connect_once(addr, opts.nodelay),
                                  "connect to " + addr.to_string());
}

void tcp_stream::set_nodelay(bool on) {
  detail::set_int_option(fd(), IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0, "eddy: TCP_NODELAY");
}
bool tcp_stream::nodelay() const {
  return detail::get_int_option(fd(), IPPROTO_TCP, TCP_NODELAY, "eddy: TCP_NODELAY") != 0;
}

void tcp_stream::set_keepalive(bool on, std::chrono::seconds idle, std::chrono::seconds interval,
                               int count) {
  if (on) {
    if (idle.count() < 1 || idle.count() > 32767 || interval.count() < 1 ||
        interval.count() > 32767)
      throw std::invalid_argument(
          "eddy: tcp_stream::set_keepalive: idle and interval must be 1..32767 s");
    if (count < 1 || count > 127)
      throw std::invalid_argument("eddy: tcp_stream::set_keepalive: count must be 1..127");
    detail::set_int_option(fd(), IPPROTO_TCP, TCP_KEEPIDLE, static_cast<int>(idle.count()),
                           "eddy: TCP_KEEPIDLE");
    detail::set_int_option(fd(), IPPROTO_TCP, TCP_KEEPINTVL, static_cast<int>(interval.count()),
                           "eddy: TCP_KEEPINTVL");
    detail::set_int_option(fd(), IPPROTO_TCP, TCP_KEEPCNT, count, "eddy: TCP_KEEPCNT");
  }
  detail::set_int_option(fd(), SOL_SOCKET, SO_KEEPALIVE, on ? 1 : 0, "eddy: SO_KEEPALIVE");
}
bool tcp_stream::keepalive() const {
  return detail::get_int_option(fd(), SOL_SOCKET, SO_KEEPALIVE, "eddy: SO_KEEPALIVE") != 0;
}

tcp_listener tcp_listener::bind(const socket_address& addr, tcp_listen_options opts) {
  check_ip(addr, "eddy: tcp_listener::bind");
  detail::check_backlog(opts.backlog, "eddy: tcp_listener::bind");
  loop::current();  // throws std::logic_error off a loop thread, before any fd exists
  unique_fd fd = detail::open_socket(addr.family(), SOCK_STREAM, IPPROTO_TCP);
  if (opts.reuse_address)
    detail::set_int_option(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1, "eddy: SO_REUSEADDR");
  if (opts.reuse_port)
    detail::set_int_option(fd.get(), SOL_SOCKET, SO_REUSEPORT, 1, "eddy: SO_REUSEPORT");
  if (addr.is_ipv6())
    detail::set_int_option(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, opts.v6_only ? 1 : 0,
                           "eddy: IPV6_V6ONLY");
  detail::bind_and_listen(fd.get(), addr, opts.backlog);
  tcp_listener l;
  l.core_ = detail::listener_core(std::move(fd), true);
  return l;
}

task<tcp_stream> tcp_listener::accept() {
  co_return detail::wrap_own_stream<tcp_stream>(co_await core_.accept_fd());
}

task<accepted<tcp_stream>> tcp_listener::accept_with_peer() {
  detail::accepted_fd a = co_await core_.accept_fd_with_peer();
  co_return accepted<tcp_stream>{detail::wrap_own_stream<tcp_stream>(std::move(a.fd)), a.peer};
}

task<void> tcp_listener::close() {
  return core_.close();
}

socket_address tcp_listener::local_address() const {
  return detail::local_address_of(fd(), "eddy: tcp_listener");
}

}  // namespace eddy
