#ifndef MICRO_BENCH_LATENCY_HISTOGRAM_H_
#define MICRO_BENCH_LATENCY_HISTOGRAM_H_

#include <cstdint>
#include <vector>

namespace micro::bench {

// Latencies in nanoseconds, counted in HdrHistogram's log-linear layout: 64 linear sub-buckets
// per power of two. Memory is fixed (about 18 KiB) however long the run, and every percentile is
// within 1/64 (1.6%) of the exact value. Values above ~18 minutes are clamped.
//
// Not thread-safe: give each thread (or each sequential chain of calls) its own and Merge().
class LatencyHistogram {
 public:
  LatencyHistogram();

  void Record(int64_t nanos);
  void Merge(const LatencyHistogram& other);

  int64_t Count() const { return count_; }
  int64_t Min() const { return count_ == 0 ? 0 : min_; }
  int64_t Max() const { return max_; }
  double Mean() const;

  // The value at `quantile` (0..1], rounded up to the top of its bucket and capped at Max(), so a
  // reported tail is never better than the truth. 0 when empty.
  int64_t Percentile(double quantile) const;

 private:
  static int BucketOf(int64_t nanos);
  static int64_t BucketHigh(int index);

  std::vector<int64_t> counts_;
  int64_t count_ = 0;
  int64_t sum_ = 0;
  int64_t min_ = 0;
  int64_t max_ = 0;
};

}  // namespace micro::bench

#endif  // MICRO_BENCH_LATENCY_HISTOGRAM_H_
