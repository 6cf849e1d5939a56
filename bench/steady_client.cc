// micro-bench-steady: calls one unary gRPC method at a steady rate and reports how many calls
// failed and how long they took, for bench/rollout.sh (a client's view of a deploy).
//
//   micro-bench-steady --target HOST:PORT --method /pkg.Service/Method --request-hex HEX
//                      [--rate 200] [--duration 30] [--stop-file PATH] [--threads 8]
//                      [--deadline-ms 5000]
//
// Open loop: call i is due at start + i / rate, whatever happened to the calls before it, and its
// latency counts from when it was due, so a stall shows in the tail instead of slowing the client
// down (no coordinated omission). The calls are spread over --threads threads, one blocking call
// at a time each; a thread that falls behind catches up without waiting. Runs --duration seconds,
// or until --stop-file exists (checked every 10 ms), whichever comes first. Prints one JSON object:
// {"calls", "failed", "codes": {"UNAVAILABLE": n, ...}, "first_error", "p50_us", "p99_us",
// "p999_us", "max_us"}. MICRO_TOKEN, when set, goes with every call as a bearer token.
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "bench/generic_call.h"
#include "bench/latency_histogram.h"
#include "rpc/grpc_status.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Flags {
  std::string target, method, request_hex, stop_file;
  double rate = 200, duration_s = 30;
  int threads = 8, deadline_ms = 5000;
};

bool Parse(int argc, char** argv, Flags* f) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--target")
      f->target = value;
    else if (key == "--method")
      f->method = value;
    else if (key == "--request-hex")
      f->request_hex = value;
    else if (key == "--stop-file")
      f->stop_file = value;
    else if (key == "--rate")
      f->rate = std::atof(value.c_str());
    else if (key == "--duration")
      f->duration_s = std::atof(value.c_str());
    else if (key == "--threads")
      f->threads = std::atoi(value.c_str());
    else if (key == "--deadline-ms")
      f->deadline_ms = std::atoi(value.c_str());
    else
      return false;
  }
  return argc % 2 == 1 && !f->target.empty() && !f->method.empty() && f->rate > 0 &&
         f->rate <= 100000 && f->threads > 0 && f->threads <= 256 && f->duration_s > 0 &&
         f->duration_s <= 3600;
}

std::string FromHex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  if (!Parse(argc, argv, &flags)) {
    std::cerr << "usage: micro-bench-steady --target HOST:PORT --method /pkg.Service/Method "
                 "--request-hex HEX [--rate 1..100000] [--duration 1..3600] [--stop-file PATH] "
                 "[--threads 1..256] [--deadline-ms N]\n";
    return 2;
  }
  micro::bench::CallSpec spec;
  spec.method = flags.method;
  spec.request = FromHex(flags.request_hex);
  spec.deadline_ms = flags.deadline_ms;

  const auto start = Clock::now() + std::chrono::milliseconds(100);
  const auto end = start + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(flags.duration_s));
  const auto period =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / flags.rate));
  std::atomic<bool> stop{false};
  std::atomic<int64_t> next{0};  // the number of the next call to make
  std::mutex mu;
  micro::bench::LatencyHistogram all;
  std::map<std::string, int64_t> codes;
  std::string first_error;
  int64_t calls = 0, failed = 0;

  std::vector<std::thread> workers;
  for (int t = 0; t < flags.threads; ++t) {
    workers.emplace_back([&, t] {
      auto channel = micro::bench::MakeChannel(flags.target, t, /*fast_reconnect=*/false);
      grpc::GenericStub stub(channel);
      micro::bench::LatencyHistogram mine;
      std::map<std::string, int64_t> my_codes;
      std::string my_error;
      int64_t my_calls = 0, my_failed = 0;
      while (!stop) {
        const int64_t n = next++;
        const auto due = start + n * period;
        if (due >= end) break;
        std::this_thread::sleep_until(due);
        if (stop) break;
        std::string response;
        const grpc::Status status = micro::bench::CallOnce(stub, spec, false, &response);
        mine.Record(
            std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - due).count());
        ++my_calls;
        if (!status.ok()) {
          ++my_failed;
          ++my_codes[std::string(micro::StatusCodeName(status.error_code()))];
          if (my_error.empty()) my_error = micro::bench::DescribeStatus(status);
        }
      }
      std::lock_guard lock(mu);
      all.Merge(mine);
      calls += my_calls;
      failed += my_failed;
      for (const auto& [code, count] : my_codes) codes[code] += count;
      if (first_error.empty()) first_error = my_error;
    });
  }
  while (Clock::now() < end && !stop) {
    struct stat st {};
    if (!flags.stop_file.empty() && ::stat(flags.stop_file.c_str(), &st) == 0) stop = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  stop = true;
  for (auto& w : workers) w.join();
  nlohmann::json out = {{"calls", calls},
                        {"failed", failed},
                        {"codes", codes},
                        {"first_error", first_error},
                        {"p50_us", all.Percentile(0.50) / 1000},
                        {"p99_us", all.Percentile(0.99) / 1000},
                        {"p999_us", all.Percentile(0.999) / 1000},
                        {"max_us", all.Max() / 1000}};
  std::cout << out.dump() << "\n";
  return 0;
}
