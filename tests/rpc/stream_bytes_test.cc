// The daemon-wide budget of bytes queued in watch and log streams: what counts, when it comes
// back, and which stream pays when it runs out.
#include "core/stream_bytes.h"

#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "core/fake_clock.h"
#include "core/watch_queue.h"
#include "core/watcher_set.h"
#include "services/registry/make_registry.h"

namespace micro {
namespace {

using Queue = WatchQueue<std::string>;

std::unique_ptr<Queue> QueueOn(StreamBytes& shared) {
  return std::make_unique<Queue>(
      1000, 1 << 20, "events", [] {}, &shared);
}

TEST_CASE("queued bytes are charged and come back as items are delivered", "[streams]") {
  StreamBytes shared(1000);
  auto queue = QueueOn(shared);
  queue->Push("a", 300);
  queue->Push("b", 200);
  CHECK(shared.used() == 500);
  CHECK(queue->Next() == "a");
  CHECK(shared.used() == 200);
  CHECK(queue->Next() == "b");
  CHECK(shared.used() == 0);
}

TEST_CASE("a queue destroyed or closed for overflow gives its bytes back", "[streams]") {
  StreamBytes shared(1000);
  auto queue = QueueOn(shared);
  queue->Push("a", 400);
  queue->Close(EndOfStream());  // a normal end still delivers what is queued
  CHECK(shared.used() == 400);
  queue.reset();
  CHECK(shared.used() == 0);

  // Its own budget: 2 items at most. The third push closes it and drops what it held.
  auto small = std::make_unique<Queue>(
      2, 1 << 20, "events", [] {}, &shared);
  small->Push("a", 100);
  small->Push("b", 100);
  CHECK(shared.used() == 200);
  small->Push("c", 100);
  CHECK(small->status().code() == absl::StatusCode::kResourceExhausted);
  CHECK(shared.used() == 0);
}

TEST_CASE("a push past the shared budget closes only the stream that pushed", "[streams]") {
  StreamBytes shared(1000);
  auto reader = QueueOn(shared);
  auto slow = QueueOn(shared);
  reader->Push("r", 300);
  slow->Push("s1", 600);
  CHECK(shared.used() == 900);

  slow->Push("s2", 200);  // 1100 > 1000: the slow stream pays
  const Status status = slow->status();
  CHECK(status.code() == absl::StatusCode::kResourceExhausted);
  CHECK(std::string(status.message()).find("max_stream_bytes") != std::string::npos);
  CHECK_FALSE(slow->Next().has_value());  // what it held is gone, and its bytes with it
  CHECK(shared.used() == 300);
  slow->Push("s3", 1);  // a closed queue takes nothing more
  CHECK(shared.used() == 300);

  // A stream that has read everything takes its next item even when the budget is spent.
  auto keeping_up = QueueOn(shared);
  auto filler = QueueOn(shared);
  filler->Push("f", 700);
  CHECK(shared.used() == 1000);
  keeping_up->Push("k", 50);
  CHECK(keeping_up->status().ok());
  CHECK(shared.used() == 1050);
  CHECK(keeping_up->Next() == "k");
  CHECK(filler->Next() == "f");
  CHECK(shared.used() == 300);

  // The other stream is untouched and may use the room the slow one gave back.
  CHECK(reader->status().ok());
  reader->Push("r2", 700);
  CHECK(reader->status().ok());
  CHECK(reader->Next() == "r");
  CHECK(reader->Next() == "r2");
  CHECK(shared.used() == 0);
}

TEST_CASE("watchers of a watcher set share the daemon-wide budget", "[streams]") {
  struct Watcher {
    virtual ~Watcher() = default;
    virtual std::optional<std::string> Next() = 0;
    virtual Status status() const = 0;
  };
  StreamBytes shared(1000);
  WatcherSet<int, std::string> set(WatcherBudget{10, 1000, 800, "events", &shared});
  auto first = set.Subscribe<Watcher>(1, [] {});
  auto second = set.Subscribe<Watcher>(1, [] {});
  REQUIRE(first.ok());
  REQUIRE(second.ok());
  // Each stream's own budget (800) holds two 300-byte events; the two streams together do not.
  set.Publish([](int) { return true; }, std::string("e1"), 300);
  CHECK(shared.used() == 600);
  set.Publish([](int) { return true; }, std::string("e2"), 300);
  CHECK((*first)->status().ok());
  CHECK((*second)->status().code() == absl::StatusCode::kResourceExhausted);
  CHECK(shared.used() == 600);
  // The one that reads goes on.
  CHECK((*first)->Next() == "e1");
  CHECK((*first)->Next() == "e2");
  CHECK(shared.used() == 0);
  first->reset();
  second->reset();
  CHECK(shared.used() == 0);
}

TEST_CASE("the registry built for the daemon charges its watchers to the shared account",
          "[streams]") {
  StreamBytes shared(1 << 20);
  FakeClock clock;
  auto registry = registry::MakeRegistry(registry::RegistryConfig{}, clock, &shared);
  REQUIRE(registry.ok());
  auto watcher = (*registry)->Watch("micro", "", [] {});
  REQUIRE(watcher.ok());
  registry::Service service;
  service.name = "greeter";
  service.nodes.push_back({"n1", "127.0.0.1:9000", {}});
  REQUIRE((*registry)->Register("micro", service, 0).ok());
  CHECK(shared.used() > 0);
  while ((*watcher)->Next()) {
  }
  CHECK(shared.used() == 0);
}

}  // namespace
}  // namespace micro
