// The metrics registry (core/metrics.h): the exact text it renders, the series cap, concurrent
// recording, a parser that is not ours; and the RPC figures the call-context interceptor
// records (rpc/call_context.h), through the in-process channel.
#include "core/metrics.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <limits>
#include <thread>

#include "core/fake_clock.h"
#include "micro/registry/v1/registry.grpc.pb.h"
#include "rpc/call_context.h"
#include "services/registry/memory_registry.h"
#include "services/registry/registry_service.h"
#include "tests/support/in_process_server.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace micro {
namespace {

using Type = MetricsWriter::Type;

TEST_CASE("a small registry renders the exact Prometheus text", "[metrics]") {
  Metrics metrics;
  Metrics::Counter& requests = metrics.AddCounter("t_requests_total", "Requests.", {"method"});
  Metrics::Histogram& latency =
      metrics.AddHistogram("t_latency_seconds", "Latency\\n in\nseconds.", {"op"}, {0.5, 1, 2.5});
  requests.Add({"b\"q\\x\ny"}, 2);
  requests.Add({"a"});
  latency.Observe({"get"}, 0.25);
  latency.Observe({"get"}, 1);    // `le` is inclusive
  latency.Observe({"get"}, 100);  // only +Inf
  metrics.AddCollector([](MetricsWriter& w) {
    w.Family("t_services", "Services by status.", Type::kGauge);
    w.Sample({{"status", "running"}}, 3);
    w.Sample({}, 0.125);
  });
  metrics.AddCollector([](MetricsWriter& w) {
    w.Family("t_services", "ignored: declared already", Type::kCounter);
    w.Sample({{"status", "error"}}, 1);
  });

  CHECK(metrics.Render() ==
        "# HELP t_requests_total Requests.\n"
        "# TYPE t_requests_total counter\n"
        "t_requests_total{method=\"a\"} 1\n"
        "t_requests_total{method=\"b\\\"q\\\\x\\ny\"} 2\n"
        "# HELP t_latency_seconds Latency\\\\n in\\nseconds.\n"
        "# TYPE t_latency_seconds histogram\n"
        "t_latency_seconds_bucket{op=\"get\",le=\"0.5\"} 1\n"
        "t_latency_seconds_bucket{op=\"get\",le=\"1\"} 2\n"
        "t_latency_seconds_bucket{op=\"get\",le=\"2.5\"} 2\n"
        "t_latency_seconds_bucket{op=\"get\",le=\"+Inf\"} 3\n"
        "t_latency_seconds_sum{op=\"get\"} 101.25\n"
        "t_latency_seconds_count{op=\"get\"} 3\n"
        "# HELP t_services Services by status.\n"
        "# TYPE t_services gauge\n"
        "t_services{status=\"running\"} 3\n"
        "t_services 0.125\n"
        "t_services{status=\"error\"} 1\n");
}

TEST_CASE("a family declared twice is one family", "[metrics]") {
  Metrics metrics;
  Metrics::Counter& a = metrics.AddCounter("t_total", "T.", {"x"});
  Metrics::Counter& b = metrics.AddCounter("t_total", "T again.", {"x"});
  CHECK(&a == &b);
  a.Add({"1"});
  b.Add({"1"});
  CHECK(metrics.Render() == "# HELP t_total T.\n# TYPE t_total counter\nt_total{x=\"1\"} 2\n");
}

TEST_CASE("values print as Go parses them (integers exact below 2^53)", "[metrics]") {
  MetricsWriter w;
  w.Family("v", "", Type::kGauge);
  w.Sample({{"k", "a"}}, 1e20);
  w.Sample({{"k", "a2"}}, 9007199254740991.0);
  w.Sample({{"k", "b"}}, -0.001);
  w.Sample({{"k", "c"}}, std::numeric_limits<double>::infinity());
  w.Sample({{"k", "d"}}, -std::numeric_limits<double>::infinity());
  w.Sample({{"k", "e"}}, std::nan(""));
  CHECK(w.Text() ==
        "# HELP v \n# TYPE v gauge\n"
        "v{k=\"a\"} 1e+20\n"
        "v{k=\"a2\"} 9007199254740991\n"
        "v{k=\"b\"} -0.001\n"
        "v{k=\"c\"} +Inf\n"
        "v{k=\"d\"} -Inf\n"
        "v{k=\"e\"} NaN\n");
}

TEST_CASE("past the series cap new label sets count under \"other\"", "[metrics]") {
  Metrics metrics(3);
  Metrics::Counter& calls = metrics.AddCounter("t_calls_total", "Calls.", {"method", "code"});
  Metrics::Histogram& latency = metrics.AddHistogram("t_seconds", "S.", {"method"}, {1});
  for (int i = 0; i < 100; ++i) {
    calls.Add({"/invented/M" + std::to_string(i), "OK"});
    latency.Observe({"/invented/M" + std::to_string(i)}, 0.5);
  }
  calls.Add({"/invented/M1", "OK"});  // a series made before the cap still counts as itself

  const std::string text = metrics.Render();
  CHECK(text.find("t_calls_total{method=\"/invented/M0\",code=\"OK\"} 1\n") != std::string::npos);
  CHECK(text.find("t_calls_total{method=\"/invented/M1\",code=\"OK\"} 2\n") != std::string::npos);
  CHECK(text.find("t_calls_total{method=\"/invented/M2\",code=\"OK\"} 1\n") != std::string::npos);
  CHECK(text.find("M3\"") == std::string::npos);
  CHECK(text.find("t_calls_total{method=\"other\",code=\"other\"} 97\n") != std::string::npos);
  CHECK(text.find("t_seconds_count{method=\"other\"} 97\n") != std::string::npos);
  CHECK(std::count(text.begin(), text.end(), '\n') == 2 + 4 + 2 + 4 * 4);
}

TEST_CASE("samples recorded from several threads all count", "[metrics]") {
  Metrics metrics;
  Metrics::Counter& calls = metrics.AddCounter("t_total", "T.", {"k"});
  Metrics::Histogram& latency = metrics.AddHistogram("t_seconds", "S.", {"k"}, {0.5});
  constexpr int kThreads = 4, kPerThread = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string key = std::to_string(i % 7);  // new series race with lookups
        calls.Add({key});
        latency.Observe({"all"}, t % 2 == 0 ? 0.25 : 1);
      }
    });
  }
  std::string during;
  for (int i = 0; i < 20; ++i) during = metrics.Render();  // rendering while they record
  for (auto& thread : threads) thread.join();

  const std::string text = metrics.Render();
  uint64_t total = 0;
  for (int k = 0; k < 7; ++k) {
    const std::string prefix = "t_total{k=\"" + std::to_string(k) + "\"} ";
    const size_t at = text.find(prefix);
    REQUIRE(at != std::string::npos);
    total += std::stoull(text.substr(at + prefix.size()));
  }
  CHECK(total == uint64_t{kThreads} * kPerThread);
  CHECK(text.find("t_seconds_bucket{k=\"all\",le=\"0.5\"} 40000\n") != std::string::npos);
  CHECK(text.find("t_seconds_bucket{k=\"all\",le=\"+Inf\"} 80000\n") != std::string::npos);
  CHECK(text.find("t_seconds_sum{k=\"all\"} 50000\n") != std::string::npos);
  CHECK(text.find("t_seconds_count{k=\"all\"} 80000\n") != std::string::npos);
}

