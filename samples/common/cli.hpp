// Command-line parsing shared by the sample programs. Every value is checked and
// a bad one ends the program with a one-line reason and exit status 2 (the
// convention of getopt-based tools), so scripts can tell "bad usage" (2) from
// "could not run" (1).
#pragma once

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/resource.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <eddy/io/address.hpp>
#include <eddy/runtime/loop.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace sample {

[[noreturn]] inline void usage_error(const char* prog, const std::string& msg) {
  std::fprintf(stderr, "%s: %s (try --help)\n", prog, msg.c_str());
  std::exit(2);
}

// Walks argv: `--name value` and `--name=value` both work.
class arg_reader {
 public:
  arg_reader(const char* prog, int argc, char** argv) : prog_(prog), argc_(argc), argv_(argv) {}

  // The next option name ("--port"), or nullopt at the end.
  std::optional<std::string_view> next() {
    if (i_ >= argc_) return std::nullopt;
    std::string_view a = argv_[i_++];
    if (a == "-h") a = "--help";
    if (a.size() < 3 || a.substr(0, 2) != "--")
      usage_error(prog_, "unexpected argument '" + std::string(a) + "'");
    inline_value_.reset();
    if (const auto eq = a.find('='); eq != std::string_view::npos) {
      inline_value_ = a.substr(eq + 1);
      a = a.substr(0, eq);
    }
    name_ = a;
    return a;
  }
  // The value of the current option.
  std::string_view value() {
    if (inline_value_) return *std::exchange(inline_value_, std::nullopt);
    if (i_ >= argc_) usage_error(prog_, std::string(name_) + " needs a value");
    return argv_[i_++];
  }
  // For options without a value: rejects `--flag=x`.
  void no_value() {
    if (inline_value_) usage_error(prog_, std::string(name_) + " takes no value");
  }
  const char* prog() const noexcept { return prog_; }
  std::string_view name() const noexcept { return name_; }

 private:
  const char* prog_;
  int argc_;
  char** argv_;
  int i_ = 1;
  std::string_view name_;
  std::optional<std::string_view> inline_value_;
};

inline std::uint16_t port_value(arg_reader& r) {
  const std::string_view v = r.value();
  try {
    return eddy::parse_port(v);
  } catch (const eddy::address_error&) {
    usage_error(r.prog(),
                std::string(r.name()) + ": '" + std::string(v) + "' is not a port (0..65535)");
  }
}

// HOST:PORT or [IPV6]:PORT (eddy::split_host_port), as --listen and --upstream take.
inline eddy::host_port host_port_value(arg_reader& r) {
  const std::string_view v = r.value();
  try {
    return eddy::split_host_port(v);
  } catch (const eddy::address_error& e) {
    usage_error(r.prog(), std::string(r.name()) + ": " + e.what());
  }
}

// A whole number in [lo, hi]: digits only, no sign, no spaces.
inline long count_value(arg_reader& r, long lo, long hi) {
  const std::string v(r.value());
  char* end = nullptr;
  errno = 0;
  const long n = v.empty() || v[0] < '0' || v[0] > '9' ? -1 : std::strtol(v.c_str(), &end, 10);
  if (n < 0 || errno != 0 || end == nullptr || *end != '\0' || n < lo || n > hi)
    usage_error(r.prog(), std::string(r.name()) + ": '" + v + "' is not a whole number in " +
                              std::to_string(lo) + ".." + std::to_string(hi));
  return n;
}

// Seconds as a decimal ("2", "0.25") in [lo, hi], to the millisecond.
inline std::chrono::milliseconds seconds_value(arg_reader& r, double lo, double hi) {
  const std::string v(r.value());
  char* end = nullptr;
  errno = 0;
  const double s = v.empty() || (v[0] != '.' && (v[0] < '0' || v[0] > '9'))
                       ? -1.0
                       : std::strtod(v.c_str(), &end);
  if (errno != 0 || end == nullptr || *end != '\0' || !std::isfinite(s) || s < lo || s > hi) {
    char range[64];
    std::snprintf(range, sizeof range, "%g..%g", lo, hi);
    usage_error(r.prog(),
                std::string(r.name()) + ": '" + v + "' is not a number of seconds in " + range);
  }
  return std::chrono::milliseconds(std::llround(s * 1000.0));
}

inline eddy::backend_kind backend_value(arg_reader& r) {
  const std::string_view v = r.value();
  if (const auto k = eddy::parse_backend(v); k && *k != eddy::backend_kind::from_env) return *k;
  usage_error(r.prog(), std::string(r.name()) + ": '" + std::string(v) + "' is not one of " +
                            eddy::backend_names());
}

// An address to bind: numeric, or a host name resolved once at start-up (the
// first address getaddrinfo gives, as a server's config file would be read).
inline eddy::socket_address bind_address(const char* prog, const std::string& host,
                                         std::uint16_t port) {
  try {
    return eddy::socket_address::ip(host, port);
  } catch (const eddy::address_error& e) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_ADDRCONFIG;
    addrinfo* res = nullptr;
    // Something that looks like an address but is not one ("300.1.1.1", "::g") is
    // a typo, not a name to look up.
    const bool looks_numeric = host.find_first_not_of("0123456789.") == std::string::npos ||
                               host.find(':') != std::string::npos;
    const int rc = host.empty() || host.size() > 253 || looks_numeric ? EAI_NONAME
                                                     : ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
    if (rc != 0 || res == nullptr)
      usage_error(prog, std::string("bad address: ") + e.what() + "; as a host name: " +
                            (rc != 0 ? ::gai_strerror(rc) : "no address"));
    char text[INET6_ADDRSTRLEN] = {};
    const void* src = res->ai_family == AF_INET6
                          ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(res->ai_addr)->sin6_addr)
                          : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr);
    ::inet_ntop(res->ai_family, src, text, sizeof text);
    ::freeaddrinfo(res);
    return eddy::socket_address::ip(text, port);
  }
}

// A server holds one fd per connection (two for a proxy); the soft limit is
// often 1024 while the hard one is far higher, so use what we are allowed.
inline void raise_fd_limit() noexcept {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace sample
