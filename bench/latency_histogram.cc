#include "bench/latency_histogram.h"

#include <algorithm>
#include <cmath>

namespace micro::bench {
namespace {

constexpr int kSubBucketBits = 6;
constexpr int64_t kSubBuckets = int64_t{1} << kSubBucketBits;
// Values below this are their own bucket; above it every power of two gets kSubBuckets buckets.
constexpr int64_t kLinearLimit = 2 * kSubBuckets;
constexpr int kMaxValueBits = 40;
constexpr int64_t kMaxValue = (int64_t{1} << kMaxValueBits) - 1;
constexpr int kBucketCount = static_cast<int>(
    kLinearLimit + (kMaxValueBits - kSubBucketBits - 2) * kSubBuckets + kSubBuckets);

}  // namespace

LatencyHistogram::LatencyHistogram() : counts_(kBucketCount, 0) {}

int LatencyHistogram::BucketOf(int64_t nanos) {
  if (nanos < kLinearLimit) return static_cast<int>(nanos);
  const int msb = 63 - __builtin_clzll(static_cast<uint64_t>(nanos));
  const int shift = msb - kSubBucketBits;   // >= 1 here
  const int64_t mantissa = nanos >> shift;  // in [kSubBuckets, 2 * kSubBuckets)
  return static_cast<int>(kLinearLimit + (shift - 1) * kSubBuckets + (mantissa - kSubBuckets));
}

int64_t LatencyHistogram::BucketHigh(int index) {
  if (index < kLinearLimit) return index;
  const int64_t offset = index - kLinearLimit;
  const int shift = static_cast<int>(offset / kSubBuckets) + 1;
  const int64_t mantissa = offset % kSubBuckets + kSubBuckets;
  return ((mantissa + 1) << shift) - 1;
}

void LatencyHistogram::Record(int64_t nanos) {
  nanos = std::clamp<int64_t>(nanos, 0, kMaxValue);
  ++counts_[BucketOf(nanos)];
  min_ = count_ == 0 ? nanos : std::min(min_, nanos);
  max_ = std::max(max_, nanos);
  sum_ += nanos;
  ++count_;
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  if (other.count_ == 0) return;
  for (int i = 0; i < kBucketCount; ++i) counts_[i] += other.counts_[i];
  min_ = count_ == 0 ? other.min_ : std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  sum_ += other.sum_;
  count_ += other.count_;
}

double LatencyHistogram::Mean() const {
  return count_ == 0 ? 0.0 : static_cast<double>(sum_) / static_cast<double>(count_);
}

int64_t LatencyHistogram::Percentile(double quantile) const {
  if (count_ == 0) return 0;
  // The rank of the value asked for, 1-based: p99 of 1000 values is the 990th smallest.
  const auto rank =
      std::max<int64_t>(1, static_cast<int64_t>(std::ceil(quantile * static_cast<double>(count_))));
  int64_t seen = 0;
  for (int i = 0; i < kBucketCount; ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::min(BucketHigh(i), max_);
  }
  return max_;
}

}  // namespace micro::bench
