// Building responses: status lines, the Date header (formatted once a second),
// HTTP dates, Content-Type by extension, and request paths made safe.
#pragma once

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace http {

const char* reason(int status);
/// "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 IMF-fixdate) for the current second;
/// cached, re-formatted only when the second changes.
std::string_view date_now();
std::string http_date(std::time_t t);
/// Parses an IMF-fixdate; nullopt for anything else (the header is then ignored).
std::optional<std::time_t> parse_http_date(std::string_view s);
std::string_view content_type(std::string_view path);

/// The file a request-target names, relative to the root ("a/b.html"; "" for the
/// root itself), or nullopt when it must not be served: a target that is not an
/// absolute path, bad percent-encoding, an encoded NUL or slash, or any "." /
/// ".." segment, encoded or not. The kernel then keeps symlinks inside the root
/// (openat2 RESOLVE_BENEATH, see eddy::fs::open_options::root_fd).
std::optional<std::string> safe_path(std::string_view target);

struct byte_range {
  std::uint64_t first = 0, length = 0;
};
enum class range_result { none, ok, unsatisfiable };
/// One "bytes=a-b" / "bytes=a-" / "bytes=-n" range of a file of `size` bytes. Multiple
/// ranges and other units are served as the whole file (range_result::none), as
/// RFC 9110 allows.
range_result parse_range(std::string_view header, std::uint64_t size, byte_range& out);

/// Status line and the headers every response has; ends without the blank line.
void append_head(std::string& out, int status, bool keep_alive);
/// A complete response with a short text body.
void append_simple(std::string& out, int status, bool keep_alive, std::string_view body,
                   bool head_only = false);

}  // namespace http
