// The real `micro server` binary: start-up, serving, shutdown and start-up errors.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "grpc/health/v1/health.grpc.pb.h"
#include "micro/registry/v1/registry.grpc.pb.h"
#include "tests/support/micro_daemon.h"

namespace micro::testing {
namespace {

namespace v1 = micro::registry::v1;

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return context;
}

std::shared_ptr<grpc::Channel> Channel(const MicroDaemon& daemon) { return daemon.Channel(); }

v1::RegisterRequest Request(const std::string& name, const std::string& node, int64_t ttl) {
  v1::RegisterRequest request;
  request.set_ttl_seconds(ttl);
  request.mutable_service()->set_name(name);
  request.mutable_service()->set_version("1.0.0");
  v1::Node* n = request.mutable_service()->add_nodes();
  n->set_id(node);
  n->set_address("127.0.0.1:9999");
  return request;
}

TEST_CASE("the daemon serves on port 0, reports SERVING and writes server.json", "[e2e]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  CHECK(daemon.address().rfind("127.0.0.1:", 0) == 0);
  CHECK(daemon.address() != "127.0.0.1:0");

  std::ifstream in(daemon.data_dir() + "/server.json");
  auto info = nlohmann::json::parse(in);
  CHECK(info["pid"].get<int>() == daemon.process().pid());
  CHECK(std::filesystem::exists(daemon.data_dir() + "/micro.lock"));

  grpc::health::v1::HealthCheckResponse health;
  REQUIRE(
      grpc::health::v1::Health::NewStub(Channel(daemon))->Check(Context().get(), {}, &health).ok());
  CHECK(health.status() == grpc::health::v1::HealthCheckResponse::SERVING);
  CHECK(daemon.process().Stderr().find("serving gRPC on " + daemon.address()) != std::string::npos);
}

TEST_CASE("register, get, watch and expiry work against the real binary", "[e2e]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  auto stub = v1::Registry::NewStub(Channel(daemon));

  auto watch_context = Context();
  v1::WatchRequest watch;
  watch.set_name("clock");
  auto reader = stub->Watch(watch_context.get(), watch);
  reader->WaitForInitialMetadata();

  v1::RegisterResponse registered;
  REQUIRE(stub->Register(Context().get(), Request("clock", "n1", 1), &registered).ok());
  v1::GetServiceRequest get;
  get.set_name("clock");
  v1::GetServiceResponse got;
  REQUIRE(stub->GetService(Context().get(), get, &got).ok());
  CHECK(got.services(0).nodes(0).id() == "n1");

  v1::WatchEvent event;
  REQUIRE(reader->Read(&event));
  CHECK(event.action() == v1::ACTION_CREATE);
  // Not refreshed, the node expires after its 1 s TTL and the watcher hears of it.
  REQUIRE(reader->Read(&event));
  CHECK(event.action() == v1::ACTION_DELETE);
  CHECK(event.service().nodes(0).id() == "n1");
  got.Clear();
  CHECK(stub->GetService(Context().get(), get, &got).error_code() == grpc::StatusCode::NOT_FOUND);
  watch_context->TryCancel();
}

TEST_CASE("SIGTERM and SIGINT shut down gracefully: streams end, exit 0, data dir released",
          "[e2e]") {
  const int signal = GENERATE(SIGTERM, SIGINT);
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  auto stub = v1::Registry::NewStub(Channel(daemon));
  auto context = Context();
  auto reader = stub->Watch(context.get(), v1::WatchRequest());
  reader->WaitForInitialMetadata();

  CHECK(daemon.process().Stop(signal) == 0);
  v1::WatchEvent event;
  CHECK_FALSE(reader->Read(&event));
  grpc::Status status = reader->Finish();
  CHECK(status.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK(status.error_message().find("shutting down") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(daemon.data_dir() + "/server.json"));
  CHECK(daemon.process().Stderr().find("micro server stopped") != std::string::npos);

  // The data dir is free again: a new daemon can take it.
  ProgramResult again =
      RunProgram({MicroBinary(), "server", "--address", "127.0.0.1:0", "--data-dir",
                  daemon.data_dir(), "--log-level", "off", "--badflag"});
  CHECK(again.exit_code == 2);
}

TEST_CASE("configuration errors stop the daemon at start-up naming the key", "[e2e]") {
  TempDir dir;
  const std::string file = dir.path() + "/micro.yaml";
  std::ofstream(file) << "log:\n  level: debug\n  colour: red\n";
  const std::string data = dir.path() + "/data";

  ProgramResult unknown =
      RunProgram({MicroBinary(), "server", "--config", file, "--data-dir", data});
  CHECK(unknown.exit_code == 2);
  CHECK(unknown.err.find("unknown config key 'log.colour'") != std::string::npos);

  ProgramResult wrong_type = RunProgram({MicroBinary(), "server", "--data-dir", data},
                                        {{"MICRO_SHUTDOWN_GRACE_SECONDS", "soon"}});
  CHECK(wrong_type.exit_code == 2);
  CHECK(wrong_type.err.find("'shutdown_grace_seconds'") != std::string::npos);
  CHECK(wrong_type.err.find("MICRO_SHUTDOWN_GRACE_SECONDS") != std::string::npos);

  ProgramResult bad_address =
      RunProgram({MicroBinary(), "server", "--address", "localhost", "--data-dir", data});
  CHECK(bad_address.exit_code == 2);
  CHECK(bad_address.err.find("'address'") != std::string::npos);

  ProgramResult exposed = RunProgram({MicroBinary(), "server", "--address", "0.0.0.0:0",
                                      "--tls-auto", "false", "--data-dir", data});
  CHECK(exposed.exit_code == 2);
  CHECK(exposed.err.find("not a loopback address") != std::string::npos);
  CHECK(exposed.err.find("--insecure") != std::string::npos);

  ProgramResult bad_flag = RunProgram({MicroBinary(), "server", "--adress", "x"});
  CHECK(bad_flag.exit_code == 2);
  CHECK(bad_flag.err.find("unknown flag --adress") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(data));
}

TEST_CASE("a second daemon on the same data dir is refused", "[e2e]") {
  MicroDaemon first;
  REQUIRE(first.WaitUntilServing());
  ProgramResult second = RunProgram(
      {MicroBinary(), "server", "--address", "127.0.0.1:0", "--data-dir", first.data_dir()});
  CHECK(second.exit_code == 1);
  CHECK(second.err.find("in use by another micro server (pid " +
                        std::to_string(first.process().pid()) + ")") != std::string::npos);
  CHECK(first.process().running());
}

TEST_CASE("a busy port is a clear error", "[e2e]") {
  MicroDaemon first;
  REQUIRE(first.WaitUntilServing());
  TempDir other;
  ProgramResult second = RunProgram(
      {MicroBinary(), "server", "--address", first.address(), "--data-dir", other.path()});
  CHECK(second.exit_code == 1);
  CHECK(second.err.find("cannot listen on " + first.address()) != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(other.path() + "/server.json"));
}

TEST_CASE("a data dir that cannot be created is a clear error", "[e2e]") {
  TempDir dir;
  const std::string file = dir.path() + "/plain-file";
  std::ofstream(file) << "x";
  ProgramResult result = RunProgram(
      {MicroBinary(), "server", "--address", "127.0.0.1:0", "--data-dir", file + "/data"});
  CHECK(result.exit_code == 1);
  CHECK(result.err.find("cannot create data dir " + file + "/data") != std::string::npos);
}

TEST_CASE("JSON logs are one object per line and debug logs every RPC", "[e2e]") {
  MicroDaemon daemon({"--log-format", "json", "--log-level", "debug"});
  REQUIRE(daemon.WaitUntilServing());
  auto stub = v1::Registry::NewStub(Channel(daemon));
  v1::GetServiceRequest get;
  get.set_name("missing \"quoted\"");
  v1::GetServiceResponse got;
  auto context = Context();
  context->AddMetadata("micro-namespace", "team-a");
  CHECK(stub->GetService(context.get(), get, &got).error_code() ==
        grpc::StatusCode::INVALID_ARGUMENT);
  REQUIRE(daemon.process().Stop(SIGTERM) == 0);

  bool saw_rpc = false;
  std::istringstream lines(daemon.process().Stderr());
  for (std::string line; std::getline(lines, line);) {
    INFO(line);
    auto json = nlohmann::json::parse(line, nullptr, false);
    REQUIRE_FALSE(json.is_discarded());
    const std::string msg = json["msg"];
    if (msg.find("/micro.registry.v1.Registry/GetService") != std::string::npos) {
      saw_rpc = true;
      CHECK(json["level"] == "debug");
      CHECK(msg.find("namespace=team-a") != std::string::npos);
      CHECK(msg.find("code=3") != std::string::npos);
      CHECK(msg.find("duration_us=") != std::string::npos);
    }
  }
  CHECK(saw_rpc);
}

}  // namespace
}  // namespace micro::testing

