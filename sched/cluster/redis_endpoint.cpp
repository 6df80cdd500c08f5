// See redis_endpoint.hpp.
#include "redis_endpoint.hpp"

#include <sys/un.h>

#include <charconv>
#include <stdexcept>

namespace eddy::detail {
namespace {

constexpr std::size_t max_url = 4096;
constexpr std::size_t max_host = 253;  // a DNS name's limit
constexpr std::size_t max_credential = 1024;
constexpr unsigned max_db = 1u << 20;  // Redis's own limit is its `databases` setting

[[noreturn]] void bad(std::string_view url, const std::string& why) {
  throw std::invalid_argument("eddy: bad Redis URL '" + std::string(url.substr(0, 200)) +
                              "': " + why +
                              " (expected redis://[user:password@]host[:port][/db] or "
                              "unix:/path[?db=N&password=P])");
}

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string decode(std::string_view url, std::string_view s, const char* what) {
  if (s.size() > max_credential)
    bad(url, std::string(what) + " longer than " + std::to_string(max_credential) + " bytes");
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) bad(url, std::string("bad %-escape in ") + what);
    const int h = hex(s[i + 1]), l = hex(s[i + 2]);
    if (h < 0 || l < 0) bad(url, std::string("bad %-escape in ") + what);
    out += static_cast<char>(h * 16 + l);
    i += 2;
  }
  return out;
}

unsigned number(std::string_view url, std::string_view s, unsigned max, const char* what) {
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v > max)
    bad(url, std::string(what) + " '" + std::string(s.substr(0, 20)) + "' is not a number in 0.." +
                 std::to_string(max));
  return v;
}

void parse_query(std::string_view url, std::string_view q, redis_endpoint& e) {
  while (!q.empty()) {
    const std::size_t amp = q.find('&');
    std::string_view kv = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view{} : q.substr(amp + 1);
    const std::size_t eq = kv.find('=');
    if (eq == std::string_view::npos) bad(url, "query part '" + std::string(kv) + "' has no '='");
    std::string_view k = kv.substr(0, eq), v = kv.substr(eq + 1);
    if (k == "db")
      e.db = number(url, v, max_db, "db");
    else if (k == "user" || k == "username")
      e.user = decode(url, v, "user");
    else if (k == "password") {
      e.password = decode(url, v, "password");
      e.has_password = true;
    } else
      bad(url, "unknown query key '" + std::string(k.substr(0, 40)) + "'");
  }
}

}  // namespace

redis_endpoint parse_redis_url(std::string_view url) {
  if (url.size() > max_url) bad(url, "longer than " + std::to_string(max_url) + " bytes");
  redis_endpoint e;
  std::string_view rest;
  if (url.starts_with("unix://")) rest = url.substr(7);
  else if (url.starts_with("redis+unix://")) rest = url.substr(13);
  else if (url.starts_with("unix:")) rest = url.substr(5);
  if (url.starts_with("unix:") || url.starts_with("redis+unix://")) {
    e.is_unix = true;
    const std::size_t qm = rest.find('?');
    std::string_view path = rest.substr(0, qm);
    if (qm != std::string_view::npos) parse_query(url, rest.substr(qm + 1), e);
    if (path.empty() || path[0] != '/') bad(url, "a unix: path must be absolute");
    if (path.size() >= sizeof(sockaddr_un{}.sun_path))
      bad(url, "socket path longer than " + std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
                   " bytes");
    if (path.find('\0') != std::string_view::npos) bad(url, "NUL byte in the path");
    e.path = std::string(path);
    return e;
  }
  if (!url.starts_with("redis://")) bad(url, "unknown scheme");
  rest = url.substr(8);
  const std::size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    std::string_view db = rest.substr(slash + 1);
    if (!db.empty()) e.db = number(url, db, max_db, "db");
  }
  const std::size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view cred = authority.substr(0, at);
    authority = authority.substr(at + 1);
    const std::size_t colon = cred.find(':');
    if (colon == std::string_view::npos) {
      // redis://secret@host is the password alone, as redis-cli reads it.
      e.password = decode(url, cred, "password");
    } else {
      e.user = decode(url, cred.substr(0, colon), "user");
      e.password = decode(url, cred.substr(colon + 1), "password");
    }
    e.has_password = true;
  }
  std::string_view host = authority, port;
  if (host.starts_with('[')) {
    const std::size_t close = host.find(']');
    if (close == std::string_view::npos) bad(url, "unclosed '[' in the host");
    port = host.substr(close + 1);
    host = host.substr(1, close - 1);
    if (!port.empty() && port[0] != ':') bad(url, "junk after ']'");
    if (!port.empty()) port = port.substr(1);
  } else if (const std::size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    port = host.substr(colon + 1);
    host = host.substr(0, colon);
  }
  if (host.empty()) bad(url, "no host");
  if (host.size() > max_host) bad(url, "host longer than " + std::to_string(max_host) + " bytes");
  for (char c : host)
    if (c == '/' || c == '@' || c == '?' || c == ' ' || c == '\0') bad(url, "bad character in the host");
  e.host = std::string(host);
  if (!port.empty()) {
    const unsigned p = number(url, port, 65535, "port");
    if (p == 0) bad(url, "port 0");
    e.port = static_cast<std::uint16_t>(p);
  }
  return e;
}

std::string redis_endpoint::name() const {
  std::string who = user.empty() ? std::string() : user + "@";
  if (is_unix) return "unix:" + path + (db ? "?db=" + std::to_string(db) : "") + (user.empty() ? "" : " (user " + user + ")");
  const bool v6 = host.find(':') != std::string::npos;
  return "redis://" + who + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port) + "/" +
         std::to_string(db);
}

}  // namespace eddy::detail
