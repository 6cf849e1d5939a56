#include "core/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cmath>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

namespace micro {
namespace {

const char* TypeName(MetricsWriter::Type type) {
  switch (type) {
    case MetricsWriter::Type::kCounter:
      return "counter";
    case MetricsWriter::Type::kGauge:
      return "gauge";
    case MetricsWriter::Type::kHistogram:
      return "histogram";
    case MetricsWriter::Type::kUntyped:
      return "untyped";
  }
  return "untyped";
}

// Help text escapes backslash and newline; label values also the double quote.
void AppendEscaped(std::string* out, std::string_view text, bool quote) {
  for (char c : text) {
    if (c == '\\') {
      out->append("\\\\");
    } else if (c == '\n') {
      out->append("\\n");
    } else if (c == '"' && quote) {
      out->append("\\\"");
    } else {
      out->push_back(c);
    }
  }
}

// Go's ParseFloat syntax, which the format uses: integers without a fraction (exact below
// 2^53), otherwise the shortest text that reads back as the same double.
std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::trunc(value) && std::fabs(value) < 9007199254740992.0) {
    return fmt::format("{:.0f}", value);
  }
  return fmt::format("{}", value);
}

// A label set as a map key: each value with its length before it, so no two sets collide
// whatever bytes their values hold.
void AppendKeyPart(std::string* key, std::string_view value) {
  const auto size = static_cast<uint32_t>(value.size());
  key->append(reinterpret_cast<const char*>(&size), sizeof(size));
  key->append(value);
}

}  // namespace

void MetricsWriter::Family(std::string_view name, std::string_view help, Type type) {
  for (size_t i = 0; i < blocks_.size(); ++i) {
    if (blocks_[i].name == name) {
      current_ = i;
      return;
    }
  }
  Block block{std::string(name), fmt::format("# HELP {} ", name)};
  AppendEscaped(&block.text, help, false);
  block.text.append(fmt::format("\n# TYPE {} {}\n", name, TypeName(type)));
  blocks_.push_back(std::move(block));
  current_ = blocks_.size() - 1;
}

void MetricsWriter::Sample(const Labels& labels, double value, std::string_view suffix) {
  assert(!blocks_.empty() && "Sample before Family");
  if (blocks_.empty()) return;
  Block& block = blocks_[current_];
  std::string& out = block.text;
  out.append(block.name).append(suffix);
  if (!labels.empty()) {
    out.push_back('{');
    for (size_t i = 0; i < labels.size(); ++i) {
      if (i > 0) out.push_back(',');
      out.append(labels[i].first).append("=\"");
      AppendEscaped(&out, labels[i].second, true);
      out.push_back('"');
    }
    out.push_back('}');
  }
  out.push_back(' ');
  out.append(FormatValue(value)).push_back('\n');
}

std::string MetricsWriter::Text() const {
  std::string out;
  for (const Block& block : blocks_) out.append(block.text);
  return out;
}

// One family's series. A series, once made, lives as long as the registry: recorders find it
// under the shared lock and update it with atomics alone.
struct Metrics::Family {
  struct Series {
    std::vector<std::string> values;
    std::atomic<uint64_t> count{0};                    // a counter's value
    std::unique_ptr<std::atomic<uint64_t>[]> buckets;  // a histogram's, not cumulative
    std::atomic<double> sum{0};
  };

  Family(std::string name, std::string help, MetricsWriter::Type type,
         std::vector<std::string> label_names, std::vector<double> bounds, size_t max_series)
      : name(std::move(name)),
        help(std::move(help)),
        type(type),
        label_names(std::move(label_names)),
        bounds(std::move(bounds)),
        max_series(max_series) {}

  Series& Find(std::initializer_list<std::string_view> values) {
    assert(values.size() == label_names.size());
    // Reused by each recording thread: a lookup allocates nothing once the key fits.
    thread_local std::string key;
    key.clear();
    for (std::string_view value : values) AppendKeyPart(&key, value);
    {
      std::shared_lock lock(mu);
      if (auto it = series.find(key); it != series.end()) return *it->second;
    }
    std::unique_lock lock(mu);
    if (auto it = series.find(key); it != series.end()) return *it->second;
    std::vector<std::string> labels(values.begin(), values.end());
    if (series.size() >= max_series) {
      key.clear();
      for (size_t i = 0; i < values.size(); ++i) AppendKeyPart(&key, kOther);
      if (auto it = series.find(key); it != series.end()) return *it->second;
      labels.assign(values.size(), std::string(kOther));
    }
    auto made = std::make_unique<Series>();
    made->values = std::move(labels);
    if (type == MetricsWriter::Type::kHistogram) {
      made->buckets = std::make_unique<std::atomic<uint64_t>[]>(bounds.size() + 1);
      for (size_t i = 0; i <= bounds.size(); ++i) made->buckets[i] = 0;
    }
    return *series.emplace(key, std::move(made)).first->second;
  }

