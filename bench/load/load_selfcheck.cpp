// Self-check for echo_load's histogram and argument rules, without GoogleTest (the load
// generator must build where the test frameworks are missing). Exit 0 when all pass.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "args.hpp"
#include "histogram.hpp"

namespace {

int failures = 0;

void check(bool ok, const char* what) {
  if (!ok) {
    std::printf("FAIL: %s\n", what);
    ++failures;
  }
}

void histogram_checks() {
  using H = echo_load::LatencyHistogram;
  // Buckets tile the value range: contiguous, monotone, each value inside its bucket.
  std::uint64_t prev_hi = 0;
  bool tiled = true;
  for (std::size_t i = 1; i < H::kBuckets; ++i) {
    std::uint64_t hi = H::highest_in(i);
    tiled = tiled && hi > prev_hi && H::index_of(prev_hi + 1) == i && H::index_of(hi) == i;
    prev_hi = hi;
  }
  check(tiled, "buckets are contiguous and index_of/highest_in agree");
  check(prev_hi == (std::uint64_t{1} << H::kMaxBits) - 1, "last bucket ends at 2^kMaxBits - 1");

  // Percentiles against the exact order statistics of a wide, skewed sample.
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> dist(11.0, 1.5);  // ~60 us median, long tail
  std::vector<std::uint64_t> xs;
  H a, b;
  for (int i = 0; i < 200000; ++i) {
    auto v = static_cast<std::uint64_t>(dist(rng));
    xs.push_back(v);
    (i % 2 ? a : b).record(v);  // two "threads", merged below
  }
  a.merge(b);
  std::sort(xs.begin(), xs.end());
  bool close = true;
  for (double q : {0.5, 0.9, 0.99, 0.999, 0.9999}) {
    auto exact = xs[static_cast<std::size_t>(std::ceil(q * xs.size())) - 1];
    auto got = a.percentile(q);
    // Never below the true value, and above it by less than one bucket (1/128).
    close = close && got >= exact && got <= exact + exact / 128 + 1;
  }
  check(close, "percentiles within one bucket above the exact value");
  check(a.count() == xs.size() && a.max() == xs.back() && a.min() == xs.front(),
        "count/min/max exact after merge");
  check(a.percentile(1.0) == xs.back(), "p100 is the exact max");

  H done, stuck;
  for (std::uint64_t v = 1000; v < 2000; ++v) done.record(v);
  stuck.record(500);      // younger than the completed ones: ordinary in-flight, ignored
  stuck.record(1000000);  // older than every completed one: the hidden tail, counted
  check(done.merge_above(stuck, done.max()) == 1 && done.count() == 1001 && done.max() == 1000000 &&
            done.percentile(1.0) == 1000000,
        "merge_above adds only samples above the floor");

  H small;
  for (std::uint64_t v = 0; v < 100; ++v) small.record(v);
  check(small.percentile(0.5) == 49, "small values are exact");
  H empty;
  check(empty.percentile(0.99) == 0 && empty.max() == 0, "empty histogram reports 0");
  H huge;
  huge.record(~std::uint64_t{0});
  check(huge.max() == (std::uint64_t{1} << H::kMaxBits) - 1, "oversized values are clamped");
}

echo_load::ParseResult parse(std::vector<const char*> args) {
  args.insert(args.begin(), "echo_load");
  return echo_load::parse_args(static_cast<int>(args.size()), args.data());
}

void args_checks() {
  auto ok = parse({"::1", "7000", "--conns", "100", "--size=1KiB", "--secs", "2.5", "--rate",
                   "60000", "--threads", "2", "--pipeline", "8", "--json"});
  check(ok.error.empty(), "valid command line parses");
  check(ok.opt.host == "::1" && ok.opt.port == 7000 && ok.opt.conns == 100 && ok.opt.size == 1024 &&
            ok.opt.secs == 2.5 && ok.opt.rate == 60000 && ok.opt.threads == 2 &&
            ok.opt.pipeline == 8 && ok.opt.json,
        "values are taken");
  check(ok.opt.warmup == 0.25, "warm-up defaults to 10% of --secs");
  check(parse({"[::1]", "1"}).opt.host == "::1", "brackets are stripped from IPv6 literals");
  check(parse({"h", "1", "--size", "16M"}).opt.size == 16u << 20, "16 MiB is allowed");
  check(parse({"--help"}).help, "--help");
  check(ok.opt.engine == echo_load::Engine::Epoll, "--engine defaults to epoll");
  check(parse({"h", "1", "--engine", "uring"}).opt.engine == echo_load::Engine::Uring &&
            parse({"h", "1", "--engine=uring"}).opt.engine == echo_load::Engine::Uring,
        "--engine uring is taken");
  check(parse({"h", "1", "--engine", "uring", "--engine", "epoll"}).opt.engine ==
            echo_load::Engine::Epoll,
        "--engine epoll is taken (the last one wins)");
  {
    auto r = parse({"h", "1", "--engine", "io_uring"});
    check(r.error.find("--engine") != std::string::npos &&
              r.error.find("epoll") != std::string::npos &&
              r.error.find("uring") != std::string::npos &&
              r.error.find("io_uring") != std::string::npos,
          "an unknown engine is rejected naming the allowed values and what was given");
  }

  struct Bad {
    std::vector<const char*> args;
    const char* must_name;
  };
  const Bad bad[] = {
      {{}, "HOST"},
      {{"h"}, "PORT"},
      {{"h", "0"}, "PORT"},
      {{"h", "65536"}, "PORT"},
      {{"h", "1", "--conns", "0"}, "--conns"},
      {{"h", "1", "--conns", "100001"}, "--conns"},
      {{"h", "1", "--size", "0"}, "--size"},
      {{"h", "1", "--size", "16777217"}, "--size"},
      {{"h", "1", "--size", "17M"}, "--size"},
      {{"h", "1", "--secs", "0"}, "--secs"},
      {{"h", "1", "--secs", "3600.5"}, "--secs"},
      {{"h", "1", "--secs", "inf"}, "--secs"},
      {{"h", "1", "--rate", "-1"}, "--rate"},
      {{"h", "1", "--threads", "0"}, "--threads"},
      {{"h", "1", "--threads", "257"}, "--threads"},
      {{"h", "1", "--pipeline", "1025"}, "--pipeline"},
      {{"h", "1", "--pipeline"}, "--pipeline"},
      {{"h", "1", "--engine"}, "--engine"},
      {{"h", "1", "--engine", "EPOLL"}, "--engine"},
      {{"h", "1", "--engine="}, "--engine"},
      {{"h", "1", "--conns", "12x"}, "--conns"},
      {{"h", "1", "--conns", "100000", "--pipeline", "1024"}, "--pipeline"},
      {{"h", "1", "--nope"}, "--nope"},
      {{"h", "1", "extra"}, "extra"},
  };
  for (const auto& t : bad) {
    auto r = parse(t.args);
    bool named = r.error.find(t.must_name) != std::string::npos;
    if (!named)
      std::printf("  (error was: '%s', expected it to name %s)\n", r.error.c_str(), t.must_name);
    check(named, "bad argument is rejected with its name in the message");
  }
}

}  // namespace

int main() {
  histogram_checks();
  args_checks();
  std::printf("%s (%d failures)\n", failures ? "FAILED" : "ok", failures);
  return failures ? 1 : 0;
}
