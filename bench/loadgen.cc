// micro-loadgen: closed-loop load, single calls and readiness polling against any gRPC server,
// with requests as raw bytes so that servers we have no protos for (etcd) are called the same way
// as ours. See bench/README.md.

#include <grpcpp/generic/generic_stub.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>

#include "bench/generic_call.h"
#include "bench/load_runner.h"
#include "bench/loadgen_flags.h"
#include "bench/request_builder.h"

namespace micro::bench {
namespace {

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
// grpc.health.v1.HealthCheckResponse{status: SERVING}: field 1, varint 1.
constexpr char kHealthServing[] = "\x08\x01";
constexpr char kHealthCheckMethod[] = "/grpc.health.v1.Health/Check";
// How long one readiness probe may wait before the loop looks at the clock again.
constexpr int kProbeDeadlineMs = 100;

// The call's numbered fields ({n}) read 0 until a run numbers each call.
CallSpec MakeCallSpec(const LoadgenFlags& flags, std::string request) {
  std::vector<size_t> fields = FindCallNumberFields(request);
  SetCallNumber(0, fields, &request);
  return CallSpec{flags.method,      std::move(request),
                  flags.metadata,    flags.deadline_ms,
                  std::move(fields), static_cast<uint64_t>(flags.number_modulo)};
}

double Micros(int64_t nanos) { return static_cast<double>(nanos) / 1000.0; }

void PrintLoadResult(const LoadgenFlags& flags, const LoadResult& result) {
  const LatencyHistogram& latency = result.latency;
  if (flags.json) {
    nlohmann::json out = {
        {"target", flags.target},
        {"method", flags.method},
        {"concurrency", flags.concurrency},
        {"channels", result.channels},
        {"seconds", result.seconds},
        {"calls", result.calls},
        {"errors", result.errors},
        {"first_error", result.first_error},
        {"hit_max_calls", result.hit_max_calls},
        {"qps", result.Qps()},
        {"response_bytes", result.response_bytes},
        {"mean_us", latency.Mean() / 1000.0},
        {"p50_us", Micros(latency.Percentile(0.50))},
        {"p99_us", Micros(latency.Percentile(0.99))},
        {"p999_us", Micros(latency.Percentile(0.999))},
        {"max_us", Micros(latency.Max())},
    };
    std::cout << out.dump() << std::endl;
    return;
  }
  std::string notes = result.hit_max_calls ? " hit_max_calls" : "";
  if (!result.first_error.empty()) notes += " first_error=\"" + result.first_error + "\"";
  std::printf(
      "calls=%lld errors=%lld qps=%.0f p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f "
      "response_bytes=%lld seconds=%.2f%s\n",
      static_cast<long long>(result.calls), static_cast<long long>(result.errors), result.Qps(),
      Micros(latency.Percentile(0.50)), Micros(latency.Percentile(0.99)),
      Micros(latency.Percentile(0.999)), Micros(latency.Max()),
      static_cast<long long>(result.response_bytes), result.seconds, notes.c_str());
}

int Run(const LoadgenFlags& flags, std::string request) {
  LoadConfig config;
  config.target = flags.target;
  config.call = MakeCallSpec(flags, std::move(request));
  config.concurrency = flags.concurrency;
  config.calls_per_channel = flags.calls_per_channel;
  config.warmup_s = flags.warmup_s;
  config.duration_s = flags.duration_s;
  config.max_calls = flags.max_calls;
  LoadResult result;
  std::string error;
  if (!RunLoad(config, &result, &error)) {
    std::fprintf(stderr, "micro-loadgen: %s\n", error.c_str());
    return kExitFailed;
  }
  PrintLoadResult(flags, result);
  // A run where nothing succeeded measured nothing; say so in the exit code too.
  return result.calls == 0 ? kExitFailed : 0;
}

int Call(const LoadgenFlags& flags, std::string request) {
  grpc::GenericStub stub(MakeChannel(flags.target, 0, /*fast_reconnect=*/false));
  std::string response;
  const grpc::Status status =
      CallOnce(stub, MakeCallSpec(flags, std::move(request)), /*wait_for_ready=*/false, &response);
  if (!status.ok()) {
    std::fprintf(stderr, "micro-loadgen: %s failed: %s\n", flags.method.c_str(),
                 DescribeStatus(status).c_str());
    return kExitFailed;
  }
  if (flags.json) {
    nlohmann::json out = {{"response_bytes", response.size()}};
    if (flags.print_hex) out["response_hex"] = EncodeHex(response);
    std::cout << out.dump() << std::endl;
  } else {
    std::printf("response_bytes=%zu\n", response.size());
    if (flags.print_hex) std::printf("response_hex=%s\n", EncodeHex(response).c_str());
  }
  return 0;
}

// The "grpc_address" of a server.json, or "" while the file is absent or half-written.
std::string ReadGrpcAddress(const std::string& path) {
  std::ifstream file(path);
  if (!file) return "";
  const nlohmann::json json = nlohmann::json::parse(file, nullptr, /*allow_exceptions=*/false);
  const auto it = json.find("grpc_address");
  return it != json.end() && it->is_string() ? it->get<std::string>() : "";
}

int64_t RealtimeNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Polls until the server answers: first for its address (when given a server.json), then with
// probe calls that wait for the connection. Prints the milliseconds since --since-ns.
int WaitReady(const LoadgenFlags& flags, std::string request) {
  const int64_t since_ns = flags.since_ns != 0 ? flags.since_ns : RealtimeNanos();
  const auto give_up =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(flags.timeout_ms);
  const auto timed_out = [&] { return std::chrono::steady_clock::now() >= give_up; };
  const auto pause = [] { std::this_thread::sleep_for(std::chrono::milliseconds(1)); };

  std::string target = flags.target;
  while (target.empty()) {
    if (timed_out()) {
      std::fprintf(stderr, "micro-loadgen: no grpc_address in %s after %d ms\n",
                   flags.address_file.c_str(), flags.timeout_ms);
      return kExitFailed;
    }
    target = ReadGrpcAddress(flags.address_file);
    if (target.empty()) pause();
  }

  const bool health = flags.method.empty();
  CallSpec probe = MakeCallSpec(flags, std::move(request));
  if (health) probe.method = kHealthCheckMethod;  // empty request: the whole server
  probe.deadline_ms = kProbeDeadlineMs;
  grpc::GenericStub stub(MakeChannel(target, 0, /*fast_reconnect=*/true));
  std::string last_problem = "no probe answered";
  while (!timed_out()) {
    std::string response;
    const grpc::Status status = CallOnce(stub, probe, /*wait_for_ready=*/true, &response);
    if (status.ok() && (!health || response == kHealthServing)) {
      const double ready_ms = static_cast<double>(RealtimeNanos() - since_ns) / 1e6;
      if (flags.json) {
        std::cout << nlohmann::json{{"ready_ms", ready_ms}, {"address", target}}.dump() << "\n";
      } else {
        std::printf("ready_ms=%.1f address=%s\n", ready_ms, target.c_str());
      }
      return 0;
    }
    last_problem = status.ok() ? "health status is not SERVING" : DescribeStatus(status);
    pause();
  }
  std::fprintf(stderr, "micro-loadgen: %s not ready after %d ms: %s\n", target.c_str(),
               flags.timeout_ms, last_problem.c_str());
  return kExitFailed;
}

int Main(int argc, char** argv) {
  LoadgenFlags flags;
  std::string error;
  if (!ParseLoadgenFlags(argc, argv, &flags, &error)) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return kExitUsage;
  }
  if (flags.help) {
    std::fputs(LoadgenUsage().c_str(), stdout);
    return 0;
  }
  std::string request;
  const bool needs_request = flags.mode != Mode::kWaitReady || !flags.method.empty();
  if (needs_request && !BuildRequest(flags, &request, &error)) {
    std::fprintf(stderr, "micro-loadgen: %s\n", error.c_str());
    return kExitUsage;
  }
  switch (flags.mode) {
    case Mode::kRun:
      return Run(flags, std::move(request));
    case Mode::kCall:
      return Call(flags, std::move(request));
    case Mode::kWaitReady:
      return WaitReady(flags, std::move(request));
  }
  return kExitUsage;
}

}  // namespace
}  // namespace micro::bench

int main(int argc, char** argv) { return micro::bench::Main(argc, argv); }