  // The series in label order, for a stable text.
  std::vector<const Series*> Sorted() const {
    std::vector<const Series*> out;
    {
      std::shared_lock lock(mu);
      out.reserve(series.size());
      for (const auto& [key, s] : series) out.push_back(s.get());
    }
    std::sort(out.begin(), out.end(),
              [](const Series* a, const Series* b) { return a->values < b->values; });
    return out;
  }

  void Write(MetricsWriter& writer) const {
    writer.Family(name, help, type);
    for (const Series* s : Sorted()) {
      MetricsWriter::Labels labels;
      for (size_t i = 0; i < label_names.size(); ++i) {
        labels.emplace_back(label_names[i], s->values[i]);
      }
      if (type != MetricsWriter::Type::kHistogram) {
        writer.Sample(labels, static_cast<double>(s->count.load(std::memory_order_relaxed)));
        continue;
      }
      WriteHistogram(writer, labels, *s);
    }
  }

  // The count is the sum of the buckets read here, so `_count` always equals the +Inf bucket
  // even while observations land (the sum may be a few observations ahead or behind).
  void WriteHistogram(MetricsWriter& writer, MetricsWriter::Labels labels, const Series& s) const {
    uint64_t cumulative = 0;
    labels.emplace_back("le", "");
    for (size_t i = 0; i <= bounds.size(); ++i) {
      cumulative += s.buckets[i].load(std::memory_order_relaxed);
      labels.back().second = i < bounds.size() ? FormatValue(bounds[i]) : "+Inf";
      writer.Sample(labels, static_cast<double>(cumulative), "_bucket");
    }
    labels.pop_back();
    writer.Sample(labels, s.sum.load(std::memory_order_relaxed), "_sum");
    writer.Sample(labels, static_cast<double>(cumulative), "_count");
  }

  const std::string name;
  const std::string help;
  const MetricsWriter::Type type;
  const std::vector<std::string> label_names;
  const std::vector<double> bounds;  // histograms: increasing upper bounds, +Inf excluded
  const size_t max_series;

  mutable std::shared_mutex mu;  // guards the map; the series themselves are atomics
  std::unordered_map<std::string, std::unique_ptr<Series>> series;
};

const std::vector<double>& Metrics::DefaultBuckets() {
  static const std::vector<double> buckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                              0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                              1,      2.5,     5,      10};
  return buckets;
}

Metrics::Metrics(size_t max_series) : max_series_(std::max<size_t>(max_series, 1)) {}

Metrics::~Metrics() = default;

Metrics::Counter& Metrics::AddCounter(std::string name, std::string help,
                                      std::vector<std::string> label_names) {
  std::lock_guard lock(mu_);
  assert(histograms_.count(name) == 0);
  std::unique_ptr<Counter>& counter = counters_[name];
  if (!counter) {
    families_.push_back(
        std::make_unique<Family>(std::move(name), std::move(help), MetricsWriter::Type::kCounter,
                                 std::move(label_names), std::vector<double>{}, max_series_));
    counter = std::make_unique<Counter>(*families_.back());
  }
  return *counter;
}

Metrics::Histogram& Metrics::AddHistogram(std::string name, std::string help,
                                          std::vector<std::string> label_names,
                                          std::vector<double> bounds) {
  std::lock_guard lock(mu_);
  assert(counters_.count(name) == 0);
  std::unique_ptr<Histogram>& histogram = histograms_[name];
  if (!histogram) {
    std::sort(bounds.begin(), bounds.end());
    bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
    if (!bounds.empty() && std::isinf(bounds.back())) bounds.pop_back();
    families_.push_back(
        std::make_unique<Family>(std::move(name), std::move(help), MetricsWriter::Type::kHistogram,
                                 std::move(label_names), std::move(bounds), max_series_));
    histogram = std::make_unique<Histogram>(*families_.back());
  }
  return *histogram;
}

void Metrics::AddCollector(std::function<void(MetricsWriter&)> collect) {
  std::lock_guard lock(mu_);
  collectors_.push_back(std::move(collect));
}

std::string Metrics::Render() const {
  MetricsWriter writer;
  std::lock_guard lock(mu_);
  for (const auto& family : families_) family->Write(writer);
  for (const auto& collect : collectors_) collect(writer);
  return writer.Text();
}

void Metrics::Counter::Add(std::initializer_list<std::string_view> label_values, uint64_t n) {
  family_.Find(label_values).count.fetch_add(n, std::memory_order_relaxed);
}

void Metrics::Histogram::Observe(std::initializer_list<std::string_view> label_values,
                                 double value) {
  Family::Series& series = family_.Find(label_values);
  const std::vector<double>& bounds = family_.bounds;
  // The first bucket whose bound is >= value (`le`: less or equal); NaN goes to +Inf.
  const size_t bucket =
      std::isnan(value) ? bounds.size()
                        : std::lower_bound(bounds.begin(), bounds.end(), value) - bounds.begin();
  series.buckets[bucket].fetch_add(1, std::memory_order_relaxed);
  double sum = series.sum.load(std::memory_order_relaxed);
  while (!series.sum.compare_exchange_weak(sum, sum + value, std::memory_order_relaxed)) {
  }
}

}  // namespace micro
