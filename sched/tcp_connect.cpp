// eddy::tcp_connect (include/eddy/sched/tcp_connect.hpp): a numeric host goes
// straight to tcp_stream::connect; a name goes through eddy::resolve, then each
// address in getaddrinfo's order, the first that accepts wins. One timer bounds
// the whole (with_timeout around lookup and attempts); each attempt also carries
// the caller's options, so its own timer can never outlast the outer one.
#include <sys/socket.h>

#include <eddy/io/address.hpp>
#include <eddy/runtime/time.hpp>
#include <eddy/sched/tcp_connect.hpp>
#include <exception>
#include <stdexcept>
#include <system_error>
#include <utility>
#include <vector>

namespace eddy {
namespace {

task<tcp_stream> resolve_and_connect(std::string host, std::uint16_t port,
                                     tcp_connect_options opts) {
  const std::vector<resolved_address> addrs = co_await resolve(host, std::to_string(port));
  std::exception_ptr last;
  for (const resolved_address& r : addrs) {
    try {
      co_return co_await tcp_stream::connect(
          socket_address::from_sockaddr(r.sockaddr_ptr(), r.length), opts);
    } catch (const std::system_error&) {
      last = std::current_exception();  // refused or unreachable: try the next one
    }
  }
  if (last) std::rethrow_exception(last);
  throw std::system_error(EHOSTUNREACH, std::system_category(),
                          "eddy::tcp_connect: no address for " + host);
}

}  // namespace

task<tcp_stream> tcp_connect(std::string host, std::uint16_t port, tcp_connect_options opts) {
  if (opts.timeout.count() <= 0)
    throw std::invalid_argument("eddy::tcp_connect: timeout must be positive");
  if (host.empty()) throw address_error("eddy::tcp_connect: empty host");
  socket_address numeric;
  bool is_numeric = true;
  try {
    numeric = socket_address::ip(host, port);
  } catch (const address_error&) {
    is_numeric = false;
  }
  if (is_numeric) co_return co_await tcp_stream::connect(numeric, opts);
  std::string what = "tcp_connect to " + host + " port " + std::to_string(port);
  co_return co_await with_timeout(opts.timeout, resolve_and_connect(std::move(host), port, opts),
                                  std::move(what));
}

}  // namespace eddy
