#include "bench/load_runner.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <vector>

#include "bench/request_builder.h"

namespace micro::bench {
namespace {

using Clock = std::chrono::steady_clock;

// What every call chain shares: the run's schedule, its call budget, and the count of chains
// still going, which the main thread waits on.
class RunState {
 public:
  RunState(const LoadConfig& config, Clock::time_point start)
      : config_(config),
        window_start_(start + ToDuration(config.warmup_s)),
        window_end_(window_start_ + ToDuration(config.duration_s)),
        running_(config.concurrency) {}

  const CallSpec& call() const { return config_.call; }
  Clock::time_point window_start() const { return window_start_; }
  Clock::time_point window_end() const { return window_end_; }
  bool InWindow(Clock::time_point t) const { return t >= window_start_ && t <= window_end_; }

  // Whether a chain may issue another call now, and its number (0, 1, ... across the run); false
  // once time or the call budget is spent.
  bool ClaimCall(Clock::time_point now, int64_t* number) {
    if (now >= window_end_) return false;
    *number = issued_.fetch_add(1, std::memory_order_relaxed);
    if (*number < config_.max_calls) return true;
    hit_max_calls_.store(true, std::memory_order_relaxed);
    return false;
  }

  void ChainStopped() {
    std::lock_guard<std::mutex> lock(mu_);
    if (--running_ == 0) {
      drained_at_ = Clock::now();
      drained_.notify_all();
    }
  }

  // Waits until every chain stopped or `until`; true if they all did.
  bool WaitDrained(Clock::time_point until) {
    std::unique_lock<std::mutex> lock(mu_);
    return drained_.wait_until(lock, until, [this] { return running_ == 0; });
  }

  bool hit_max_calls() const { return hit_max_calls_.load(std::memory_order_relaxed); }
  Clock::time_point drained_at() const { return drained_at_; }

 private:
  static Clock::duration ToDuration(double seconds) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  }

  const LoadConfig& config_;
  const Clock::time_point window_start_;
  const Clock::time_point window_end_;
  std::atomic<int64_t> issued_{0};
  std::atomic<bool> hit_max_calls_{false};
  std::mutex mu_;
  std::condition_variable drained_;
  int running_;                   // guarded by mu_
  Clock::time_point drained_at_;  // guarded by mu_
};

// One chain of sequential calls: each completion records its call and issues the next. Only one
// call of a chain is ever in flight, so its fields need no lock: gRPC orders a completion after
// the call that started it.
class CallChain {
 public:
  CallChain(RunState* run, grpc::GenericStub* stub)
      : run_(run),
        stub_(stub),
        request_(ToByteBuffer(run->call().request)),
        numbered_request_(run->call().number_fields.empty() ? "" : run->call().request) {}

  void Issue(int64_t number) {
    const CallSpec& call = run_->call();
    if (!call.number_fields.empty()) {
      const auto n = static_cast<uint64_t>(number);
      SetCallNumber(call.number_modulo == 0 ? n : n % call.number_modulo, call.number_fields,
                    &numbered_request_);
      request_ = ToByteBuffer(numbered_request_);
    }
    // The previous call is complete, so its context may go.
    context_ = MakeContext(call);
    response_.Clear();
    started_ = Clock::now();
    stub_->UnaryCall(context_.get(), run_->call().method, grpc::StubOptions(), &request_,
                     &response_, [this](grpc::Status status) { OnDone(status); });
  }

  // Read only after the run drained.
  int64_t calls() const { return calls_; }
  int64_t errors() const { return errors_; }
  const std::string& first_error() const { return first_error_; }
  int64_t response_bytes() const { return response_bytes_; }
  const LatencyHistogram& latency() const { return latency_; }

 private:
  void OnDone(const grpc::Status& status) {
    const Clock::time_point now = Clock::now();
    if (status.ok()) {
      response_bytes_ = static_cast<int64_t>(response_.Length());
      if (run_->InWindow(now)) {
        latency_.Record(
            std::chrono::duration_cast<std::chrono::nanoseconds>(now - started_).count());
        ++calls_;
      }
    } else {
      if (errors_ == 0) first_error_ = DescribeStatus(status);
      ++errors_;
    }
    if (int64_t number = 0; run_->ClaimCall(now, &number)) {
      Issue(number);
    } else {
      run_->ChainStopped();
    }
  }

  RunState* const run_;
  grpc::GenericStub* const stub_;
  grpc::ByteBuffer request_;
  std::string numbered_request_;  // the request with this call's number, when it has fields
  grpc::ByteBuffer response_;
  std::unique_ptr<grpc::ClientContext> context_;
  Clock::time_point started_;
  int64_t calls_ = 0;
  int64_t errors_ = 0;
  std::string first_error_;
  int64_t response_bytes_ = 0;
  LatencyHistogram latency_;
};

constexpr auto kConnectTimeout = std::chrono::seconds(5);
// Beyond the calls' own deadlines, before deciding gRPC lost a completion.
constexpr auto kDrainSlack = std::chrono::seconds(10);

}  // namespace

bool RunLoad(const LoadConfig& config, LoadResult* result, std::string* error) {
  const int channel_count =
      (config.concurrency + config.calls_per_channel - 1) / config.calls_per_channel;
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs;
  for (int i = 0; i < channel_count; ++i) {
    channels.push_back(MakeChannel(config.target, i, /*fast_reconnect=*/false));
    if (!channels.back()->WaitForConnected(std::chrono::system_clock::now() + kConnectTimeout)) {
      *error = "could not connect to " + config.target;
      return false;
    }
    stubs.push_back(std::make_unique<grpc::GenericStub>(channels.back()));
  }

  RunState run(config, Clock::now());
  std::vector<std::unique_ptr<CallChain>> chains;
  for (int i = 0; i < config.concurrency; ++i) {
    chains.push_back(std::make_unique<CallChain>(&run, stubs[i % channel_count].get()));
  }
  for (auto& chain : chains) {
    if (int64_t number = 0; run.ClaimCall(Clock::now(), &number)) {
      chain->Issue(number);
    } else {
      run.ChainStopped();
    }
  }

  const auto until =
      run.window_end() + std::chrono::milliseconds(config.call.deadline_ms) + kDrainSlack;
  if (!run.WaitDrained(until)) {
    // Chains still reference this frame; returning would let gRPC write into freed memory.
    std::fprintf(stderr, "micro-loadgen: calls still in flight long after their deadline\n");
    std::_Exit(3);
  }

  *result = LoadResult();
  result->channels = channel_count;
  result->hit_max_calls = run.hit_max_calls();
  const Clock::time_point end =
      result->hit_max_calls ? std::min(run.drained_at(), run.window_end()) : run.window_end();
  result->seconds = std::max(0.0, std::chrono::duration<double>(end - run.window_start()).count());
  for (const auto& chain : chains) {
    result->calls += chain->calls();
    result->errors += chain->errors();
    if (result->first_error.empty()) result->first_error = chain->first_error();
    result->response_bytes = std::max(result->response_bytes, chain->response_bytes());
    result->latency.Merge(chain->latency());
  }
  return true;
}

}  // namespace micro::bench
