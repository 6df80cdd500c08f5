// Socket addresses: IPv4, IPv6 (with a scope), Unix paths and Linux abstract names.
// Parsing never trusts its input: every malformed string gives address_error with
// the offending text and the reason, never a crash or a silently wrong address.
#pragma once

#include <sys/socket.h>

#include <compare>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace eddy {

/// Thrown for malformed addresses, ports and host:port strings. Derives from
/// std::invalid_argument: it is always the caller's input that is wrong.
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
///
/// ```cpp
/// try { eddy::socket_address::parse("1.2.3.4:99999"); }
/// catch (const eddy::address_error& e) { std::puts(e.what()); }  // "... port out of range"
/// ```
class address_error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// Longest input `parse` looks at (longer strings are rejected, not truncated).
inline constexpr std::size_t max_address_text = 1024;

/// A socket address: AF_INET, AF_INET6, AF_UNIX (path or abstract), or empty
/// (AF_UNSPEC, the default). A value type over `sockaddr_storage`.
///
/// Text forms, accepted by `parse` and produced by `to_string`:
///  - `192.0.2.1:80`                        IPv4, dotted quad, port 0..65535
///  - `[2001:db8::1]:80`, `[fe80::1%eth0]:80` IPv6 in brackets; scope by name or number
///  - `unix:/run/app.sock`, or any text starting with `/` or `./`: a Unix path
///    (at most 107 bytes, no NUL)
///  - `unix:@name` or `@name`: a Linux abstract name (at most 107 bytes)
///
/// Host names are not addresses: resolve them with `eddy::resolve`, or connect with
/// `eddy::tcp_connect(host, port)` (<eddy/sched/tcp_connect.hpp>), which does.
///
/// **Thread safety:** a plain value; const members may be used from any thread.
/// **Cancel safety:** n/a (nothing here suspends).
///
/// ```cpp
/// auto a = eddy::socket_address::parse("[::1]:8080");
/// assert(a.is_ipv6() && a.port() == 8080 && a.to_string() == "[::1]:8080");
/// auto u = eddy::socket_address::unix_abstract("eddy-test");
/// ```
class socket_address {
 public:
  socket_address() noexcept;

  /// Parses any of the text forms above. Throws address_error.
  static socket_address parse(std::string_view text);
  /// A numeric IPv4 or IPv6 host (no brackets; IPv6 may carry `%scope`) and a
  /// port. Throws address_error (a host name is an error here).
  static socket_address ip(std::string_view host, std::uint16_t port);
  /// `0.0.0.0:port` (or `[::]:port` when `ipv6`): every local interface.
  static socket_address any(std::uint16_t port, bool ipv6 = false) noexcept;
  /// `127.0.0.1:port` (or `[::1]:port`).
  static socket_address loopback(std::uint16_t port, bool ipv6 = false) noexcept;
  /// A filesystem Unix socket path. Throws address_error if empty, longer than
  /// 107 bytes, or containing NUL.
  static socket_address unix_path(std::string_view path);
  /// A Linux abstract Unix name (no leading NUL or `@` in `name`). Throws
  /// address_error if longer than 107 bytes.
  static socket_address unix_abstract(std::string_view name);
  /// Copies a kernel-provided address. Throws address_error if `len` is larger than
  /// sockaddr_storage or the family is not INET, INET6 or UNIX.
  static socket_address from_sockaddr(const sockaddr* sa, socklen_t len);

  int family() const noexcept;
  bool empty() const noexcept { return family() == AF_UNSPEC; }
  bool is_ipv4() const noexcept { return family() == AF_INET; }
  bool is_ipv6() const noexcept { return family() == AF_INET6; }
  bool is_unix() const noexcept { return family() == AF_UNIX; }
  /// A Unix address in the abstract namespace.
  bool is_abstract() const noexcept;
  /// An unnamed Unix address (an unbound socket's peer, a socketpair).
  bool is_unnamed_unix() const noexcept { return is_unix() && len_ <= sizeof(sa_family_t); }

  /// The port in host byte order; 0 for Unix addresses.
  std::uint16_t port() const noexcept;
  /// Returns a copy with the port replaced (IP addresses only; others unchanged).
  socket_address with_port(std::uint16_t port) const noexcept;
  /// The host without port: `192.0.2.1`, `fe80::1%eth0`, the Unix path, or
  /// `@name` for an abstract name.
  std::string host() const;
  /// The text form that `parse` accepts back (`""` for an empty address,
  /// `unix:` for an unnamed Unix address).
  std::string to_string() const;

  const sockaddr* data() const noexcept { return reinterpret_cast<const sockaddr*>(&storage_); }
  sockaddr* data() noexcept { return reinterpret_cast<sockaddr*>(&storage_); }
  socklen_t size() const noexcept { return len_; }
  /// For code that lets the kernel fill the address (accept, recvfrom): the
  /// capacity to pass, then `resize` with what the kernel wrote.
  static constexpr socklen_t capacity() noexcept { return sizeof(sockaddr_storage); }
  void resize(socklen_t len) noexcept { len_ = len > capacity() ? capacity() : len; }

  friend bool operator==(const socket_address& a, const socket_address& b) noexcept;

 private:
  sockaddr_storage storage_;
  socklen_t len_ = 0;
};

/// A parsed `HOST:PORT` whose host may be a name (for command lines such as
/// `--listen 127.0.0.1:7000` or `--upstream example.org:80`).
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
///
/// ```cpp
/// auto [host, port] = eddy::split_host_port("example.org:80");
/// auto s = co_await eddy::tcp_connect(host, port);  // <eddy/sched/tcp_connect.hpp>
/// ```
struct host_port {
  std::string host;  ///< name or numeric address, IPv6 without its brackets
  std::uint16_t port = 0;
};

/// Splits `HOST:PORT` or `[IPV6]:PORT`. The host must be non-empty, at most 1024
/// bytes and contain no whitespace or control characters. Throws address_error.
///
/// **Thread safety:** any thread. **Cancel safety:** n/a.
///
/// ```cpp
/// auto hp = eddy::split_host_port("[::1]:7000");  // {"::1", 7000}
/// ```
host_port split_host_port(std::string_view text);

/// Parses a decimal port, 0..65535: digits only, no sign, no spaces. Throws
/// address_error naming the text.
///
/// **Thread safety:** any thread. **Cancel safety:** n/a.
///
/// ```cpp
/// std::uint16_t p = eddy::parse_port(argv[2]);   // "8080" -> 8080; "80x" throws
/// ```
std::uint16_t parse_port(std::string_view text);

}  // namespace eddy
