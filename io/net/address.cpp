// socket_address: parsing and formatting. Input is untrusted (command lines,
// config files): every path through parse() either builds a complete address or
// throws address_error quoting the text (cut to 64 bytes) and the reason.
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cstring>
#include <eddy/io/address.hpp>
#include <string>

namespace eddy {
namespace {

constexpr std::size_t max_unix_path = sizeof(sockaddr_un::sun_path) - 1;  // 107: room for the NUL

std::string quote(std::string_view t) {
  std::string q = "'";
  for (char c : t.substr(0, 64)) q += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  if (t.size() > 64) q += "...";
  return q + "'";
}

[[noreturn]] void fail(std::string_view text, const char* why) {
  throw address_error("eddy: bad address " + quote(text) + ": " + why);
}

bool parse_v4(std::string_view host, in_addr& out) {
  // inet_pton accepts exactly the dotted quad (no octal, no short forms), which is
  // what we want: "010.1" must not silently mean 8.0.0.1.
  if (host.empty() || host.size() > 15) return false;
  char buf[16];
  std::memcpy(buf, host.data(), host.size());
  buf[host.size()] = '\0';
  return ::inet_pton(AF_INET, buf, &out) == 1;
}

bool parse_v6(std::string_view host, sockaddr_in6& out, std::string_view whole) {
  std::string_view scope;
  if (auto pct = host.find('%'); pct != std::string_view::npos) {
    scope = host.substr(pct + 1);
    host = host.substr(0, pct);
    if (scope.empty()) fail(whole, "empty IPv6 scope after '%'");
  }
  if (host.empty() || host.size() > INET6_ADDRSTRLEN) return false;
  char buf[INET6_ADDRSTRLEN + 1];
  std::memcpy(buf, host.data(), host.size());
  buf[host.size()] = '\0';
  if (::inet_pton(AF_INET6, buf, &out.sin6_addr) != 1) return false;
  if (!scope.empty()) {
    if (scope.size() >= IF_NAMESIZE &&
        scope.find_first_not_of("0123456789") != std::string_view::npos)
      fail(whole, "IPv6 scope (interface name) too long");
    if (scope.find_first_not_of("0123456789") == std::string_view::npos) {
      if (scope.size() > 10) fail(whole, "IPv6 scope id out of range");
      const unsigned long v = std::stoul(std::string(scope));
      if (v > 0xffffffffUL) fail(whole, "IPv6 scope id out of range");
      out.sin6_scope_id = static_cast<std::uint32_t>(v);
    } else {
      const unsigned idx = ::if_nametoindex(std::string(scope).c_str());
      if (idx == 0) fail(whole, "unknown network interface in IPv6 scope");
      out.sin6_scope_id = idx;
    }
  }
  return true;
}

}  // namespace

std::uint16_t parse_port(std::string_view text) {
  if (text.empty()) throw address_error("eddy: bad port '': empty");
  if (text.size() > 5 || text.find_first_not_of("0123456789") != std::string_view::npos)
    throw address_error("eddy: bad port " + quote(text) + ": digits 0..65535 only");
  unsigned v = 0;
  for (char c : text) v = v * 10 + static_cast<unsigned>(c - '0');
  if (v > 65535) throw address_error("eddy: bad port " + quote(text) + ": out of range 0..65535");
  return static_cast<std::uint16_t>(v);
}

host_port split_host_port(std::string_view text) {
  if (text.size() > max_address_text) fail(text, "longer than 1024 bytes");
  for (char c : text) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
      fail(text, "contains whitespace or control characters");
  }
  host_port hp;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) fail(text, "'[' without ']'");
    hp.host = std::string(text.substr(1, close - 1));
    if (close + 1 >= text.size() || text[close + 1] != ':')
      fail(text, "expected ':PORT' after ']'");
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) fail(text, "expected HOST:PORT");
    if (text.substr(0, colon).find(':') != std::string_view::npos)
      fail(text, "an IPv6 address needs brackets: [ADDR]:PORT");
    hp.host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
  }
  if (hp.host.empty()) fail(text, "empty host");
  hp.port = parse_port(port);
  return hp;
}

