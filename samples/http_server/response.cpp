#include "response.hpp"

#include <charconv>
#include <chrono>
#include <cstring>

namespace http {

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 206: return "Partial Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 416: return "Range Not Satisfiable";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

std::string http_date(std::time_t t) {
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[40];
  const std::size_t n = std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return std::string(buf, n);
}

std::string_view date_now() {
  // One per loop thread: no locking, and formatting happens once a second.
  thread_local std::time_t last = 0;
  thread_local std::string cached;
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  if (now != last) {
    last = now;
    cached = http_date(now);
  }
  return cached;
}

std::optional<std::time_t> parse_http_date(std::string_view s) {
  if (s.size() != 29) return std::nullopt;
  std::tm tm{};
  const std::string z(s);
  const char* end = ::strptime(z.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  return ::timegm(&tm);
}

std::string_view content_type(std::string_view path) {
  const auto dot = path.rfind('.');
  const auto slash = path.rfind('/');
  if (dot == std::string_view::npos || (slash != std::string_view::npos && dot < slash))
    return "application/octet-stream";
  const std::string_view ext = path.substr(dot + 1);
  struct row {
    std::string_view ext, type;
  };
  static constexpr row table[] = {
      {"html", "text/html; charset=utf-8"}, {"htm", "text/html; charset=utf-8"},
      {"css", "text/css"},                  {"js", "text/javascript"},
      {"mjs", "text/javascript"},           {"json", "application/json"},
      {"txt", "text/plain; charset=utf-8"}, {"xml", "application/xml"},
      {"svg", "image/svg+xml"},             {"png", "image/png"},
      {"jpg", "image/jpeg"},                {"jpeg", "image/jpeg"},
      {"gif", "image/gif"},                 {"webp", "image/webp"},
      {"ico", "image/x-icon"},              {"wasm", "application/wasm"},
      {"pdf", "application/pdf"},           {"woff2", "font/woff2"},
      {"mp4", "video/mp4"},                 {"gz", "application/gzip"},
  };
  for (const row& r : table) {
    if (r.ext.size() != ext.size()) continue;
    bool same = true;
    for (std::size_t i = 0; i < ext.size() && same; ++i) {
      char c = ext[i];
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      same = c == r.ext[i];
    }
    if (same) return r.type;
  }
  return "application/octet-stream";
}

namespace {
int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::optional<std::string> safe_path(std::string_view target) {
  // origin-form only; the query and fragment are not part of the file name.
  if (target.empty() || target[0] != '/') return std::nullopt;
  if (const auto q = target.find_first_of("?#"); q != std::string_view::npos)
    target = target.substr(0, q);
  std::string out;
  std::string seg;
  auto end_segment = [&]() -> bool {
    if (seg == "." || seg == "..") return false;  // never resolved, only refused
    if (!seg.empty()) {
      if (!out.empty()) out.push_back('/');
      out += seg;
    }
    seg.clear();
    return true;
  };
  for (std::size_t i = 1; i < target.size(); ++i) {
    char c = target[i];
    if (c == '/') {
      if (!end_segment()) return std::nullopt;
      continue;
    }
    if (c == '%') {
      if (i + 2 >= target.size()) return std::nullopt;
      const int h = hex(target[i + 1]), l = hex(target[i + 2]);
      if (h < 0 || l < 0) return std::nullopt;
      c = static_cast<char>(h * 16 + l);
      i += 2;
      // An encoded slash or NUL would change what the path means to the kernel.
      if (c == '/' || c == '\0' || c == '\\') return std::nullopt;
    }
    seg.push_back(c);
  }
  if (!end_segment()) return std::nullopt;
  return out;
}

range_result parse_range(std::string_view h, std::uint64_t size, byte_range& out) {
  while (!h.empty() && (h.front() == ' ' || h.front() == '\t')) h.remove_prefix(1);
  while (!h.empty() && (h.back() == ' ' || h.back() == '\t')) h.remove_suffix(1);
  if (h.substr(0, 6) != "bytes=") return range_result::none;
  h.remove_prefix(6);
  if (h.find(',') != std::string_view::npos) return range_result::none;
  const auto dash = h.find('-');
  if (dash == std::string_view::npos) return range_result::none;
  const std::string_view a = h.substr(0, dash), b = h.substr(dash + 1);
  auto num = [](std::string_view s, std::uint64_t& v) {
    if (s.empty() || s.size() > 19) return false;
    const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    return r.ec == std::errc() && r.ptr == s.data() + s.size();
  };
  std::uint64_t x = 0, y = 0;
  if (a.empty()) {  // suffix: the last y bytes
    if (!num(b, y)) return range_result::none;
    if (y == 0 || size == 0) return range_result::unsatisfiable;
    if (y > size) y = size;
    out = {size - y, y};
    return range_result::ok;
  }
  if (!num(a, x)) return range_result::none;
  if (b.empty()) {
    y = size == 0 ? 0 : size - 1;
  } else {
    if (!num(b, y) || y < x) return range_result::none;
    if (y >= size) y = size == 0 ? 0 : size - 1;
  }
  if (x >= size) return range_result::unsatisfiable;
  out = {x, y - x + 1};
  return range_result::ok;
}

void append_head(std::string& out, int status, bool keep_alive) {
  if (status == 200) {
    out += "HTTP/1.1 200 OK\r\n";  // nearly every response: no formatting
  } else {
    out += "HTTP/1.1 ";
    out += std::to_string(status);
    out += ' ';
    out += reason(status);
    out += "\r\n";
  }
  out += "Server: eddy\r\nDate: ";
  out += date_now();
  out += keep_alive ? "\r\n" : "\r\nConnection: close\r\n";
}

void append_simple(std::string& out, int status, bool keep_alive, std::string_view body,
                   bool head_only) {
  append_head(out, status, keep_alive);
  out += "Content-Type: text/plain; charset=utf-8\r\nContent-Length: ";
  out += std::to_string(body.size());
  out += "\r\n\r\n";
  if (!head_only) out += body;
}

}  // namespace http
