// Name resolution: getaddrinfo on blocking_pool() under slow_work_class(), awaitable
// from a coroutine (eddy::resolve), or blocking (eddy::resolve_blocking).
//
// getaddrinfo cannot be interrupted and may wait for seconds on a dead DNS server; the
// slow-work cap keeps a burst of such lookups from taking every blocking thread.
#pragma once

#include <netdb.h>
#include <sys/socket.h>

#include <cstdint>
#include <eddy/sched/offload.hpp>
#include <eddy/sched/thread_pool.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace eddy {

/// One address getaddrinfo returned, ready for socket()/connect()/bind().
///
/// **Thread safety:** a plain value.
/// **Cancel safety:** not an operation.
///
/// ```cpp
/// int fd = socket(a.family, a.socktype | SOCK_CLOEXEC, a.protocol);
/// connect(fd, a.sockaddr_ptr(), a.length);
/// ```
struct resolved_address {
  int family = AF_UNSPEC;  ///< AF_INET or AF_INET6
  int socktype = 0;        ///< SOCK_STREAM, SOCK_DGRAM, ...
  int protocol = 0;        ///< IPPROTO_TCP, IPPROTO_UDP, ...
  sockaddr_storage storage{};
  socklen_t length = 0;

  /// The address for socket calls; port() in host byte order; to_string() as
  /// "192.0.2.1:80" or "[2001:db8::1]:80". Plain accessors: any thread, nothing to
  /// cancel; example above.
  const sockaddr* sockaddr_ptr() const noexcept {
    return reinterpret_cast<const sockaddr*>(&storage);
  }
  std::uint16_t port() const noexcept;
  std::string to_string() const;
};

/// What to ask getaddrinfo for. Checked by resolve(): family must be AF_UNSPEC, AF_INET
/// or AF_INET6; socktype 0, SOCK_STREAM or SOCK_DGRAM; flags only AI_* bits.
///
/// **Thread safety:** a plain value.
/// **Cancel safety:** not an operation.
///
/// ```cpp
/// eddy::resolve_options v6{.family = AF_INET6};
/// eddy::resolve_options numeric{.flags = AI_NUMERICHOST};  // never touches DNS
/// ```
struct resolve_options {
  int family = AF_UNSPEC;
  int socktype = SOCK_STREAM;
  int flags = 0;
};

/// A lookup that getaddrinfo refused: code() is its EAI_* value; what() says which
/// name failed and why (gai_strerror, or strerror for EAI_SYSTEM).
///
/// **Thread safety:** an exception object.
/// **Cancel safety:** not an operation.
///
/// ```cpp
/// catch (const eddy::resolve_error& e) { if (e.code() == EAI_NONAME) not_found(); }
/// ```
class resolve_error : public std::runtime_error {
 public:
  resolve_error(int code, const std::string& what) : std::runtime_error(what), code_(code) {}
  int code() const noexcept { return code_; }

 private:
  int code_;
};

/// The longest host name (NI_MAXHOST - 1) and service (NI_MAXSERV - 1) resolve accepts.
///
/// **Thread safety:** constants.
/// **Cancel safety:** not operations.
///
/// ```cpp
/// if (host.size() > eddy::max_host_length) return reject("host name too long");
/// ```
inline constexpr std::size_t max_host_length = 1024;
inline constexpr std::size_t max_service_length = 31;

/// Resolves `host` and `service` on the calling thread (it blocks). Throws
/// std::invalid_argument for a bad argument (empty both, too long, NUL byte, bad
/// option) and eddy::resolve_error when getaddrinfo fails. Never returns an empty list.
///
/// **Thread safety:** any thread (getaddrinfo is thread-safe on glibc).
/// **Cancel safety:** blocking; cannot be interrupted.
///
/// ```cpp
/// for (const auto& a : eddy::resolve_blocking("localhost", "8080")) puts(a.to_string().c_str());
/// ```
std::vector<resolved_address> resolve_blocking(std::string_view host, std::string_view service,
                                               const resolve_options& options = {});

/// Throws std::invalid_argument, naming the argument and its limit, if resolve() would
/// reject these arguments; resolve() and resolve_blocking() call it first.
///
/// **Thread safety:** any thread.
/// **Cancel safety:** not an operation.
///
/// ```cpp
/// eddy::check_resolve_arguments(user_host, "443", {});  // before queueing the request
/// ```
void check_resolve_arguments(std::string_view host, std::string_view service,
                             const resolve_options& options);

/// Resolves `host` and `service` with getaddrinfo on blocking_pool(), under
/// slow_work_class() (at most 16 lookups at once), and resumes the awaiting coroutine
/// with the addresses. Arguments are checked at once (std::invalid_argument); lookup
/// failures arrive as eddy::resolve_error.
///
/// **Thread safety:** await on a loop thread.
/// **Cancel safety:** cancel-safe and prompt: cancelling the awaiting task resumes it
/// with eddy::cancelled_error at once. A lookup not yet started is dropped; one already
/// in getaddrinfo finishes in the background (it owns copies of its arguments) and its
/// result is discarded.
///
/// ```cpp
/// eddy::task<void> connect_to(std::string host) {
///   auto addrs = co_await eddy::resolve(host, "443");
///   // try each address in turn...
/// }
/// ```
inline auto resolve(std::string host, std::string service, resolve_options options = {}) {
  check_resolve_arguments(host, service, options);
  return detail::make_offload(
             blocking_pool(), &slow_work_class(),
             [](const std::string& h, const std::string& s, const resolve_options& o) {
               return resolve_blocking(h, s, o);
             },
             std::move(host), std::move(service), options)
      .abandon_on_cancel();
}

}  // namespace eddy
