// http_client: many concurrent HTTP/1.1 GETs, written as a user of eddy would
// write it, with nothing but <eddy/eddy.hpp>.
//
//   http_client [--requests 200] [--concurrency 200] [--timeout 10] URL
//
// URL is http://HOST[:PORT][/PATH] (plain HTTP; the host is resolved on the
// blocking pool by tcp_connect). It makes --requests GETs (1..100000), at most
// --concurrency (1..10000) at a time, each on its own connection ("Connection:
// close"), each with --timeout seconds (1..3600) for the whole exchange. A body is
// read by Content-Length, by chunked transfer coding, or to the end of the
// connection. Every fetch's outcome is kept (when_all_settled): a failure is
// counted and its first message shown, the others go on. It prints
//
//   200 requests: 200 ok, 0 failed; status 200 x200; 2600 body bytes
//
// and exits 0 if every request got a 2xx answer, 1 otherwise, 2 for bad usage.
#include <eddy/eddy.hpp>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;

struct url {
  std::string host;
  std::uint16_t port = 80;
  std::string path = "/";
};

[[noreturn]] void usage_error(const std::string& why) {
  std::fprintf(stderr,
               "http_client: %s\nusage: http_client [--requests 1..100000] [--concurrency 1..10000] "
               "[--timeout 1..3600] http://HOST[:PORT][/PATH]\n",
               why.c_str());
  std::exit(2);
}

url parse_url(const std::string& text) {
  const std::string scheme = "http://";
  if (text.rfind(scheme, 0) != 0) usage_error("only http:// URLs, got '" + text + "'");
  std::string rest = text.substr(scheme.size());
  url u;
  const auto slash = rest.find('/');
  if (slash != std::string::npos) {
    u.path = rest.substr(slash);
    rest.resize(slash);
  }
  // [v6]:port, host:port or host
  std::string port;
  if (!rest.empty() && rest[0] == '[') {
    const auto close = rest.find(']');
    if (close == std::string::npos) usage_error("unclosed '[' in '" + text + "'");
    u.host = rest.substr(1, close - 1);
    if (close + 1 < rest.size() && rest[close + 1] == ':') port = rest.substr(close + 2);
  } else if (const auto colon = rest.rfind(':'); colon != std::string::npos) {
    u.host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  } else {
    u.host = rest;
  }
  if (u.host.empty()) usage_error("no host in '" + text + "'");
  if (!port.empty()) {
    char* end = nullptr;
    const long p = std::strtol(port.c_str(), &end, 10);
    if (*end != '\0' || p < 1 || p > 65535) usage_error("port must be 1..65535, got '" + port + "'");
    u.port = static_cast<std::uint16_t>(p);
  }
  return u;
}

struct response {
  int status = 0;
  std::size_t body_bytes = 0;
};

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::size_t parse_size(const std::string& text, int base, const char* what) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text.c_str(), &end, base);
  if (text.empty() || errno != 0 || (*end != '\0' && *end != ';' && *end != '\r') || v > (1ULL << 30))
    throw std::runtime_error(std::string("bad ") + what + ": '" + text + "'");
  return static_cast<std::size_t>(v);
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == '\n' || s.back() == ' ')) s.pop_back();
  std::size_t i = 0;
  while (i < s.size() && s[i] == ' ') ++i;
  return s.substr(i);
}

