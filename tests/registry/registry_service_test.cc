// micro.registry.v1.Registry on the wire: codes, namespaces from metadata, streaming Watch.
#include "services/registry/registry_service.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <future>
#include <thread>

#include "core/fake_clock.h"
#include "micro/registry/v1/registry.grpc.pb.h"
#include "services/registry/memory_registry.h"
#include "tests/support/in_process_server.h"

namespace micro::registry {
namespace {

using Code = grpc::StatusCode;

struct Harness {
  explicit Harness(Limits limits = {}) : registry(clock, limits) {}

  FakeClock clock;
  MemoryRegistry registry;
  CallContexts contexts;
  RegistryService service{registry, contexts, clock};
  testing::InProcessServer server{contexts, {&service}};
  std::unique_ptr<v1::Registry::Stub> stub = v1::Registry::NewStub(server.channel());
};

std::unique_ptr<grpc::ClientContext> Context(const std::string& ns = "") {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!ns.empty()) context->AddMetadata("micro-namespace", ns);
  return context;
}

v1::RegisterRequest Request(const std::string& name, const std::string& node, int64_t ttl = 0) {
  v1::RegisterRequest request;
  request.set_ttl_seconds(ttl);
  v1::Service* s = request.mutable_service();
  s->set_name(name);
  s->set_version("1.0.0");
  (*s->mutable_metadata())["team"] = "core";
  s->add_endpoints()->set_name("Greeter.Hello");
  v1::Node* n = s->add_nodes();
  n->set_id(node);
  n->set_address("127.0.0.1:9000");
  return request;
}

grpc::Status Register(Harness& h, const v1::RegisterRequest& request, const std::string& ns = "") {
  v1::RegisterResponse response;
  return h.stub->Register(Context(ns).get(), request, &response);
}

TEST_CASE("Register then GetService round-trips every field over the wire", "[registry][rpc]") {
  Harness h;
  REQUIRE(Register(h, Request("greeter", "n1")).ok());
  v1::GetServiceRequest get;
  get.set_name("greeter");
  v1::GetServiceResponse response;
  REQUIRE(h.stub->GetService(Context().get(), get, &response).ok());
  REQUIRE(response.services_size() == 1);
  const v1::Service& s = response.services(0);
  CHECK(s.version() == "1.0.0");
  CHECK(s.metadata().at("team") == "core");
  CHECK(s.endpoints(0).name() == "Greeter.Hello");
  CHECK(s.nodes(0).id() == "n1");
  CHECK(s.nodes(0).address() == "127.0.0.1:9000");
}

v1::GetServiceResponse Get(Harness& h, const std::string& name, grpc::Status* status,
                           const std::string& ns = "") {
  v1::GetServiceRequest request;
  request.set_name(name);
  v1::GetServiceResponse response;
  *status = h.stub->GetService(Context(ns).get(), request, &response);
  return response;
}

TEST_CASE("repeated GetService answers follow every change, TTL expiry included",
          "[registry][rpc]") {
  Harness h;
  grpc::Status status;
  REQUIRE(Register(h, Request("greeter", "n1", 10)).ok());
  for (int i = 0; i < 3; ++i) CHECK(Get(h, "greeter", &status).services(0).nodes_size() == 1);

  REQUIRE(Register(h, Request("greeter", "n2", 60)).ok());
  CHECK(Get(h, "greeter", &status).services(0).nodes_size() == 2);
  CHECK(Get(h, "greeter", &status, "team-a").services_size() == 0);
  CHECK(status.error_code() == Code::NOT_FOUND);

  // Past n1's TTL, with no sweep run: the kept answer must not be served.
  h.clock.Advance(std::chrono::seconds(11));
  v1::GetServiceResponse after = Get(h, "greeter", &status);
  REQUIRE(status.ok());
  REQUIRE(after.services(0).nodes_size() == 1);
  CHECK(after.services(0).nodes(0).id() == "n2");

  v1::DeregisterRequest deregister;
  *deregister.mutable_service() = Request("greeter", "n2").service();
  v1::DeregisterResponse deregistered;
  REQUIRE(h.stub->Deregister(Context().get(), deregister, &deregistered).ok());
  Get(h, "greeter", &status);
  CHECK(status.error_code() == Code::NOT_FOUND);
}

TEST_CASE("a heartbeat that shortens a TTL is honoured by repeated GetService", "[registry][rpc]") {
  Harness h;
  grpc::Status status;
  REQUIRE(Register(h, Request("greeter", "n1", 60)).ok());
  CHECK(Get(h, "greeter", &status).services(0).nodes_size() == 1);  // kept
  REQUIRE(Register(h, Request("greeter", "n1", 5)).ok());           // same node, shorter TTL
  h.clock.Advance(std::chrono::seconds(6));
  Get(h, "greeter", &status);
  CHECK(status.error_code() == Code::NOT_FOUND);
}

TEST_CASE("wire codes: NOT_FOUND, INVALID_ARGUMENT, RESOURCE_EXHAUSTED", "[registry][rpc]") {
  Harness h;
  v1::GetServiceRequest get;
  get.set_name("missing");
  v1::GetServiceResponse got;
  grpc::Status status = h.stub->GetService(Context().get(), get, &got);
  CHECK(status.error_code() == Code::NOT_FOUND);
  CHECK(status.error_message().find("missing") != std::string::npos);

  CHECK(Register(h, Request("bad name", "n1")).error_code() == Code::INVALID_ARGUMENT);
  CHECK(Register(h, Request("greeter", "n1", -5)).error_code() == Code::INVALID_ARGUMENT);

  v1::RegisterRequest crowded = Request("greeter", "n0");
  for (int i = 1; i <= 1024; ++i) {
    v1::Node* node = crowded.mutable_service()->add_nodes();
    node->set_id("n" + std::to_string(i));
    node->set_address("127.0.0.1:9000");
  }
  CHECK(Register(h, crowded).error_code() == Code::RESOURCE_EXHAUSTED);

  v1::DeregisterRequest deregister;
  deregister.mutable_service()->set_name("ghost");
  v1::DeregisterResponse deregistered;
  CHECK(h.stub->Deregister(Context().get(), deregister, &deregistered).error_code() ==
        Code::NOT_FOUND);
}

TEST_CASE("micro-namespace metadata selects the namespace and bad ones are refused",
          "[registry][rpc]") {
  Harness h;
  REQUIRE(Register(h, Request("greeter", "n1"), "team-a").ok());

  v1::ListServicesResponse in_default;
  REQUIRE(h.stub->ListServices(Context().get(), {}, &in_default).ok());
  CHECK(in_default.services_size() == 0);
  v1::ListServicesResponse in_team;
  REQUIRE(h.stub->ListServices(Context("team-a").get(), {}, &in_team).ok());
  CHECK(in_team.services_size() == 1);

  for (const char* bad : {"UPPER", "has space", "-dash", "x.y"}) {
    INFO(bad);
    v1::ListServicesResponse response;
    CHECK(h.stub->ListServices(Context(bad).get(), {}, &response).error_code() ==
          Code::INVALID_ARGUMENT);
  }
  auto context = Context();
  context->AddMetadata("authorization", "Basic abc");
  v1::ListServicesResponse response;
  CHECK(h.stub->ListServices(context.get(), {}, &response).error_code() == Code::INVALID_ARGUMENT);
}

TEST_CASE("Watch streams events as they happen and ends UNAVAILABLE at shutdown",
          "[registry][rpc]") {
  Harness h;
  auto context = Context();
  v1::WatchRequest request;
  request.set_name("greeter");
  auto reader = h.stub->Watch(context.get(), request);
  // The server sends headers once the watch is live; after that no event can be missed.
  reader->WaitForInitialMetadata();

  REQUIRE(Register(h, Request("greeter", "n1")).ok());
  REQUIRE(Register(h, Request("other", "n1")).ok());
  REQUIRE(Register(h, Request("greeter", "n2")).ok());
  v1::DeregisterRequest deregister;
  *deregister.mutable_service() = Request("greeter", "n1").service();
  v1::DeregisterResponse deregistered;
  REQUIRE(h.stub->Deregister(Context().get(), deregister, &deregistered).ok());

  v1::WatchEvent event;
  REQUIRE(reader->Read(&event));
  CHECK(event.action() == v1::ACTION_CREATE);
  CHECK(event.timestamp_unix_ms() > 0);
  REQUIRE(reader->Read(&event));
  CHECK(event.action() == v1::ACTION_UPDATE);
  CHECK(event.service().nodes_size() == 2);
  REQUIRE(reader->Read(&event));
  CHECK(event.action() == v1::ACTION_DELETE);
  CHECK(event.service().name() == "greeter");
  REQUIRE(event.service().nodes_size() == 1);
  CHECK(event.service().nodes(0).id() == "n1");

  h.registry.CloseWatchers();
  CHECK_FALSE(reader->Read(&event));
  CHECK(reader->Finish().error_code() == Code::UNAVAILABLE);
}

TEST_CASE("Watch of an invalid name or namespace is INVALID_ARGUMENT", "[registry][rpc]") {
  Harness h;
  v1::WatchRequest request;
  request.set_name("bad name");
  auto context = Context();
  auto reader = h.stub->Watch(context.get(), request);
  v1::WatchEvent event;
  CHECK_FALSE(reader->Read(&event));
  CHECK(reader->Finish().error_code() == Code::INVALID_ARGUMENT);

  auto bad_ns = Context("NOPE");
  auto reader2 = h.stub->Watch(bad_ns.get(), v1::WatchRequest());
  CHECK_FALSE(reader2->Read(&event));
  CHECK(reader2->Finish().error_code() == Code::INVALID_ARGUMENT);
}

TEST_CASE("a cancelled Watch frees its watcher slot", "[registry][rpc]") {
  Limits limits;
  limits.max_watchers = 1;
  Harness h(limits);
  int attempts = 0;
  for (int round = 0; round < 3; ++round) {
    // The server releases the slot when the call is done, which may trail the client's view
    // of the cancellation; wait for it with a deadline.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    grpc::Status status;
    std::unique_ptr<grpc::ClientContext> context;
    std::unique_ptr<grpc::ClientReader<v1::WatchEvent>> reader;
    do {
      context = Context();
      reader = h.stub->Watch(context.get(), v1::WatchRequest());
      reader->WaitForInitialMetadata();
      v1::WatchEvent probe;
      // A new node each attempt, so every attempt makes an event to read.
      REQUIRE(Register(h, Request("greeter", "n" + std::to_string(++attempts))).ok());
      if (reader->Read(&probe)) break;
      status = reader->Finish();
      REQUIRE(status.error_code() == Code::RESOURCE_EXHAUSTED);
    } while (std::chrono::steady_clock::now() < deadline);
    INFO("round " << round);
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    context->TryCancel();
    v1::WatchEvent event;
    while (reader->Read(&event)) {
    }
    CHECK(reader->Finish().error_code() == Code::CANCELLED);
  }
}

}  // namespace
}  // namespace micro::registry

namespace micro::registry {
namespace {

TEST_CASE("watch streams dropped while events flow all end, so the server can stop",
          "[registry][rpc]") {
  auto h = std::make_unique<Harness>();
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; !stop; ++i) {
      (void)Register(*h, Request("greeter", "n" + std::to_string(i % 500)));
    }
  });
  for (int round = 0; round < 20; ++round) {
    auto context = Context();
    auto reader = h->stub->Watch(context.get(), v1::WatchRequest());
    v1::WatchEvent event;
    for (int i = 0; i < round % 5 && reader->Read(&event); ++i) {
    }
    context->TryCancel();  // often while the server is writing
    while (reader->Read(&event)) {
    }
    (void)reader->Finish();
  }
  stop = true;
  writer.join();

  // Every stream must have finished on the server, or shutdown would wait forever.
  auto stopped = std::make_shared<std::promise<void>>();
  std::future<void> done = stopped->get_future();
  std::thread([h = std::move(h), stopped]() mutable {
    h.reset();
    stopped->set_value();
  }).detach();
  REQUIRE(done.wait_for(std::chrono::seconds(20)) == std::future_status::ready);
}

}  // namespace
}  // namespace micro::registry
