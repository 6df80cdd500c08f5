// Command-line parsing for echo_load. Kept apart from the engine so the self-check
// can exercise every validation rule without opening a socket.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

namespace echo_load {

// Limits double as the documentation of the allowed ranges (--help and errors print them).
inline constexpr std::uint64_t kMaxConns = 100000;
inline constexpr std::uint64_t kMaxSize = 16u << 20;  // 16 MiB
inline constexpr double kMaxSecs = 3600;
inline constexpr double kMaxRate = 1e8;
inline constexpr std::uint64_t kMaxThreads = 256;
inline constexpr std::uint64_t kMaxPipeline = 1024;
// Every outstanding message keeps an 8-byte send timestamp; this caps that table at
// 128 MiB so "100000 conns x pipeline 1024" fails loudly instead of swapping.
inline constexpr std::uint64_t kMaxOutstanding = std::uint64_t{1} << 24;

// How the connections are driven; both give the same model and output (echo_load.cpp).
enum class Engine : std::uint8_t { Epoll, Uring };

inline const char* engine_name(Engine e) { return e == Engine::Uring ? "uring" : "epoll"; }

struct Options {
  std::string host;
  std::uint16_t port = 0;
  std::uint32_t conns = 1;
  std::uint32_t size = 64;
  double secs = 5;
  double warmup = -1;  // < 0: default, 10% of secs
  double rate = 0;     // 0: closed loop
  std::uint32_t threads = 1;
  std::uint32_t pipeline = 1;
  Engine engine = Engine::Epoll;
  bool json = false;
};

struct ParseResult {
  Options opt;
  bool help = false;
  std::string error;  // empty on success
};

inline constexpr const char* kUsage =
    "usage: echo_load HOST PORT [options]\n"
    "\n"
    "Drives an echo server over TCP and prints one line: req/s, MiB/s, latency\n"
    "percentiles and errors. Does not use eddy, so it measures every server alike.\n"
    "\n"
    "  HOST              IPv4/IPv6 literal ([::1] accepted) or a name (getaddrinfo)\n"
    "  PORT              1..65535\n"
    "  --conns N         connections, 1..100000 (default 1)\n"
    "  --size BYTES      message size, 1..16 MiB; suffix K/KiB/M/MiB allowed (default 64)\n"
    "  --secs S          measured seconds, >0 and <=3600 (default 5)\n"
    "  --warmup S        unmeasured seconds before that, 0..3600 (default 10% of --secs)\n"
    "  --rate R          total requests/s over all connections, 0..1e8; 0 = closed loop\n"
    "                    (default). Latency is taken from each request's intended send\n"
    "                    time, so a stalled server is not hidden (coordinated omission).\n"
    "  --threads T       client threads, 1..256 (default 1; capped at --conns)\n"
    "  --pipeline K      messages in flight per connection, 1..1024 (default 1);\n"
    "                    conns x pipeline must be <= 16777216\n"
    "  --engine E        epoll (default): one send() and one recv() system call per\n"
    "                    request; uring: io_uring, one io_uring_enter per loop pass that\n"
    "                    submits every send and waits for completions (multishot recv),\n"
    "                    so the client spends less CPU per request. Needs a build with\n"
    "                    liburing and a kernel that allows io_uring.\n"
    "  --json            print the result as one JSON object instead\n"
    "  --help            this text\n"
    "\n"
    "Each connection sends SIZE bytes (K at a time with --pipeline), reads back exactly\n"
    "as many, checks them against a per-connection pattern and records the round trip.\n"
    "MiB/s counts completed requests' payload in one direction (the same flows back).\n"
    "Errors: connect (failed or never completed), reset (ECONNRESET/EPIPE/other I/O\n"
    "error), eof (server closed: short read), mismatch (wrong or unsolicited bytes).\n"
    "A connection with an error is closed and not reopened.\n"
    "Exit status: 0 no errors, 1 the run had errors, 2 bad arguments.\n";

namespace detail {

inline bool parse_u64(std::string_view s, std::uint64_t& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

inline bool parse_double(std::string_view s, double& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && std::isfinite(out);
}

// "1024", "4K", "4KiB", "1M", "1MiB" (binary multiples, as message sizes usually are).
inline bool parse_size(std::string_view s, std::uint64_t& out) {
  std::uint64_t mult = 1;
  auto strip = [&](std::string_view suf, std::uint64_t m) {
    if (s.size() > suf.size() && s.substr(s.size() - suf.size()) == suf) {
      s.remove_suffix(suf.size());
      mult = m;
      return true;
    }
    return false;
  };
  strip("KiB", 1024) || strip("K", 1024) || strip("k", 1024) || strip("MiB", 1 << 20) ||
      strip("M", 1 << 20);
  if (!parse_u64(s, out)) return false;
  if (out > kMaxSize) return false;  // also keeps out * mult from overflowing
  out *= mult;
  return true;
}

inline std::string bad(std::string_view name, std::string_view range, std::string_view got) {
  return std::string(name) + " must be " + std::string(range) + " (got '" + std::string(got) + "')";
}

}  // namespace detail

inline ParseResult parse_args(int argc, const char* const* argv) {
  using namespace detail;
  ParseResult r;
  Options& o = r.opt;
  auto fail = [&r](std::string msg) {
    r.error = std::move(msg);
    return r;
  };
  int positional = 0;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--help" || a == "-h") {
      r.help = true;
      return r;
    }
    if (a == "--json") {
      o.json = true;
      continue;
    }
    if (a.size() > 2 && a.substr(0, 2) == "--") {
      // Accept both "--name value" and "--name=value".
      std::string_view name = a, val;
      bool have = false;
      if (auto eq = a.find('='); eq != std::string_view::npos) {
        name = a.substr(0, eq);
        val = a.substr(eq + 1);
        have = true;
      }
      static constexpr std::string_view known[] = {"--conns",   "--size",     "--secs",
                                                   "--warmup",  "--rate",     "--threads",
                                                   "--pipeline", "--engine"};
      bool is_known = false;
      for (auto k : known) is_known = is_known || k == name;
      if (!is_known) {
        return fail("unknown option '" + std::string(a) + "'");
      }
      if (!have) {
        if (i + 1 >= argc) {
          return fail(std::string(name) + " needs a value");
        }
        val = argv[++i];
      }
      std::uint64_t u = 0;
      double d = 0;
      if (name == "--conns") {
        if (!parse_u64(val, u) || u < 1 || u > kMaxConns)
          return fail(bad(name, "an integer in 1..100000", val));
        o.conns = static_cast<std::uint32_t>(u);
      } else if (name == "--size") {
        if (!parse_size(val, u) || u < 1 || u > kMaxSize)
          return fail(bad(name, "1..16777216 bytes (16 MiB; K/KiB/M/MiB suffix allowed)", val));
        o.size = static_cast<std::uint32_t>(u);
      } else if (name == "--secs") {
        if (!parse_double(val, d) || !(d > 0) || d > kMaxSecs)
          return fail(bad(name, "a number of seconds > 0 and <= 3600", val));
        o.secs = d;
      } else if (name == "--warmup") {
        if (!parse_double(val, d) || d < 0 || d > kMaxSecs)
          return fail(bad(name, "a number of seconds in 0..3600", val));
        o.warmup = d;
      } else if (name == "--rate") {
        if (!parse_double(val, d) || d < 0 || d > kMaxRate)
          return fail(bad(name, "requests/s in 0..1e8 (0 = closed loop)", val));
        o.rate = d;
      } else if (name == "--threads") {
        if (!parse_u64(val, u) || u < 1 || u > kMaxThreads)
          return fail(bad(name, "an integer in 1..256", val));
        o.threads = static_cast<std::uint32_t>(u);
      } else if (name == "--engine") {
        if (val == "epoll") {
          o.engine = Engine::Epoll;
        } else if (val == "uring") {
          o.engine = Engine::Uring;
        } else {
          return fail(bad(name, "one of: epoll, uring", val));
        }
      } else {  // --pipeline
        if (!parse_u64(val, u) || u < 1 || u > kMaxPipeline)
          return fail(bad(name, "an integer in 1..1024", val));
        o.pipeline = static_cast<std::uint32_t>(u);
      }
      continue;
    }
    if (a.size() > 1 && a[0] == '-') {
      return fail("unknown option '" + std::string(a) + "'");
    }
    if (positional == 0) {
      // Strip the brackets of "[::1]" so URL-style IPv6 literals work too.
      if (a.size() >= 2 && a.front() == '[' && a.back() == ']') a = a.substr(1, a.size() - 2);
      if (a.empty()) return fail("HOST must not be empty");
      o.host = std::string(a);
    } else if (positional == 1) {
      std::uint64_t u = 0;
      if (!parse_u64(a, u) || u < 1 || u > 65535)
        return fail(bad("PORT", "an integer in 1..65535", a));
      o.port = static_cast<std::uint16_t>(u);
    } else {
      return fail("unexpected argument '" + std::string(a) +
                  "' (only HOST and PORT are positional)");
    }
    ++positional;
  }
  if (positional < 2) {
    return fail(positional == 0 ? "missing HOST and PORT" : "missing PORT");
  }
  if (std::uint64_t{o.conns} * o.pipeline > kMaxOutstanding) {
    return fail("--conns x --pipeline must be <= 16777216 (got " + std::to_string(o.conns) + " x " +
                std::to_string(o.pipeline) + ")");
  }
  if (o.warmup < 0) o.warmup = o.secs / 10;
  return r;
}

}  // namespace echo_load