// One GET on its own connection.
eddy::task<response> fetch(url u) {
  eddy::stream s(co_await eddy::tcp_connect(u.host, u.port));
  s.write("GET " + u.path + " HTTP/1.1\r\nHost: " + u.host + "\r\nUser-Agent: eddy-http-client\r\n" +
          "Accept: */*\r\nConnection: close\r\n\r\n");
  co_await s.flush();

  response r;
  const std::string status_line = co_await s.read_line(8192);
  if (status_line.rfind("HTTP/1.", 0) != 0 || status_line.size() < 12)
    throw std::runtime_error("not an HTTP response: '" + trim(status_line) + "'");
  r.status = std::atoi(status_line.c_str() + 9);

  std::map<std::string, std::string> headers;
  for (int n = 0;; ++n) {
    if (n == 100) throw std::runtime_error("more than 100 header lines");
    const std::string line = trim(co_await s.read_line(8192));
    if (line.empty()) break;
    const auto colon = line.find(':');
    if (colon == std::string::npos) throw std::runtime_error("bad header line: '" + line + "'");
    headers[lower(line.substr(0, colon))] = trim(line.substr(colon + 1));
  }

  if (lower(headers["transfer-encoding"]).find("chunked") != std::string::npos) {
    for (;;) {
      const std::size_t n = parse_size(trim(co_await s.read_line(1024)), 16, "chunk size");
      if (n == 0) break;
      r.body_bytes += (co_await s.read_exact_string(n)).size();
      (void)co_await s.read_line(16);  // the CRLF after the chunk
    }
  } else if (auto it = headers.find("content-length"); it != headers.end()) {
    r.body_bytes = (co_await s.read_exact_string(parse_size(it->second, 10, "Content-Length"))).size();
  } else {  // delimited by the end of the connection
    std::vector<std::byte> buf(16 * 1024);
    while (std::size_t n = co_await s.read_some(buf)) r.body_bytes += n;
  }
  co_await s.close();
  co_return r;
}

// fetch, holding a permit (so at most `concurrency` run at once) and a deadline.
eddy::task<response> limited_fetch(url u, eddy::semaphore* slots, std::chrono::seconds timeout) {
  auto permit = co_await slots->scoped_acquire();
  co_return co_await eddy::with_timeout(timeout, fetch(u), "GET http://" + u.host + u.path);
}

struct options {
  long requests = 200;
  long concurrency = 200;
  long timeout = 10;
  url target;
};

long number(int argc, char** argv, int& i, const char* name, long lo, long hi) {
  if (i + 1 >= argc) usage_error(std::string("missing value after ") + name);
  const char* text = argv[++i];
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || v < lo || v > hi)
    usage_error(std::string(name) + " must be a number in " + std::to_string(lo) + ".." + std::to_string(hi) +
                ", got '" + text + "'");
  return v;
}

options parse(int argc, char** argv) {
  options o;
  bool have_url = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--requests") o.requests = number(argc, argv, i, "--requests", 1, 100000);
    else if (a == "--concurrency") o.concurrency = number(argc, argv, i, "--concurrency", 1, 10000);
    else if (a == "--timeout") o.timeout = number(argc, argv, i, "--timeout", 1, 3600);
    else if (a.size() > 1 && a[0] == '-') usage_error("unknown option " + a);
    else if (have_url) usage_error("one URL only");
    else {
      o.target = parse_url(a);
      have_url = true;
    }
  }
  if (!have_url) usage_error("no URL given");
  return o;
}

eddy::task<int> async_main(options o) {
  eddy::semaphore slots(static_cast<std::size_t>(o.concurrency));
  std::vector<eddy::task<response>> fetches;
  for (long i = 0; i < o.requests; ++i)
    fetches.push_back(limited_fetch(o.target, &slots, std::chrono::seconds(o.timeout)));
  auto outcomes = co_await eddy::when_all_settled(std::move(fetches));

  std::size_t ok = 0, failed = 0, bytes = 0;
  std::map<int, std::size_t> by_status;
  std::string first_error;
  for (auto& r : outcomes) {
    if (!r.ok()) {
      ++failed;
      if (first_error.empty()) first_error = r.message();
      continue;
    }
    ++by_status[r.value().status];
    bytes += r.value().body_bytes;
    if (r.value().status >= 200 && r.value().status < 300) ++ok;
  }
  std::printf("%ld requests: %zu ok, %zu failed; status", o.requests, ok, failed);
  for (auto [status, n] : by_status) std::printf(" %d x%zu", status, n);
  std::printf("; %zu body bytes\n", bytes);
  if (!first_error.empty()) std::fprintf(stderr, "http_client: first failure: %s\n", first_error.c_str());
  co_return ok == static_cast<std::size_t>(o.requests) ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return eddy::run(async_main(parse(argc, argv))); }