socket_address::socket_address() noexcept {
  std::memset(&storage_, 0, sizeof storage_);
  storage_.ss_family = AF_UNSPEC;
}

int socket_address::family() const noexcept {
  return len_ == 0 ? AF_UNSPEC : storage_.ss_family;
}

socket_address socket_address::ip(std::string_view host, std::uint16_t port) {
  socket_address a;
  if (host.size() > max_address_text) fail(host, "longer than 1024 bytes");
  if (!host.empty() && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host.find(':') != std::string_view::npos) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&a.storage_);
    if (!parse_v6(host, *s6, host)) fail(host, "not a numeric IPv6 address");
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(port);
    a.len_ = sizeof(sockaddr_in6);
    return a;
  }
  auto* s4 = reinterpret_cast<sockaddr_in*>(&a.storage_);
  if (!parse_v4(host, s4->sin_addr)) {
    fail(host, "not a numeric IPv4 address (host names need eddy::resolve)");
  }
  s4->sin_family = AF_INET;
  s4->sin_port = htons(port);
  a.len_ = sizeof(sockaddr_in);
  return a;
}

socket_address socket_address::any(std::uint16_t port, bool ipv6) noexcept {
  socket_address a;
  if (ipv6) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&a.storage_);
    s6->sin6_family = AF_INET6;
    s6->sin6_addr = in6addr_any;
    s6->sin6_port = htons(port);
    a.len_ = sizeof(sockaddr_in6);
  } else {
    auto* s4 = reinterpret_cast<sockaddr_in*>(&a.storage_);
    s4->sin_family = AF_INET;
    s4->sin_addr.s_addr = htonl(INADDR_ANY);
    s4->sin_port = htons(port);
    a.len_ = sizeof(sockaddr_in);
  }
  return a;
}

socket_address socket_address::loopback(std::uint16_t port, bool ipv6) noexcept {
  socket_address a = any(port, ipv6);
  if (ipv6)
    reinterpret_cast<sockaddr_in6*>(&a.storage_)->sin6_addr = in6addr_loopback;
  else
    reinterpret_cast<sockaddr_in*>(&a.storage_)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

socket_address socket_address::unix_path(std::string_view path) {
  if (path.empty()) fail(path, "empty Unix socket path");
  if (path.size() > max_unix_path) fail(path, "Unix socket path longer than 107 bytes");
  if (path.find('\0') != std::string_view::npos) fail(path, "Unix socket path contains NUL");
  socket_address a;
  auto* su = reinterpret_cast<sockaddr_un*>(&a.storage_);
  su->sun_family = AF_UNIX;
  std::memcpy(su->sun_path, path.data(), path.size());
  a.len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  return a;
}

socket_address socket_address::unix_abstract(std::string_view name) {
  if (name.size() > max_unix_path) fail(name, "abstract Unix name longer than 107 bytes");
  socket_address a;
  auto* su = reinterpret_cast<sockaddr_un*>(&a.storage_);
  su->sun_family = AF_UNIX;
  su->sun_path[0] = '\0';
  std::memcpy(su->sun_path + 1, name.data(), name.size());
  // The length, not a terminator, ends an abstract name.
  a.len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  return a;
}

socket_address socket_address::from_sockaddr(const sockaddr* sa, socklen_t len) {
  if (sa == nullptr || len < sizeof(sa_family_t) || len > capacity())
    throw address_error("eddy: socket_address::from_sockaddr: bad length " + std::to_string(len));
  const int fam = sa->sa_family;
  if (fam != AF_INET && fam != AF_INET6 && fam != AF_UNIX)
    throw address_error("eddy: socket_address::from_sockaddr: unsupported family " +
                        std::to_string(fam));
  if ((fam == AF_INET && len < sizeof(sockaddr_in)) ||
      (fam == AF_INET6 && len < sizeof(sockaddr_in6)))
    throw address_error("eddy: socket_address::from_sockaddr: short address");
  socket_address a;
  std::memcpy(&a.storage_, sa, len);
  a.len_ = len;
  return a;
}

socket_address socket_address::parse(std::string_view text) {
  if (text.empty()) fail(text, "empty");
  if (text.size() > max_address_text) fail(text, "longer than 1024 bytes");
  std::string_view rest = text;
  if (rest.starts_with("unix:")) {
    rest.remove_prefix(5);
    if (rest.starts_with("@")) return unix_abstract(rest.substr(1));
    return unix_path(rest);
  }
  if (rest.front() == '@') return unix_abstract(rest.substr(1));
  if (rest.front() == '/' || rest.starts_with("./")) return unix_path(rest);
  for (char c : rest) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
      fail(text, "contains whitespace or control characters");
  }
  const host_port hp = split_host_port(rest);
  if (hp.host.find(':') == std::string::npos &&
      hp.host.find_first_not_of("0123456789.") != std::string::npos)
    fail(text, "host is not a numeric address (host names need eddy::resolve)");
  return ip(hp.host, hp.port);
}

