#pragma once

// LatencyHistogram: latencies in nanoseconds in log-linear buckets (16 per power of two, so a
// reported percentile is within 1/16 ≈ 6% of the true value), from 1 µs to about 70 s, plus
// exact count, sum and maximum. Merging histograms of several connections is adding counts.
//
// Thread safety: none; give each thread its own and Merge them.

#include <array>
#include <cstddef>
#include <cstdint>

namespace segd::load {

class LatencyHistogram {
 public:
  void Record(uint64_t nanos);
  void Merge(const LatencyHistogram& other);
  void Clear() { *this = LatencyHistogram(); }

  uint64_t count() const { return count_; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ ? static_cast<double>(sum_) / count_ : 0; }
  // The smallest bucket value at or below which a fraction `q` (0–1) of the samples lie
  // (the bucket's upper bound, capped at the maximum); 0 when empty.
  uint64_t Percentile(double q) const;

 private:
  static constexpr int kSubBits = 4;    // 16 sub-buckets per power of two
  static constexpr int kMinShift = 10;  // values below 1024 ns share the first buckets
  static constexpr int kPowers = 27;    // up to 2^(10+27) ns ≈ 137 s
  static constexpr size_t kBuckets = (kPowers + 1) << kSubBits;
  static size_t BucketOf(uint64_t nanos);
  static uint64_t UpperBoundOf(size_t bucket);

  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t max_ = 0;
};

}  // namespace segd::load
