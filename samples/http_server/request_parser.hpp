// HTTP/1.1 requests from a byte stream, on Debian's http-parser (libhttp-parser,
// the parser Node.js used before llhttp), with the server's own limits on top:
// header bytes (request line and headers) → 431, body bytes → 413, anything the
// parser rejects → 400. Only what the server uses is kept from each request.
#pragma once

#include <http_parser.h>

#include <cstddef>
#include <string>
#include <vector>

namespace http {

struct limits {
  std::size_t max_header_bytes = 8 * 1024;   // request line + headers
  std::size_t max_body_bytes = 1024 * 1024;  // a request body, declared or chunked
};

struct request {
  unsigned method = 0;  // http_method
  std::string target;   // the request-target as sent
  unsigned short major = 1, minor = 1;
  bool keep_alive = true;
  bool has_range = false, has_if_modified_since = false;
  std::string range, if_modified_since;
};

class request_parser {
 public:
  explicit request_parser(limits l);
  request_parser(const request_parser&) = delete;
  request_parser& operator=(const request_parser&) = delete;

  /// Parses `len` bytes; complete requests are appended to `out`. Returns 0, or
  /// the status to answer with before closing (400, 413, 431): the requests
  /// already in `out` are still to be answered first.
  int feed(const char* data, std::size_t len, std::vector<request>& out);
  /// A request has begun and its headers are not complete (the slowloris state).
  bool in_headers() const noexcept { return started_ && !headers_done_; }
  /// A request has begun and is not complete.
  bool mid_request() const noexcept { return started_; }

 private:
  static int on_message_begin(http_parser* p);
  static int on_url(http_parser* p, const char* at, std::size_t n);
  static int on_header_field(http_parser* p, const char* at, std::size_t n);
  static int on_header_value(http_parser* p, const char* at, std::size_t n);
  static int on_headers_complete(http_parser* p);
  static int on_body(http_parser* p, const char* at, std::size_t n);
  static int on_message_complete(http_parser* p);
  bool count_header(std::size_t n);
  void end_header();

  http_parser parser_{};
  http_parser_settings settings_{};
  limits limits_;
  request cur_;
  std::vector<request>* out_ = nullptr;
  std::size_t header_bytes_ = 0;
  std::size_t body_bytes_ = 0;
  int error_ = 0;
  bool started_ = false;
  bool headers_done_ = false;
  // The header being read: its name (lower case, cut at 32 bytes: only short
  // names matter here) and which field it is, once known.
  std::string field_;
  bool in_value_ = false;
  enum class field { other, range, if_modified_since } which_ = field::other;
};

}  // namespace http
