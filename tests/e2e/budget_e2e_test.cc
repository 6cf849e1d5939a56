// The daemon's memory budgets against the real binary: many watchers that never read, many
// registrations without a TTL and large config changes leave its RSS under the documented bound
// (docs/architecture.md#memory-budgets), and streams past max_streams are refused.
#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "micro/config/v1/config.grpc.pb.h"
#include "micro/registry/v1/registry.grpc.pb.h"
#include "tests/support/micro_daemon.h"

namespace micro::testing {
namespace {

constexpr int kRegistryWatchers = 24;
constexpr int kConfigWatchers = 24;
constexpr int kMaxStreams = kRegistryWatchers + kConfigWatchers;
constexpr int64_t kMiB = 1 << 20;
// The bound for this test's settings: a base for the daemon itself (~40 MiB measured, with room),
// the static registry budget (64 MiB, as the registry counts bytes; allocations cost up to about
// twice that), and each watcher's byte budget (8 MiB registry, 4 MiB config) that slow readers
// may fill, plus gRPC's per-stream buffers.
constexpr int64_t kBoundBytes = 128 * kMiB + 2 * 64 * kMiB + kRegistryWatchers * (8 + 2) * kMiB +
                                kConfigWatchers * (4 + 2) * kMiB;

std::unique_ptr<grpc::ClientContext> Context(int seconds = 30) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return context;
}

TEST_CASE("slow watchers and registrations without a TTL keep the daemon's memory bounded",
          "[e2e][budget]") {
  MicroDaemon daemon({"--max-streams", std::to_string(kMaxStreams)});
  REQUIRE(daemon.WaitUntilServing());
  auto channel = grpc::CreateChannel(daemon.address(), grpc::InsecureChannelCredentials());
  auto registry = micro::registry::v1::Registry::NewStub(channel);
  auto config = micro::config::v1::Config::NewStub(channel);

  // Watchers that never read: every event they are sent piles up in the daemon.
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<micro::registry::v1::WatchEvent>>> reg_watches;
  std::vector<std::unique_ptr<grpc::ClientReader<micro::config::v1::WatchResponse>>> cfg_watches;
  for (int i = 0; i < kRegistryWatchers; ++i) {
    contexts.push_back(Context(600));
    reg_watches.push_back(registry->Watch(contexts.back().get(), {}));
    reg_watches.back()->WaitForInitialMetadata();
  }
  for (int i = 0; i < kConfigWatchers; ++i) {
    contexts.push_back(Context(600));
    cfg_watches.push_back(config->Watch(contexts.back().get(), {}));
    cfg_watches.back()->WaitForInitialMetadata();
  }
  {  // the cap: one stream more is refused, naming the limit
    auto context = Context();
    auto refused = registry->Watch(context.get(), {});
    micro::registry::v1::WatchEvent event;
    CHECK_FALSE(refused->Read(&event));
    grpc::Status status = refused->Finish();
    CHECK(status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
    CHECK(status.error_message().find("max_streams") != std::string::npos);
  }

  // Registrations without a TTL, about 70 KB each, until the static budget refuses one.
  micro::registry::v1::RegisterRequest request;
  for (int m = 0; m < 64; ++m) {
    (*request.mutable_service()->mutable_metadata())["k" + std::to_string(m)] =
        std::string(1000, 'm');
  }
  micro::registry::v1::Node* node = request.mutable_service()->add_nodes();
  node->set_id("n1");
  node->set_address("127.0.0.1:9000");
  grpc::Status refused;
  int registered = 0;
  for (; registered < 3000; ++registered) {
    request.mutable_service()->set_name("svc" + std::to_string(registered));
    micro::registry::v1::RegisterResponse done;
    refused = registry->Register(Context().get(), request, &done);
    if (!refused.ok()) break;
  }
  INFO("registered " << registered << " services without a TTL");
  CHECK(refused.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK(refused.error_message().find("max_static_bytes") != std::string::npos);

  // Config changes of about 60 KB each, to every config watcher.
  micro::config::v1::SetRequest set;
  set.set_value("\"" + std::string(60000, 'v') + "\"");
  for (int i = 0; i < 400; ++i) {
    set.set_path("big.v" + std::to_string(i % 10));
    micro::config::v1::SetResponse done;
    REQUIRE(config->Set(Context().get(), set, &done).ok());
  }

  const int64_t rss = ResidentBytes(daemon.process().pid());
  INFO("daemon RSS " << rss / kMiB << " MiB; bound " << kBoundBytes / kMiB << " MiB");
  CHECK(rss > 0);
  CHECK(rss < kBoundBytes);

  // The slow watchers were closed for falling behind, and say so.
  for (auto& watch : reg_watches) {
    micro::registry::v1::WatchEvent event;
    while (watch->Read(&event)) {
    }
    grpc::Status status = watch->Finish();
    CHECK(status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  for (auto& watch : cfg_watches) {
    micro::config::v1::WatchResponse change;
    while (watch->Read(&change)) {
    }
    CHECK(watch->Finish().error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
}

}  // namespace
}  // namespace micro::testing
