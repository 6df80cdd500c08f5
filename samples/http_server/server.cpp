#include "server.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstdio>

#include "response.hpp"

namespace http {

namespace fs = eddy::fs;


// Sends and empties `out` (before a file goes by sendfile).
eddy::task<void> server::write_out(const eddy::tcp_stream& s, std::string& out) {
  std::span<const std::byte> rest = std::as_bytes(std::span(out.data(), out.size()));
  while (!rest.empty()) rest = rest.subspan(co_await s.write_some(rest));
  out.clear();
}

std::int64_t server::now_ms() noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void server::link(entry& e) noexcept {
  e.next = head_;
  if (head_ != nullptr) head_->prev = &e;
  head_ = &e;
  ++count_;
}

void server::unlink(entry& e) noexcept {
  if (e.prev != nullptr) e.prev->next = e.next;
  else head_ = e.next;
  if (e.next != nullptr) e.next->prev = e.prev;
  --count_;
}

void server::drain() noexcept {
  draining_ = true;
  for (entry* e = head_; e != nullptr; e = e->next)
    if (!e->mid_request) ::shutdown(e->fd, SHUT_RD);  // idle: its read ends now
}

eddy::task<void> server::sweep() {
  const auto shortest = std::min(o_.header_timeout, o_.idle_timeout);
  const auto period = std::clamp(shortest / 4, std::chrono::milliseconds(10),
                                 std::chrono::milliseconds(1000));
  for (;;) {
    co_await eddy::sleep_for(period);
    const std::int64_t now = now_ms();
    for (entry* e = head_; e != nullptr; e = e->next) {
      if (e->deadline_ms <= now) {
        // The reader sees end of stream; a writer blocked on a peer that does
        // not read gets EPIPE. Once per connection.
        ::shutdown(e->fd, SHUT_RDWR);
        e->deadline_ms = INT64_MAX;
        ++timed_out_;
      }
    }
  }
}

eddy::task<void> server::serve(eddy::tcp_stream s) {
  if (count_ >= o_.max_connections) {
    co_await s.close();  // over the limit: refused before it costs a buffer
    co_return;
  }
  entry e;
  e.fd = s.fd();
  e.deadline_ms = now_ms() + o_.idle_timeout.count();
  link(e);
  request_parser parser(o_.lim);
  std::vector<request> reqs;
  std::string out;
  bool linger = false;
  bool cancelled = false;
  try {
    s.set_nodelay(true);
    bool open = true;
    while (open) {
      int err = 0;
      {
        eddy::recv_buffer chunk = co_await s.receive();
        if (chunk.empty()) break;
        const bool was_mid = parser.mid_request();
        err = parser.feed(reinterpret_cast<const char*>(chunk.data().data()), chunk.size(), reqs);
        // Deadlines: from a request's first byte until it is complete (never
        // extended by trickled bytes), else idle between requests.
        e.mid_request = parser.mid_request() || !reqs.empty();
        if (!parser.mid_request())
          e.deadline_ms = now_ms() + o_.idle_timeout.count();
        else if (!was_mid || !reqs.empty())
          e.deadline_ms = now_ms() + o_.header_timeout.count();
      }
      if (draining_) open = false;  // answer what came, then close
      for (const request& r : reqs) {
        const bool ka = r.keep_alive && open;
        if (r.method != HTTP_GET && r.method != HTTP_HEAD) {
          append_head(out, 405, ka);
          out += "Allow: GET, HEAD\r\nContent-Length: 0\r\n\r\n";
        } else if (r.target == "/plaintext") {
          append_head(out, 200, ka);
          out += "Content-Type: text/plain\r\nContent-Length: 13\r\n\r\n";
          if (r.method == HTTP_GET) out += "Hello, World!";
        } else {
          co_await serve_static(s, r, out, ka);
        }
        if (r.minor == 0 && ka) {
          // HTTP/1.0 keep-alive must be confirmed: insert before the blank line
          // would cost a search; 1.0 clients are rare, so rebuild the tail.
          const auto end = out.rfind("\r\n\r\n");
          if (end != std::string::npos) out.insert(end + 2, "Connection: keep-alive\r\n");
        }
        if (o_.access_log)
          std::printf("%s %s HTTP/%u.%u\n", http_method_str(static_cast<http_method>(r.method)),
                      r.target.c_str(), r.major, r.minor);
        if (!r.keep_alive) open = false;
      }
      reqs.clear();
      if (err != 0 && open) {
        append_simple(out, err, false, std::string(reason(err)) + "\n");
        open = false;
        linger = true;
      }
      if (!out.empty()) {
        // write_some in a loop: a plain awaiter, no coroutine frame per response.
        for (auto rest = std::as_bytes(std::span(out.data(), out.size())); !rest.empty();)
          rest = rest.subspan(co_await s.write_some(rest));
        if (out.capacity() > 256 * 1024) out = std::string();  // a big file came by
        out.clear();
      }
      e.mid_request = parser.mid_request();
      if (draining_ && !parser.mid_request()) open = false;
    }
    if (linger) {
      // Answered an error with bytes still arriving: closing now would reset the
      // connection and could destroy the answer in flight. Half-close, then read
      // and drop what follows for a moment (nginx's lingering close).
      s.shutdown_write();
      e.deadline_ms = now_ms() + 2000;
      for (std::size_t dropped = 0; dropped < 1024 * 1024;) {
        eddy::recv_buffer chunk = co_await s.receive();
        if (chunk.empty()) break;
        dropped += chunk.size();
      }
    }
  } catch (const eddy::cancelled_error&) {
    cancelled = true;  // the server is stopping
  } catch (const std::system_error& ex) {
    const int code = ex.code().value();
    if (code != ECONNRESET && code != EPIPE && code != ETIMEDOUT && code != ENOTCONN)
      std::fprintf(stderr, "http_server: connection: %s\n", ex.what());
  } catch (const std::exception& ex) {
    // One connection's failure never takes the server (its task group) down.
    std::fprintf(stderr, "http_server: connection: %s\n", ex.what());
  }
  unlink(e);
  if (!cancelled) co_await s.close();  // cancelled: the stream's destructor closes it
}

eddy::task<void> server::serve_static(const eddy::tcp_stream& s, const request& r, std::string& out,
                                      bool ka) {
  const bool head = r.method == HTTP_HEAD;
  std::optional<std::string> rel = o_.root_fd >= 0 ? safe_path(r.target) : std::nullopt;
  if (!rel) {
    // Outside the root, badly encoded, or no root at all: the file is never touched.
    append_simple(out, 404, ka, "Not Found\n", head);
    co_return;
  }
  std::shared_ptr<open_file> of = co_await files_.get(std::move(*rel), o_.root_fd);
  if (!of) {
    append_simple(out, 404, ka, "Not Found\n", head);
    co_return;
  }
  const fs::file_stat& st = of->st;
  if (r.has_if_modified_since) {
    const std::time_t mtime = static_cast<std::time_t>(st.mtime_ns / 1'000'000'000);
    if (auto ims = parse_http_date(r.if_modified_since); ims && mtime <= *ims) {
      append_head(out, 304, ka);
      out += "Last-Modified: " + of->last_modified + "\r\n\r\n";
      co_await files_.put(std::move(of));
      co_return;
    }
  }
  byte_range range{0, st.size};
  int status = 200;
  if (r.has_range) {
    switch (parse_range(r.range, st.size, range)) {
      case range_result::ok: status = 206; break;
      case range_result::none: range = {0, st.size}; break;
      case range_result::unsatisfiable:
        append_head(out, 416, ka);
        out += "Content-Range: bytes */" + std::to_string(st.size) + "\r\nContent-Length: 0\r\n\r\n";
        co_await files_.put(std::move(of));
        co_return;
    }
  }
  append_head(out, status, ka);
  out += "Content-Type: ";
  out += content_type(of->name);
  out += "\r\nContent-Length: ";
  out += std::to_string(range.length);
  out += "\r\nLast-Modified: ";
  out += of->last_modified;
  out += "\r\nAccept-Ranges: bytes\r\n";
  if (status == 206)
    out += "Content-Range: bytes " + std::to_string(range.first) + "-" +
           std::to_string(range.first + range.length - 1) + "/" + std::to_string(st.size) + "\r\n";
  out += "\r\n";
  if (!head && range.length != 0) {
    if (range.length < o_.sendfile_min) {
      const std::size_t at = out.size();
      out.resize(at + range.length);
      const std::size_t n = co_await of->f.read_at(
          std::as_writable_bytes(std::span(out.data() + at, range.length)), range.first);
      if (n != range.length)  // the file shrank after its stat: the length is a promise
        throw std::system_error(EIO, std::system_category(), "http_server: short file " + of->name);
    } else {
      co_await write_out(s, out);
      co_await eddy::send_file(s, of->f, range.first, range.length);
    }
  }
  co_await files_.put(std::move(of));
}

}  // namespace http
