// UDP sockets: set-up and options; the datagram operations are in socket.cpp.
#include <netinet/in.h>
#include <sys/socket.h>

#include <eddy/io/udp.hpp>
#include <stdexcept>
#include <string>
#include <system_error>

#include "io/net/socket_util.hpp"

namespace eddy {

udp_socket udp_socket::bind(const socket_address& addr, udp_options opts) {
  if (!addr.is_ipv4() && !addr.is_ipv6())
    throw std::invalid_argument("eddy: udp_socket::bind: not an IP address: '" + addr.to_string() +
                                "'");
  unique_fd fd = detail::open_socket(addr.family(), SOCK_DGRAM, IPPROTO_UDP);
  if (opts.reuse_address)
    detail::set_int_option(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1, "eddy: SO_REUSEADDR");
  if (opts.reuse_port)
    detail::set_int_option(fd.get(), SOL_SOCKET, SO_REUSEPORT, 1, "eddy: SO_REUSEPORT");
  if (opts.broadcast)
    detail::set_int_option(fd.get(), SOL_SOCKET, SO_BROADCAST, 1, "eddy: SO_BROADCAST");
  if (addr.is_ipv6())
    detail::set_int_option(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, opts.v6_only ? 1 : 0,
                           "eddy: IPV6_V6ONLY");
  if (::bind(fd.get(), addr.data(), addr.size()) != 0)
    throw std::system_error(errno, std::system_category(), "eddy: bind " + addr.to_string());
  return udp_socket(std::move(fd));
}

udp_socket udp_socket::open(int family) {
  if (family != AF_INET && family != AF_INET6)
    throw std::invalid_argument("eddy: udp_socket::open: family must be AF_INET or AF_INET6");
  return udp_socket(detail::open_socket(family, SOCK_DGRAM, IPPROTO_UDP));
}

}  // namespace eddy
