// eddy::latency_histogram (include/eddy/runtime/metrics.hpp): the arithmetic on a
// snapshot. Whoever records (a thread pool's workers) keeps its own counters and
// copies them into this value type when asked.
#include <bit>
#include <cstdio>
#include <limits>

#include <eddy/runtime/metrics.hpp>

namespace eddy {

std::size_t latency_histogram::bucket_of(std::uint64_t ns) noexcept {
  const std::uint64_t us = ns / 1000;
  if (us < 2) return 0;
  const auto b = static_cast<std::size_t>(std::bit_width(us) - 1);  // floor(log2(us))
  return b < buckets ? b : buckets - 1;
}

std::uint64_t latency_histogram::bucket_limit_ns(std::size_t i) noexcept {
  if (i + 1 >= buckets) return std::numeric_limits<std::uint64_t>::max();
  return (std::uint64_t{2} << i) * 1000;
}

std::chrono::nanoseconds latency_histogram::mean() const noexcept {
  return std::chrono::nanoseconds(count != 0 ? static_cast<std::int64_t>(sum_ns / count) : 0);
}

std::chrono::nanoseconds latency_histogram::percentile(double q) const noexcept {
  std::uint64_t total = 0;
  for (std::uint64_t c : hist) total += c;
  if (total == 0) return std::chrono::nanoseconds(0);
  if (!(q > 0)) q = 0;
  if (q > 1) q = 1;
  // The rank of the q-th duration, 1-based: ceil(q * total), at least 1.
  auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total));
  if (static_cast<double>(rank) < q * static_cast<double>(total)) ++rank;
  if (rank == 0) rank = 1;
  std::uint64_t seen = 0;
  std::size_t i = 0;
  for (; i < buckets; ++i) {
    seen += hist[i];
    if (seen >= rank) break;
  }
  std::uint64_t edge = bucket_limit_ns(i < buckets ? i : buckets - 1);
  if (max_ns != 0 && edge > max_ns) edge = max_ns;
  return std::chrono::nanoseconds(static_cast<std::int64_t>(edge));
}

latency_histogram latency_histogram::delta(const latency_histogram& e) const noexcept {
  latency_histogram d = *this;
  d.count -= e.count;
  d.sum_ns -= e.sum_ns;
  for (std::size_t i = 0; i < buckets; ++i) d.hist[i] -= e.hist[i];
  return d;
}

latency_histogram& latency_histogram::operator+=(const latency_histogram& o) noexcept {
  count += o.count;
  sum_ns += o.sum_ns;
  if (o.max_ns > max_ns) max_ns = o.max_ns;
  for (std::size_t i = 0; i < buckets; ++i) hist[i] += o.hist[i];
  return *this;
}

namespace {

// "850ns", "35us", "1.2ms", "2.50s": short enough for a --stats line.
void format_ns(char* out, std::size_t n, std::uint64_t ns) {
  const double v = static_cast<double>(ns);
  if (ns < 1000) std::snprintf(out, n, "%lluns", static_cast<unsigned long long>(ns));
  else if (ns < 1'000'000) std::snprintf(out, n, "%.0fus", v / 1e3);
  else if (ns < 1'000'000'000) std::snprintf(out, n, "%.1fms", v / 1e6);
  else std::snprintf(out, n, "%.2fs", v / 1e9);
}

}  // namespace

std::string latency_histogram::summary() const {
  if (count == 0) return "n 0";
  char mean_s[24], p50[24], p99[24], mx[24], buf[160];
  format_ns(mean_s, sizeof mean_s, static_cast<std::uint64_t>(mean().count()));
  format_ns(p50, sizeof p50, static_cast<std::uint64_t>(percentile(0.5).count()));
  format_ns(p99, sizeof p99, static_cast<std::uint64_t>(percentile(0.99).count()));
  format_ns(mx, sizeof mx, max_ns);
  std::snprintf(buf, sizeof buf, "n %llu mean %s p50 %s p99 %s max %s",
                static_cast<unsigned long long>(count), mean_s, p50, p99, mx);
  return buf;
}

}  // namespace eddy
