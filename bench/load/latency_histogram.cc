#include "bench/load/latency_histogram.h"

#include <algorithm>
#include <bit>

namespace segd::load {

size_t LatencyHistogram::BucketOf(uint64_t nanos) {
  uint64_t v = nanos >> kMinShift;  // units of 1024 ns
  if (v < (1u << kSubBits)) return static_cast<size_t>(v);
  int power = std::bit_width(v) - 1 - kSubBits;  // >= 0
  size_t sub = static_cast<size_t>((v >> power) & ((1u << kSubBits) - 1));
  size_t bucket = (static_cast<size_t>(power + 1) << kSubBits) + sub;
  return std::min(bucket, kBuckets - 1);
}

uint64_t LatencyHistogram::UpperBoundOf(size_t bucket) {
  if (bucket < (1u << kSubBits)) return (static_cast<uint64_t>(bucket) + 1) << kMinShift;
  size_t power = (bucket >> kSubBits) - 1;
  uint64_t sub = bucket & ((1u << kSubBits) - 1);
  uint64_t low = ((uint64_t{1} << kSubBits) + sub) << power;
  return (low + (uint64_t{1} << power)) << kMinShift;
}

void LatencyHistogram::Record(uint64_t nanos) {
  ++counts_[BucketOf(nanos)];
  ++count_;
  sum_ += nanos;
  max_ = std::max(max_, nanos);
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  max_ = std::max(max_, other.max_);
}

uint64_t LatencyHistogram::Percentile(double q) const {
  if (count_ == 0) return 0;
  uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(count_));
  if (rank >= count_) rank = count_ - 1;
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen > rank) return std::min(UpperBoundOf(i), max_);
  }
  return max_;
}

}  // namespace segd::load
