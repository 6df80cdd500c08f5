// One loop's HTTP/1.1 server: connections, their deadlines, and the routes
// (GET /plaintext and static files under a root). A process runs one per loop.
//
// Deadlines: each connection keeps one deadline, set when its state changes:
// header_timeout from the first byte of a request until its headers are complete
// (not extended by more bytes: a slowloris client trickling a header every few
// seconds is closed on time), the same again while a body is being read, and
// idle_timeout between keep-alive requests. One sweeper task per loop shuts down
// the sockets past their deadline, so reading costs no timer per receive; the
// connection's receive() then sees end of stream and the connection ends.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <eddy/eddy.hpp>

#include "file_cache.hpp"
#include "request_parser.hpp"

namespace http {

struct server_options {
  std::string root;  // empty: only /plaintext
  int root_fd = -1;  // the root, opened once (O_PATH | O_DIRECTORY)
  limits lim;
  std::chrono::milliseconds header_timeout{10'000};
  std::chrono::milliseconds idle_timeout{30'000};
  std::size_t max_connections = 100'000;  // per loop; more are closed at once
  bool access_log = false;
  std::chrono::milliseconds file_cache_ttl{1000};  // 0: open, stat and close per request
  std::size_t file_cache_entries = 1024;
  // Bodies shorter than this are read (eddy::fs) into the response buffer and
  // leave in the same send as their headers and pipelined neighbours; longer ones
  // go by eddy::send_file. main() picks the default per backend (docs/http_server.md).
  std::uint64_t sendfile_min = 64 * 1024 + 1;
};

class server {
 public:
  explicit server(const server_options& o)
      : o_(o), files_(o.file_cache_ttl, o.file_cache_entries) {}
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Serves one connection until it closes, times out or fails.
  eddy::task<void> serve(eddy::tcp_stream s);
  /// Closes connections past their deadline; runs until cancelled.
  eddy::task<void> sweep();
  /// Graceful shutdown: from now on every response says `Connection: close` and
  /// its connection closes once it is sent; connections idle between requests
  /// are ended at once (their read side shut down, so they see end of stream).
  void drain() noexcept;
  std::size_t connections() const noexcept { return count_; }
  std::uint64_t timed_out() const noexcept { return timed_out_; }

 private:
  struct entry {
    entry* prev = nullptr;
    entry* next = nullptr;
    int fd = -1;
    std::int64_t deadline_ms = 0;
    bool mid_request = false;  // bytes of a request read, its response not yet sent
  };
  void link(entry& e) noexcept;
  void unlink(entry& e) noexcept;
  static std::int64_t now_ms() noexcept;

  // Appends the response to `out`; may flush `out` and send a file on the way.
  eddy::task<void> serve_static(const eddy::tcp_stream& s, const request& r, std::string& out,
                                bool keep_alive);

  eddy::task<void> write_out(const eddy::tcp_stream& s, std::string& out);

  const server_options& o_;
  file_cache files_;
  entry* head_ = nullptr;
  std::size_t count_ = 0;
  std::uint64_t timed_out_ = 0;
  bool draining_ = false;
};

}  // namespace http
