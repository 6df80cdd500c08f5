// Where a Redis server is and how to log in: parsed from a URL.
//
//   redis://[[user]:password@]host[:port][/db]     host: name, IPv4 or [IPv6]
//   unix:/path/to/redis.sock[?db=N&user=U&password=P]   (also unix:///path,
//   redis+unix:///path)
//
// user and password may be percent-encoded. Every part is checked with a limit
// (std::invalid_argument names the part); the password never appears in name().
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace eddy::detail {

struct redis_endpoint {
  bool is_unix = false;
  std::string host;  // without brackets
  std::uint16_t port = 6379;
  std::string path;
  std::string user;
  std::string password;
  bool has_password = false;
  unsigned db = 0;

  /// "redis://host:port/db" or "unix:/path" (with the user, never the password):
  /// what error messages call the server.
  std::string name() const;
};

redis_endpoint parse_redis_url(std::string_view url);

}  // namespace eddy::detail