namespace micro::testing {
namespace {

TEST_CASE("health reports each service, and an open health Watch does not hold up shutdown",
          "[e2e]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  auto health = grpc::health::v1::Health::NewStub(Channel(daemon));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service("micro.registry.v1.Registry");
  grpc::health::v1::HealthCheckResponse response;
  REQUIRE(health->Check(Context().get(), request, &response).ok());
  CHECK(response.status() == grpc::health::v1::HealthCheckResponse::SERVING);

  grpc::ClientContext watch_context;
  auto watch = health->Watch(&watch_context, grpc::health::v1::HealthCheckRequest());
  REQUIRE(watch->Read(&response));
  CHECK(response.status() == grpc::health::v1::HealthCheckResponse::SERVING);

  const auto start = std::chrono::steady_clock::now();
  CHECK(daemon.process().Stop(SIGTERM) == 0);
  // The default grace period is 10 s; a health watcher is not an in-flight call to wait for.
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
  while (watch->Read(&response)) {
  }
  CHECK(response.status() == grpc::health::v1::HealthCheckResponse::NOT_SERVING);
}

TEST_CASE("start-up failures are reported even with logging off", "[e2e]") {
  MicroDaemon first;
  REQUIRE(first.WaitUntilServing());
  ProgramResult second = RunProgram({MicroBinary(), "server", "--address", "127.0.0.1:0",
                                     "--data-dir", first.data_dir(), "--log-level", "off"});
  CHECK(second.exit_code == 1);
  CHECK(second.err.rfind("error: data dir " + first.data_dir() + " is in use", 0) == 0);
}

}  // namespace
}  // namespace micro::testing
