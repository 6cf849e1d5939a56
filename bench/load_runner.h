#ifndef MICRO_BENCH_LOAD_RUNNER_H_
#define MICRO_BENCH_LOAD_RUNNER_H_

#include <cstdint>
#include <string>

#include "bench/generic_call.h"
#include "bench/latency_histogram.h"

namespace micro::bench {

struct LoadConfig {
  std::string target;
  CallSpec call;
  int concurrency = 1;            // calls kept in flight
  int calls_per_channel = 16;     // in-flight calls sharing one connection
  double warmup_s = 1;            // run, but not measured
  double duration_s = 5;          // measured
  int64_t max_calls = 5'000'000;  // issued calls, warmup included; stops the run early
};

struct LoadResult {
  int64_t calls = 0;        // OK calls completed inside the measured window
  int64_t errors = 0;       // non-OK calls over the whole run, warmup included
  std::string first_error;  // the first non-OK status, described
  double seconds = 0;       // length of the measured window (shorter if max_calls ran out)
  bool hit_max_calls = false;
  int64_t response_bytes = 0;  // size of the last OK response
  int channels = 0;
  LatencyHistogram latency;  // of the calls counted in `calls`, in ns

  double Qps() const { return seconds > 0 ? static_cast<double>(calls) / seconds : 0; }
};

// Closed-loop load: keeps config.concurrency calls in flight over ceil(concurrency /
// calls_per_channel) connections, each completion issuing the next call, for warmup_s +
// duration_s or until max_calls were issued, then waits for the calls in flight (each bounded by
// its deadline). Returns false with *error only when a connection could not be made; failed
// calls are counted in the result, not reported as a failure here.
[[nodiscard]] bool RunLoad(const LoadConfig& config, LoadResult* result, std::string* error);

}  // namespace micro::bench

#endif  // MICRO_BENCH_LOAD_RUNNER_H_