// Runs tests/support/check_prometheus.py on `text`; its exit code and output.
testing::ProgramResult CheckWithPrometheusParser(const std::string& text) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/metrics.txt";
  std::ofstream(path) << text;
  return testing::RunProgram({"/usr/bin/python3",
                              std::string(MICRO_SOURCE_DIR) + "/tests/support/check_prometheus.py",
                              "file://" + path});
}

TEST_CASE("the Prometheus client's parser reads what we render", "[metrics]") {
  Metrics metrics(2);
  Metrics::Counter& requests = metrics.AddCounter("t_requests_total", "Requests.", {"method"});
  Metrics::Histogram& latency = metrics.AddHistogram("t_latency_seconds", "L\\.\n", {"m"});
  requests.Add({"quote\" backslash\\ newline\n unicode \xc3\xa9"});
  requests.Add({"a"});
  requests.Add({"past the cap"});
  for (double v : {0.00001, 0.003, 0.2, 3.0, 60.0}) latency.Observe({"x"}, v);
  metrics.AddCollector([](MetricsWriter& w) {
    w.Family("t_up", "Up.", Type::kGauge);
    w.Sample({}, 1);
  });
  const testing::ProgramResult result = CheckWithPrometheusParser(metrics.Render());
  INFO(result.out << result.err);
  REQUIRE(result.exit_code == 0);
  CHECK(result.out == "t_requests counter 3\nt_latency_seconds histogram 19\nt_up gauge 1\n");
}

