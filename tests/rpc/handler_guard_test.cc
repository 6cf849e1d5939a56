// What every service shares in rpc/: exceptions never leave a handler (registry, config and
// store here; runtime and server info use the same guard), and the daemon-wide stream cap. Driven
// through the in-process channel with backends that throw.
#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <new>
#include <stdexcept>
#include <thread>

#include "core/fake_clock.h"
#include "micro/config/v1/config.grpc.pb.h"
#include "micro/registry/v1/registry.grpc.pb.h"
#include "micro/store/v1/store.grpc.pb.h"
#include "services/config/config_service.h"
#include "services/config/documents.h"
#include "services/config/json_config.h"
#include "services/registry/memory_registry.h"
#include "services/registry/registry_service.h"
#include "services/store/store_service.h"
#include "tests/support/in_process_server.h"

namespace micro {
namespace {

using Code = grpc::StatusCode;

// Throws what it is told to from every call.
struct Thrower {
  enum class What { kRuntimeError, kBadAlloc, kInt };
  What what = What::kRuntimeError;
  [[noreturn]] void Throw() const {
    switch (what) {
      case What::kRuntimeError:
        throw std::runtime_error("the disk caught fire");
      case What::kBadAlloc:
        throw std::bad_alloc();
      case What::kInt:
        throw 42;
    }
    throw 0;
  }
};

class ThrowingConfig final : public config::Config {
 public:
  explicit ThrowingConfig(const Thrower& thrower) : thrower_(thrower) {}
  Result<std::string> Get(const std::string&, const std::string&, bool) override {
    thrower_.Throw();
  }
  Status Set(const std::string&, const std::string&, const std::string&, bool) override {
    thrower_.Throw();
  }
  Status Delete(const std::string&, const std::string&) override { thrower_.Throw(); }
  Result<std::unique_ptr<config::ConfigWatcher>> Watch(const std::string&, const std::string&,
                                                       std::function<void()>) override {
    thrower_.Throw();
  }
  void CloseWatchers() override {}

 private:
  const Thrower& thrower_;
};

class ThrowingRegistry final : public registry::Registry {
 public:
  explicit ThrowingRegistry(const Thrower& thrower) : thrower_(thrower) {}
  Status Register(const std::string&, const registry::Service&, int64_t) override {
    thrower_.Throw();
  }
  Status Deregister(const std::string&, const registry::Service&) override { thrower_.Throw(); }
  Result<std::vector<registry::Service>> GetService(const std::string&, const std::string&,
                                                    const std::string&) override {
    thrower_.Throw();
  }
  Result<std::vector<registry::Service>> ListServices(const std::string&) override {
    thrower_.Throw();
  }
  Result<std::unique_ptr<registry::Watcher>> Watch(const std::string&, const std::string&,
                                                   std::function<void()>) override {
    thrower_.Throw();
  }
  std::optional<std::chrono::nanoseconds> ExpireNodes() override { return std::nullopt; }
  registry::Freshness CurrentFreshness() const override { return {}; }
  void CloseWatchers() override {}

 private:
  const Thrower& thrower_;
};

// A cursor that throws when read: the exception comes from inside the List stream's reactor.
class ThrowingCursor final : public store::KeyCursor {
 public:
  explicit ThrowingCursor(const Thrower& thrower) : thrower_(thrower) {}
  Result<std::vector<std::string>> Next(size_t) override { thrower_.Throw(); }
  bool AtEnd() const override { return false; }

 private:
  const Thrower& thrower_;
};

class ThrowingStore final : public store::Store {
 public:
  explicit ThrowingStore(const Thrower& thrower) : thrower_(thrower) {}
  Result<store::Record> Get(const std::string&, const std::string&, const std::string&) override {
    thrower_.Throw();
  }
  Result<store::ReadPage> Read(const std::string&, const std::string&,
                               const store::Scan&) override {
    thrower_.Throw();
  }
  void Write(const std::string&, const std::string&, store::Record, store::Condition,
             WriteDone) override {
    thrower_.Throw();
  }
  void Delete(const std::string&, const std::string&, const std::string&, DeleteDone) override {
    thrower_.Throw();
  }
  Result<std::unique_ptr<store::KeyCursor>> List(const std::string&, const std::string&,
                                                 const store::Scan&) override {
    return std::unique_ptr<store::KeyCursor>(std::make_unique<ThrowingCursor>(thrower_));
  }
  Result<std::vector<std::string>> Databases() override { thrower_.Throw(); }
  Result<std::vector<std::string>> Tables(const std::string&) override { thrower_.Throw(); }
  size_t ExpireRecords() override { return 0; }
  Result<store::SnapshotInfo> Snapshot(const std::string&) override { thrower_.Throw(); }
  std::string Alarm() override { thrower_.Throw(); }
  store::StoreStats Stats() override { return {}; }

