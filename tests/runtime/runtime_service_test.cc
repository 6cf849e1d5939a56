// micro.runtime.v1.Runtime on the wire, over a fake engine: request validation, namespaces from
// metadata, and the engine's errors passed through as their gRPC codes.
#include "services/runtime/runtime_service.h"

#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>

#include "micro/runtime/v1/runtime.grpc.pb.h"
#include "tests/runtime/fake_engine.h"
#include "tests/support/in_process_server.h"
#include "tests/support/temp_dir.h"

namespace micro::runtime {
namespace {

using Code = grpc::StatusCode;

struct Harness {
  FakeEngine engine;
  CallContexts contexts;
  RuntimeService service{engine, contexts};
  testing::InProcessServer server{contexts, {&service}};
  std::unique_ptr<v1::Runtime::Stub> stub = v1::Runtime::NewStub(server.channel());
};

std::unique_ptr<grpc::ClientContext> Context(const std::string& ns = "") {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!ns.empty()) context->AddMetadata("micro-namespace", ns);
  return context;
}

v1::CreateRequest Request(const std::string& name) {
  v1::CreateRequest request;
  request.mutable_service()->set_name(name);
  request.mutable_options()->set_command("/bin/sleep");
  request.mutable_options()->add_args("300");
  return request;
}

grpc::Status Create(Harness& h, const v1::CreateRequest& request, const std::string& ns = "") {
  v1::CreateResponse response;
  return h.stub->Create(Context(ns).get(), request, &response);
}

grpc::Status Read(Harness& h, const std::string& name, v1::ReadResponse* response = nullptr,
                  const std::string& ns = "") {
  v1::ReadRequest request;
  request.set_name(name);
  v1::ReadResponse ignored;
  return h.stub->Read(Context(ns).get(), request, response ? response : &ignored);
}

grpc::Status Delete(Harness& h, const std::string& name) {
  v1::DeleteRequest request;
  request.set_name(name);
  v1::DeleteResponse response;
  return h.stub->Delete(Context().get(), request, &response);
}

grpc::Status Restart(Harness& h, const std::string& name) {
  v1::UpdateRequest request;
  request.mutable_service()->set_name(name);
  v1::UpdateResponse response;
  return h.stub->Update(Context().get(), request, &response);
}

TEST_CASE("create reaches the engine in the caller's namespace and answers its view",
          "[runtime][rpc]") {
  Harness h;
  v1::CreateResponse response;
  REQUIRE(h.stub->Create(Context("team").get(), Request("api"), &response).ok());
  CHECK(response.service().name() == "api");
  CHECK(response.service().version() == "latest");
  CHECK(response.service().status() == v1::STATUS_RUNNING);
  CHECK(response.service().options().command() == "/bin/sleep");
  CHECK(h.engine.calls() == std::vector<std::string>{"create team/api"});
  v1::ReadResponse read;
  REQUIRE(Read(h, "", &read, "team").ok());
  CHECK(read.services_size() == 1);
  v1::ReadResponse other;
  REQUIRE(Read(h, "", &other).ok());  // the default namespace sees nothing of it
  CHECK(other.services_size() == 0);
}

TEST_CASE("the engine's NOT_FOUND and ALREADY_EXISTS reach the client", "[runtime][rpc]") {
  Harness h;
  REQUIRE(Create(h, Request("api")).ok());
  grpc::Status again = Create(h, Request("api"));
  CHECK(again.error_code() == Code::ALREADY_EXISTS);
  CHECK(again.error_message() == "already deployed");
  CHECK(Read(h, "nope").error_code() == Code::NOT_FOUND);
  CHECK(Delete(h, "nope").error_code() == Code::NOT_FOUND);
  CHECK(Restart(h, "nope").error_code() == Code::NOT_FOUND);
  CHECK(Delete(h, "api").ok());
  CHECK(Read(h, "api").error_code() == Code::NOT_FOUND);
}

TEST_CASE("invalid requests are INVALID_ARGUMENT and never reach the engine", "[runtime][rpc]") {
  Harness h;
  v1::CreateRequest no_command = Request("api");
  no_command.mutable_options()->clear_command();
  v1::CreateRequest bad_name = Request("Bad Name!");
  v1::CreateRequest bad_signal = Request("api");
  bad_signal.mutable_options()->set_stop_signal("SIGNOPE");
  for (const auto* request : {&no_command, &bad_name, &bad_signal}) {
    grpc::Status status = Create(h, *request);
    INFO(status.error_message());
    CHECK(status.error_code() == Code::INVALID_ARGUMENT);
    CHECK_FALSE(status.error_message().empty());
  }
  CHECK(Delete(h, "").error_code() == Code::INVALID_ARGUMENT);
  CHECK(Read(h, "../etc").error_code() == Code::INVALID_ARGUMENT);
  v1::LogsRequest logs;
  logs.set_name("api");
  logs.set_lines(-2);
  auto context = Context();
  auto reader = h.stub->Logs(context.get(), logs);
  v1::LogRecord record;
  while (reader->Read(&record)) {
  }
  CHECK(reader->Finish().error_code() == Code::INVALID_ARGUMENT);
  CHECK(h.engine.calls().empty());
}

TEST_CASE("every call is UNAVAILABLE while the engine restores", "[runtime][rpc]") {
  Harness h;
  h.engine.set_restoring(true);
  CHECK(Create(h, Request("api")).error_code() == Code::UNAVAILABLE);
  CHECK(Read(h, "api").error_code() == Code::UNAVAILABLE);
  CHECK(Read(h, "").error_code() == Code::UNAVAILABLE);
  CHECK(Restart(h, "api").error_code() == Code::UNAVAILABLE);
  CHECK(Delete(h, "api").error_code() == Code::UNAVAILABLE);
  h.engine.set_restoring(false);
  CHECK(Create(h, Request("api")).ok());
}

TEST_CASE("the engine's RESOURCE_EXHAUSTED passes through with its message", "[runtime][rpc]") {
  Harness h;
  h.engine.FailNext(absl::ResourceExhaustedError(
      "this deploy needs 3000 more instances than the descriptor budget leaves; raise the limit"));
  grpc::Status status = Create(h, Request("api"));
  CHECK(status.error_code() == Code::RESOURCE_EXHAUSTED);
  CHECK(status.error_message() ==
        "this deploy needs 3000 more instances than the descriptor budget leaves; raise the limit");
  CHECK(Read(h, "api").error_code() == Code::NOT_FOUND);  // nothing was deployed
  h.engine.FailNext(absl::FailedPreconditionError("no container engine"));
  CHECK(Create(h, Request("api")).error_code() == Code::FAILED_PRECONDITION);
}

TEST_CASE("a follow without history opens no log file and gets what is written from then on",
          "[runtime][rpc][logs]") {
  testing::TempDir dir;
  auto logs = std::make_shared<ServiceLogs>(dir.path(), "v1", LogPolicy{1 << 20, 3});
  for (int i = 0; i < 100; ++i) logs->Append({1'000 + i, "svc-0", "stdout", "old", ""});
  Harness h;
  h.engine.set_logs({logs});

  v1::LogsRequest request;
  request.set_name("svc");
  request.set_follow(true);
  request.set_no_history(true);
  auto context = Context();
  auto reader = h.stub->Logs(context.get(), request);
  reader->WaitForInitialMetadata();
  logs->Append({5'000, "svc-0", "stdout", "new", ""});
  v1::LogRecord record;
  REQUIRE(reader->Read(&record));
  CHECK(record.message() == "new");
  CHECK(logs->history_files_opened() == 0);
  context->TryCancel();
  while (reader->Read(&record)) {
  }
  reader->Finish();

  // The same follow with history reads the files: the counter can see a read.
  request.set_no_history(false);
  auto with_history = Context();
  auto history_reader = h.stub->Logs(with_history.get(), request);
  REQUIRE(history_reader->Read(&record));
  CHECK(record.message() == "old");
  CHECK(logs->history_files_opened() > 0);
  with_history->TryCancel();
  while (history_reader->Read(&record)) {
  }
  history_reader->Finish();
}

}  // namespace
}  // namespace micro::runtime
