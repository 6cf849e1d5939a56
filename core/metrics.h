#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace micro {

// Writes metrics in the Prometheus text exposition format (version 0.0.4). Samples are grouped
// by family whatever the order they come in, so a family is written once, contiguous, after its
// `# HELP` and `# TYPE` lines. Names (families, labels) are the caller's constants and must
// match [a-zA-Z_:][a-zA-Z0-9_:]*; label values and help texts may hold anything (escaped here).
// Not thread-safe: one writer per render.
class MetricsWriter {
 public:
  enum class Type { kCounter, kGauge, kHistogram, kUntyped };
  using Labels = std::vector<std::pair<std::string, std::string>>;  // name, value

  // Makes `name` the current family, declaring it the first time it is named (later calls with
  // the same name append to it; their help and type are ignored).
  void Family(std::string_view name, std::string_view help, Type type);

  // One sample of the current family: `<family><suffix>{labels} value`. The suffix is empty,
  // or "_bucket", "_sum", "_count" for a histogram. Values print in Go's float syntax
  // (integers without a fraction, "+Inf", "-Inf", "NaN").
  void Sample(const Labels& labels, double value, std::string_view suffix = {});

  // The text written so far, families in the order they were first named.
  std::string Text() const;

 private:
  struct Block {
    std::string name;
    std::string text;
  };
  std::vector<Block> blocks_;
  size_t current_ = 0;  // index into blocks_
};

// The daemon's metrics: counter and histogram families with labels, recorded from any thread,
// and collectors that write figures computed at render time. Thread-safe.
//
// Recording a sample costs a hash lookup under a family's shared lock plus atomic adds; only
// the first sample of a new label set takes the family's lock alone. Each family holds at most
// `max_series` label sets: the samples of any further one are recorded under the label set
// whose every value is "other" (one more series), so clients that invent label values (gRPC
// method names) cannot grow memory without bound.
class Metrics {
 public:
  static constexpr size_t kDefaultMaxSeries = 1000;  // label sets per family
  static constexpr std::string_view kOther = "other";

  // The default histogram buckets, in seconds: 100 µs to 10 s (+Inf is implicit).
  static const std::vector<double>& DefaultBuckets();

  class Counter;
  class Histogram;

  explicit Metrics(size_t max_series = kDefaultMaxSeries);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Declares a family, or returns the one declared already under `name` (the other arguments
  // are then ignored; a name is either a counter's or a histogram's). The result lives as long
  // as the registry.
  Counter& AddCounter(std::string name, std::string help, std::vector<std::string> label_names);
  // `bounds`: the upper bounds of the buckets, increasing, +Inf excluded.
  Histogram& AddHistogram(std::string name, std::string help, std::vector<std::string> label_names,
                          std::vector<double> bounds = DefaultBuckets());

  // Runs `collect` at every Render, after the families above, on the rendering thread. It
  // must be quick and must not call back into this registry.
  void AddCollector(std::function<void(MetricsWriter&)> collect);

  // Every family and collector, in the Prometheus text format 0.0.4
  // (Content-Type: text/plain; version=0.0.4; charset=utf-8).
  std::string Render() const;

  struct Family;  // defined in metrics.cc

 private:
  const size_t max_series_;
  mutable std::mutex mu_;                          // guards the four below, not the series
  std::vector<std::unique_ptr<Family>> families_;  // in declaration order
  std::map<std::string, std::unique_ptr<Counter>, std::less<>> counters_;
  std::map<std::string, std::unique_ptr<Histogram>, std::less<>> histograms_;
  std::vector<std::function<void(MetricsWriter&)>> collectors_;
};

// A counter family. Values only go up.
class Metrics::Counter {
 public:
  explicit Counter(Family& family) : family_(family) {}
  // Adds `n` to the series of `label_values` (one per label name, in order).
  void Add(std::initializer_list<std::string_view> label_values, uint64_t n = 1);

 private:
  Family& family_;
};

// A histogram family with fixed buckets.
class Metrics::Histogram {
 public:
  explicit Histogram(Family& family) : family_(family) {}
  // Counts `value` (seconds, for the default buckets) in the series of `label_values`.
  void Observe(std::initializer_list<std::string_view> label_values, double value);

 private:
  Family& family_;
};

}  // namespace micro
