#ifndef MICRO_BENCH_LOADGEN_FLAGS_H_
#define MICRO_BENCH_LOADGEN_FLAGS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace micro::bench {

enum class Mode {
  kRun,        // closed-loop load for a duration; prints throughput and latency
  kCall,       // one call; prints the response size, fails with the status
  kWaitReady,  // polls until the server answers; prints the time since --since-ns
};

// Everything micro-loadgen was asked to do, as parsed from its command line.
struct LoadgenFlags {
  Mode mode = Mode::kRun;
  bool help = false;  // print LoadgenUsage() and do nothing else
  std::string target;
  std::string method;
  bool has_request_hex = false;
  std::string request_hex;
  std::string request_text;
  std::string request_type;
  std::vector<std::pair<std::string, std::string>> metadata;
  int concurrency = 1;
  int calls_per_channel = 16;
  double duration_s = 5;
  double warmup_s = 1;
  int64_t max_calls = 5'000'000;
  int64_t number_modulo = 0;  // call numbers ({n}) wrap here; 0: never
  int deadline_ms = 5000;
  bool json = false;
  // call
  bool print_hex = false;
  // wait-ready
  std::string address_file;
  int64_t since_ns = 0;  // 0: since the loadgen started
  int timeout_ms = 10000;
};

// Parses argv (mode first, then --flag value or --flag=value). On failure returns false and sets
// *error to a message naming the offending argument. "--help" succeeds at once with help set.
[[nodiscard]] bool ParseLoadgenFlags(int argc, char** argv, LoadgenFlags* flags,
                                     std::string* error);

std::string LoadgenUsage();

}  // namespace micro::bench

#endif  // MICRO_BENCH_LOADGEN_FLAGS_H_