TEST_CASE("the checker refuses a family split in two", "[metrics]") {
  const testing::ProgramResult result = CheckWithPrometheusParser(
      "# HELP a A.\n# TYPE a gauge\na 1\n# HELP b B.\n# TYPE b gauge\nb 1\na{x=\"y\"} 2\n");
  CHECK(result.exit_code == 1);
}

// The interceptor, with the registry service in process.
struct RpcHarness {
  FakeClock clock;
  registry::MemoryRegistry registry{clock};
  CallContexts contexts;
  registry::RegistryService service{registry, contexts, clock};
  Metrics metrics;
  testing::InProcessServer server{contexts, {&service}, &metrics};
  std::unique_ptr<registry::v1::Registry::Stub> stub =
      registry::v1::Registry::NewStub(server.channel());
};

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return context;
}

TEST_CASE("the interceptor counts every call by method and code and times it", "[metrics][rpc]") {
  RpcHarness h;
  registry::v1::GetServiceRequest get;
  get.set_name("missing");
  registry::v1::GetServiceResponse got;
  for (int i = 0; i < 2; ++i) {
    REQUIRE(h.stub->GetService(Context().get(), get, &got).error_code() ==
            grpc::StatusCode::NOT_FOUND);
  }
  registry::v1::ListServicesResponse listed;
  REQUIRE(h.stub->ListServices(Context().get(), {}, &listed).ok());

  // The interceptor records as the status goes out, which may trail the client's answer.
  const std::string list_ok =
      "micro_rpc_requests_total{method=\"/micro.registry.v1.Registry/ListServices\",code=\"OK\"} "
      "1\n";
  REQUIRE(testing::WaitFor([&] { return h.metrics.Render().find(list_ok) != std::string::npos; },
                           std::chrono::seconds(5)));
  const std::string text = h.metrics.Render();
  CHECK(text.find("micro_rpc_requests_total{method=\"/micro.registry.v1.Registry/GetService\","
                  "code=\"NOT_FOUND\"} 2\n") != std::string::npos);
  // In-process calls of a memory backend take well under 10 s.
  CHECK(text.find("micro_rpc_duration_seconds_bucket{method=\"/micro.registry.v1.Registry/"
                  "GetService\",code=\"NOT_FOUND\",le=\"10\"} 2\n") != std::string::npos);
  CHECK(text.find("micro_rpc_duration_seconds_count{method=\"/micro.registry.v1.Registry/"
                  "ListServices\",code=\"OK\"} 1\n") != std::string::npos);
  CHECK(CheckWithPrometheusParser(text).exit_code == 0);
}

TEST_CASE("a call cancelled by its client counts once, as CANCELLED", "[metrics][rpc]") {
  RpcHarness h;
  auto context = Context();
  auto reader = h.stub->Watch(context.get(), registry::v1::WatchRequest());
  reader->WaitForInitialMetadata();
  context->TryCancel();
  registry::v1::WatchEvent event;
  while (reader->Read(&event)) {
  }
  REQUIRE(reader->Finish().error_code() == grpc::StatusCode::CANCELLED);

  const std::string method = "method=\"/micro.registry.v1.Registry/Watch\"";
  const std::string cancelled = "micro_rpc_requests_total{" + method + ",code=\"CANCELLED\"} 1\n";
  REQUIRE(testing::WaitFor([&] { return h.metrics.Render().find(cancelled) != std::string::npos; },
                           std::chrono::seconds(5)));
  const std::string text = h.metrics.Render();
  CHECK(std::count(text.begin(), text.end(), '\n') == 2 + 1 + 2 + 16 + 1 + 2);
  CHECK(text.find("micro_rpc_duration_seconds_count{" + method + ",code=\"CANCELLED\"} 1\n") !=
        std::string::npos);
}

TEST_CASE("every gRPC code has its name", "[metrics][rpc]") {
  CHECK(RpcMetrics::CodeName(grpc::StatusCode::OK) == "OK");
  CHECK(RpcMetrics::CodeName(grpc::StatusCode::NOT_FOUND) == "NOT_FOUND");
  CHECK(RpcMetrics::CodeName(grpc::StatusCode::UNAUTHENTICATED) == "UNAUTHENTICATED");
  CHECK(RpcMetrics::CodeName(static_cast<grpc::StatusCode>(99)) == "UNKNOWN");
}

}  // namespace
}  // namespace micro
