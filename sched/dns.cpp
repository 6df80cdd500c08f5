// eddy::resolve_blocking: getaddrinfo with checked arguments and owned results.
// The awaitable eddy::resolve (dns.hpp) runs this on blocking_pool().
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstring>
#include <eddy/sched/dns.hpp>
#include <memory>

namespace eddy {
namespace {

[[noreturn]] void bad(const std::string& what) {
  throw std::invalid_argument("eddy::resolve: " + what);
}

constexpr int known_ai_flags = AI_PASSIVE | AI_CANONNAME | AI_NUMERICHOST | AI_V4MAPPED | AI_ALL |
                               AI_ADDRCONFIG | AI_NUMERICSERV;

}  // namespace

void check_resolve_arguments(std::string_view host, std::string_view service,
                             const resolve_options& o) {
  if (host.empty() && service.empty()) bad("host and service are both empty");
  if (host.size() > max_host_length)
    bad("host must be at most " + std::to_string(max_host_length) + " bytes (got " +
        std::to_string(host.size()) + ")");
  if (service.size() > max_service_length)
    bad("service must be at most " + std::to_string(max_service_length) + " bytes (got " +
        std::to_string(service.size()) + ")");
  if (host.find('\0') != std::string_view::npos) bad("host contains a NUL byte");
  if (service.find('\0') != std::string_view::npos) bad("service contains a NUL byte");
  if (o.family != AF_UNSPEC && o.family != AF_INET && o.family != AF_INET6)
    bad("family must be AF_UNSPEC, AF_INET or AF_INET6 (got " + std::to_string(o.family) + ")");
  if (o.socktype != 0 && o.socktype != SOCK_STREAM && o.socktype != SOCK_DGRAM)
    bad("socktype must be 0, SOCK_STREAM or SOCK_DGRAM (got " + std::to_string(o.socktype) + ")");
  if ((o.flags & ~known_ai_flags) != 0)
    bad("flags has bits that are not AI_* flags (got " + std::to_string(o.flags) + ")");
}

std::vector<resolved_address> resolve_blocking(std::string_view host, std::string_view service,
                                               const resolve_options& o) {
  check_resolve_arguments(host, service, o);
  const std::string h(host), s(service);
  addrinfo hints{};
  hints.ai_family = o.family;
  hints.ai_socktype = o.socktype;
  hints.ai_flags = o.flags;
  addrinfo* list = nullptr;
  const int rc =
      getaddrinfo(h.empty() ? nullptr : h.c_str(), s.empty() ? nullptr : s.c_str(), &hints, &list);
  if (rc != 0) {
    const std::string why = rc == EAI_SYSTEM ? std::strerror(errno) : gai_strerror(rc);
    throw resolve_error(rc, "eddy::resolve: '" + h + "' service '" + s + "': " + why);
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> owned(list, &freeaddrinfo);
  std::vector<resolved_address> out;
  for (const addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_addr == nullptr || ai->ai_addrlen > sizeof(sockaddr_storage)) continue;
    resolved_address a;
    a.family = ai->ai_family;
    a.socktype = ai->ai_socktype;
    a.protocol = ai->ai_protocol;
    a.length = ai->ai_addrlen;
    std::memcpy(&a.storage, ai->ai_addr, ai->ai_addrlen);
    out.push_back(a);
  }
  if (out.empty())
    throw resolve_error(EAI_NONAME,
                        "eddy::resolve: '" + h + "' service '" + s + "': no usable address");
  return out;
}

std::uint16_t resolved_address::port() const noexcept {
  if (family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  if (family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  return 0;
}

std::string resolved_address::to_string() const {
  char text[INET6_ADDRSTRLEN] = {};
  if (family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr, text,
              sizeof text);
    return std::string(text) + ":" + std::to_string(port());
  }
  if (family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr, text,
              sizeof text);
    // Appended piece by piece: GCC 12 reports a false -Wrestrict for "[" + std::string(..).
    std::string out = "[";
    out += text;
    out += "]:";
    out += std::to_string(port());
    return out;
  }
  return "(family " + std::to_string(family) + ")";
}

}  // namespace eddy