 private:
  const Thrower& thrower_;
};

struct Harness {
  Thrower thrower;
  FakeClock clock;
  ThrowingConfig settings{thrower};
  ThrowingRegistry registry{thrower};
  ThrowingStore kv_store{thrower};
  CallContexts contexts;
  config::ConfigService config_service{settings, contexts};
  registry::RegistryService registry_service{registry, contexts, clock};
  store::StoreService store_service{kv_store, contexts};
  testing::InProcessServer server{contexts, {&config_service, &registry_service, &store_service}};
  std::unique_ptr<store::v1::Store::Stub> kv = store::v1::Store::NewStub(server.channel());
  std::unique_ptr<config::v1::Config::Stub> cfg = config::v1::Config::NewStub(server.channel());
  std::unique_ptr<registry::v1::Registry::Stub> reg =
      registry::v1::Registry::NewStub(server.channel());
};

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return context;
}

// Waits until `n` streams hold slots: a stream frees its slot once gRPC is done with it.
bool WaitForOpen(const CallContexts& contexts, size_t n) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (contexts.streams().open() != n) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// Every RPC of the three services once; returns their statuses.
std::vector<grpc::Status> CallEverything(Harness& h) {
  std::vector<grpc::Status> out;
  store::v1::ReadRequest read;
  read.set_key("k");
  store::v1::ReadResponse records;
  out.push_back(h.kv->Read(Context().get(), read, &records));
  read.set_prefix(true);
  out.push_back(h.kv->Read(Context().get(), read, &records));
  store::v1::WriteRequest write;
  write.mutable_record()->set_key("k");
  store::v1::WriteResponse written;
  out.push_back(h.kv->Write(Context().get(), write, &written));
  store::v1::DeleteRequest erase;
  erase.set_key("k");
  store::v1::DeleteResponse erased;
  out.push_back(h.kv->Delete(Context().get(), erase, &erased));
  {
    auto context = Context();
    auto reader = h.kv->List(context.get(), store::v1::ListRequest());
    store::v1::ListResponse keys;
    while (reader->Read(&keys)) {
    }
    out.push_back(reader->Finish());
  }
  store::v1::DatabasesResponse databases;
  out.push_back(h.kv->Databases(Context().get(), {}, &databases));
  store::v1::TablesResponse tables;
  out.push_back(h.kv->Tables(Context().get(), {}, &tables));
  store::v1::SnapshotRequest snapshot;
  snapshot.set_dir("/tmp/never");
  store::v1::SnapshotResponse snapped;
  out.push_back(h.kv->Snapshot(Context().get(), snapshot, &snapped));
  config::v1::GetResponse get;
  out.push_back(h.cfg->Get(Context().get(), config::v1::GetRequest(), &get));
  config::v1::SetRequest set;
  set.set_path("a");
  set.set_value("1");
  config::v1::SetResponse set_done;
  out.push_back(h.cfg->Set(Context().get(), set, &set_done));
  config::v1::DeleteResponse deleted;
  out.push_back(h.cfg->Delete(Context().get(), config::v1::DeleteRequest(), &deleted));
  {
    auto context = Context();
    auto reader = h.cfg->Watch(context.get(), config::v1::WatchRequest());
    config::v1::WatchResponse change;
    while (reader->Read(&change)) {
    }
    out.push_back(reader->Finish());
  }
  registry::v1::RegisterRequest reg;
  reg.mutable_service()->set_name("greeter");
  registry::v1::RegisterResponse reg_done;
  out.push_back(h.reg->Register(Context().get(), reg, &reg_done));
  registry::v1::DeregisterRequest dereg;
  dereg.mutable_service()->set_name("greeter");
  registry::v1::DeregisterResponse dereg_done;
  out.push_back(h.reg->Deregister(Context().get(), dereg, &dereg_done));
  registry::v1::GetServiceRequest get_service;
  get_service.set_name("greeter");
  registry::v1::GetServiceResponse services;
  out.push_back(h.reg->GetService(Context().get(), get_service, &services));
  registry::v1::ListServicesResponse listed;
  out.push_back(h.reg->ListServices(Context().get(), registry::v1::ListServicesRequest(), &listed));
  {
    auto context = Context();
    auto reader = h.reg->Watch(context.get(), registry::v1::WatchRequest());
    registry::v1::WatchEvent event;
    while (reader->Read(&event)) {
    }
    out.push_back(reader->Finish());
  }
  return out;
}

TEST_CASE("an exception in any handler ends the call with INTERNAL and its message",
          "[rpc][guard]") {
  Harness h;
  const std::vector<grpc::Status> statuses = CallEverything(h);
  CHECK(statuses.size() == 17);
  for (const grpc::Status& status : statuses) {
    CHECK(status.error_code() == Code::INTERNAL);
    CHECK(status.error_message().find("the disk caught fire") != std::string::npos);
  }
  h.thrower.what = Thrower::What::kInt;
  for (const grpc::Status& status : CallEverything(h)) {
    CHECK(status.error_code() == Code::INTERNAL);
    CHECK(status.error_message().find("unknown exception") != std::string::npos);
  }
}

TEST_CASE("running out of memory in a handler ends the call with RESOURCE_EXHAUSTED",
          "[rpc][guard]") {
  Harness h;
  h.thrower.what = Thrower::What::kBadAlloc;
  for (const grpc::Status& status : CallEverything(h)) {
    CHECK(status.error_code() == Code::RESOURCE_EXHAUSTED);
    CHECK(status.error_message().find("out of memory") != std::string::npos);
  }
}

TEST_CASE("watch streams of every service share one cap, and a closed one frees its slot",
          "[rpc][streams]") {
  FakeClock clock;
  registry::MemoryRegistry registry(clock);
  config::JsonConfig settings(std::make_unique<config::MemoryDocuments>(),
                              *config::SecretBox::FromKey(std::string(32, 'k')));
  CallContexts contexts;
  contexts.streams().set_max(2);
  config::ConfigService config_service{settings, contexts};
  registry::RegistryService registry_service{registry, contexts, clock};
  testing::InProcessServer server{contexts, {&config_service, &registry_service}};
  auto cfg = config::v1::Config::NewStub(server.channel());
  auto reg = registry::v1::Registry::NewStub(server.channel());

  auto config_context = Context();
  auto config_watch = cfg->Watch(config_context.get(), config::v1::WatchRequest());
  config_watch->WaitForInitialMetadata();
  auto registry_context = Context();
  auto registry_watch = reg->Watch(registry_context.get(), registry::v1::WatchRequest());
  registry_watch->WaitForInitialMetadata();
  CHECK(contexts.streams().open() == 2);

  {  // a third stream, of either service, is refused
    auto context = Context();
    auto third = cfg->Watch(context.get(), config::v1::WatchRequest());
    config::v1::WatchResponse change;
    CHECK_FALSE(third->Read(&change));
    grpc::Status status = third->Finish();
    CHECK(status.error_code() == Code::RESOURCE_EXHAUSTED);
    CHECK(status.error_message().find("max_streams") != std::string::npos);
  }
  config_context->TryCancel();
  config::v1::WatchResponse change;
  while (config_watch->Read(&change)) {
  }
  CHECK(config_watch->Finish().error_code() == Code::CANCELLED);
  REQUIRE(WaitForOpen(contexts, 1));

  auto again_context = Context();
  auto again = reg->Watch(again_context.get(), registry::v1::WatchRequest());
  again->WaitForInitialMetadata();
  registry::v1::RegisterRequest request;
  request.mutable_service()->set_name("greeter");
  registry::v1::RegisterResponse done;
  REQUIRE(reg->Register(Context().get(), request, &done).ok());
  registry::v1::WatchEvent event;
  CHECK(again->Read(&event));  // live: it was let in
  registry.CloseWatchers();
  while (again->Read(&event)) {
  }
  while (registry_watch->Read(&event)) {
  }
  CHECK(again->Finish().error_code() == Code::UNAVAILABLE);
  CHECK(registry_watch->Finish().error_code() == Code::UNAVAILABLE);
}

}  // namespace
}  // namespace micro
