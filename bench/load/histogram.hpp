// HDR-style latency histogram: log2 buckets, each split into linear sub-buckets, so the
// relative error is bounded (< 1/128) over nanoseconds to hours with a fixed ~38 KiB
// table. Recording is an index computation and an increment, cheap enough for every
// request; per-thread histograms merge by adding counts, so no sample list is kept.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace echo_load {

class LatencyHistogram {
 public:
  // Values below 2^kSubBits are counted exactly; above, each power of two is split
  // into 2^(kSubBits-1) equal parts, so a bucket spans < 1/128 of its values.
  static constexpr unsigned kSubBits = 8;
  // Largest value kept distinct: 2^kMaxBits - 1 ns, about 4.9 hours (beyond --secs).
  static constexpr unsigned kMaxBits = 44;
  static constexpr std::size_t kBuckets =
      (std::size_t{1} << kSubBits) + (kMaxBits - kSubBits) * (std::size_t{1} << (kSubBits - 1));

  LatencyHistogram() : counts_(kBuckets, 0) {}

  void record(std::uint64_t v) {
    v = std::min<std::uint64_t>(v, (std::uint64_t{1} << kMaxBits) - 1);
    ++counts_[index_of(v)];
    ++total_;
    sum_ += static_cast<double>(v);
    min_ = std::min(min_, v);
    max_ = std::max(max_, v);
  }

  void merge(const LatencyHistogram& o) {
    for (std::size_t i = 0; i < kBuckets; ++i) counts_[i] += o.counts_[i];
    total_ += o.total_;
    sum_ += o.sum_;
    min_ = std::min(min_, o.min_);
    max_ = std::max(max_, o.max_);
  }

  // Adds o's samples from buckets lying wholly above `floor`, at their bucket's lowest
  // value (they are lower bounds: ages of requests that never completed). Returns how
  // many were added.
  std::uint64_t merge_above(const LatencyHistogram& o, std::uint64_t floor) {
    std::uint64_t added = 0;
    for (std::size_t i = 0; i < kBuckets; ++i) {
      if (o.counts_[i] == 0 || lowest_in(i) <= floor) continue;
      counts_[i] += o.counts_[i];
      added += o.counts_[i];
      sum_ += static_cast<double>(lowest_in(i)) * static_cast<double>(o.counts_[i]);
      min_ = std::min(min_, lowest_in(i));
      max_ = std::max(max_, o.max_);
    }
    total_ += added;
    return added;
  }

  std::uint64_t count() const { return total_; }
  std::uint64_t max() const { return total_ ? max_ : 0; }
  std::uint64_t min() const { return total_ ? min_ : 0; }
  double mean() const { return total_ ? sum_ / static_cast<double>(total_) : 0; }

  // The value at or below which a fraction q of the samples lie: the highest value of
  // the bucket holding the sample of rank ceil(q * n), as HdrHistogram reports it (an
  // over- rather than an under-statement), clamped to the exact maximum.
  std::uint64_t percentile(double q) const {
    if (total_ == 0) return 0;
    q = std::clamp(q, 0.0, 1.0);
    auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total_)));
    rank = std::clamp<std::uint64_t>(rank, 1, total_);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::min(highest_in(i), max_);
    }
    return max_;
  }

  static std::size_t index_of(std::uint64_t v) {
    constexpr std::uint64_t exact = std::uint64_t{1} << kSubBits;
    if (v < exact) return static_cast<std::size_t>(v);
    const unsigned shift = static_cast<unsigned>(std::bit_width(v)) - kSubBits;  // >= 1
    const std::uint64_t mantissa = v >> shift;  // in [exact/2, exact)
    return static_cast<std::size_t>(exact + (shift - 1) * (exact / 2) + (mantissa - exact / 2));
  }

  static std::uint64_t lowest_in(std::size_t i) { return i == 0 ? 0 : highest_in(i - 1) + 1; }

  static std::uint64_t highest_in(std::size_t i) {
    constexpr std::uint64_t exact = std::uint64_t{1} << kSubBits;
    if (i < exact) return i;
    const std::uint64_t k = i - exact;
    const unsigned shift = static_cast<unsigned>(k / (exact / 2)) + 1;
    const std::uint64_t mantissa = k % (exact / 2) + exact / 2;
    return ((mantissa + 1) << shift) - 1;
  }

 private:
  std::vector<std::uint64_t> counts_;
  std::uint64_t total_ = 0;
  double sum_ = 0;
  std::uint64_t min_ = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t max_ = 0;
};

}  // namespace echo_load