bool socket_address::is_abstract() const noexcept {
  const auto* su = reinterpret_cast<const sockaddr_un*>(&storage_);
  return is_unix() && len_ > offsetof(sockaddr_un, sun_path) && su->sun_path[0] == '\0';
}

std::uint16_t socket_address::port() const noexcept {
  if (is_ipv4()) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
  if (is_ipv6()) return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  return 0;
}

socket_address socket_address::with_port(std::uint16_t port) const noexcept {
  socket_address a = *this;
  if (is_ipv4()) reinterpret_cast<sockaddr_in*>(&a.storage_)->sin_port = htons(port);
  if (is_ipv6()) reinterpret_cast<sockaddr_in6*>(&a.storage_)->sin6_port = htons(port);
  return a;
}

std::string socket_address::host() const {
  char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 2] = {};
  if (is_ipv4()) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, buf,
                sizeof buf);
    return buf;
  }
  if (is_ipv6()) {
    const auto* s6 = reinterpret_cast<const sockaddr_in6*>(&storage_);
    ::inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof buf);
    std::string h = buf;
    if (s6->sin6_scope_id != 0) {
      char name[IF_NAMESIZE] = {};
      h += '%';
      h += ::if_indextoname(s6->sin6_scope_id, name) ? std::string(name)
                                                     : std::to_string(s6->sin6_scope_id);
    }
    return h;
  }
  if (is_unix()) {
    const auto* su = reinterpret_cast<const sockaddr_un*>(&storage_);
    if (len_ <= offsetof(sockaddr_un, sun_path)) return {};
    const std::size_t n = len_ - offsetof(sockaddr_un, sun_path);
    if (su->sun_path[0] == '\0') {
      std::string h(1, '@');
      h.append(su->sun_path + 1, n - 1);
      return h;
    }
    return std::string(su->sun_path, ::strnlen(su->sun_path, n));
  }
  return {};
}

std::string socket_address::to_string() const {
  // Appends, not "literal" + std::string&&: GCC 12 warns falsely (-Wrestrict) there.
  std::string t;
  if (is_ipv4())
    t.append(host()).append(":").append(std::to_string(port()));
  else if (is_ipv6())
    t.append("[").append(host()).append("]:").append(std::to_string(port()));
  else if (is_unix())
    t.append("unix:").append(host());
  return t;
}

bool operator==(const socket_address& a, const socket_address& b) noexcept {
  return a.len_ == b.len_ && std::memcmp(&a.storage_, &b.storage_, a.len_) == 0;
}

}  // namespace eddy
