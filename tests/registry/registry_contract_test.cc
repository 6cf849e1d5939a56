// The contract every Registry backend must pass. A new backend adds a Backend<> specialization
// and its type to the TEMPLATE_TEST_CASE lists below.
#include <catch2/catch.hpp>

#include "core/fake_clock.h"
#include "services/registry/memory_registry.h"

namespace micro::registry {
namespace {

using namespace std::chrono_literals;

template <typename T>
struct Backend;

template <>
struct Backend<MemoryRegistry> {
  static std::unique_ptr<Registry> Make(Clock& clock, Limits limits) {
    return std::make_unique<MemoryRegistry>(clock, limits);
  }
};

// A registry on a fake clock, and helpers to build services.
template <typename T>
struct Fixture {
  explicit Fixture(Limits limits = {}) : registry(Backend<T>::Make(clock, limits)) {}

  FakeClock clock;
  std::unique_ptr<Registry> registry;
};

Service MakeService(const std::string& name, const std::string& version,
                    std::vector<std::string> node_ids) {
  Service s{name, version, {{"team", "core"}}, {{"Greeter.Hello", {{"stream", "false"}}}}, {}};
  for (const auto& id : node_ids) s.nodes.push_back({id, "127.0.0.1:9" + id, {{"zone", "a"}}});
  return s;
}

std::vector<std::string> NodeIds(const Service& s) {
  std::vector<std::string> ids;
  for (const auto& n : s.nodes) ids.push_back(n.id);
  return ids;
}

// Events a watcher has ready now.
std::vector<Event> Drain(Watcher& watcher) {
  std::vector<Event> events;
  while (auto e = watcher.Next()) events.push_back(std::move(*e));
  return events;
}

#define BACKENDS MemoryRegistry

TEMPLATE_TEST_CASE("a registered service is found with its nodes, metadata and endpoints",
                   "[registry][contract]", BACKENDS) {
  Fixture<TestType> f;
  REQUIRE(f.registry->Register("micro", MakeService("greeter", "1.0.0", {"1", "2"}), 0).ok());

  auto got = f.registry->GetService("micro", "greeter", "");
  REQUIRE(got.ok());
  REQUIRE(got->size() == 1);
  const Service& s = (*got)[0];
  CHECK(s.name == "greeter");
  CHECK(s.version == "1.0.0");
  CHECK(s.metadata.at("team") == "core");
  REQUIRE(s.endpoints.size() == 1);
  CHECK(s.endpoints[0].name == "Greeter.Hello");
  CHECK(s.endpoints[0].metadata.at("stream") == "false");
  CHECK(NodeIds(s) == std::vector<std::string>{"1", "2"});
  CHECK(s.nodes[0].address == "127.0.0.1:91");
  CHECK(s.nodes[0].metadata.at("zone") == "a");
}

TEMPLATE_TEST_CASE("versions are kept apart and an empty version asks for all of them",
                   "[registry][contract]", BACKENDS) {
  Fixture<TestType> f;
  REQUIRE(f.registry->Register("micro", MakeService("greeter", "1.0.0", {"1"}), 0).ok());
  REQUIRE(f.registry->Register("micro", MakeService("greeter", "2.0.0", {"2", "3"}), 0).ok());

  auto all = f.registry->GetService("micro", "greeter", "");
  REQUIRE(all.ok());
  REQUIRE(all->size() == 2);
  CHECK((*all)[0].version == "1.0.0");
  CHECK((*all)[1].version == "2.0.0");
  CHECK(NodeIds((*all)[1]) == std::vector<std::string>{"2", "3"});

  auto one = f.registry->GetService("micro", "greeter", "2.0.0");
  REQUIRE(one.ok());
  REQUIRE(one->size() == 1);
  CHECK((*one)[0].version == "2.0.0");

  CHECK(f.registry->GetService("micro", "greeter", "3.0.0").status().code() ==
        absl::StatusCode::kNotFound);
}

TEMPLATE_TEST_CASE("an unknown service is NOT_FOUND", "[registry][contract]", BACKENDS) {
  Fixture<TestType> f;
  auto got = f.registry->GetService("micro", "nothing", "");
  CHECK(got.status().code() == absl::StatusCode::kNotFound);
  CHECK(std::string(got.status().message()).find("nothing") != std::string::npos);
}

TEMPLATE_TEST_CASE("an empty version is registered as latest", "[registry][contract]", BACKENDS) {
  Fixture<TestType> f;
  REQUIRE(f.registry->Register("micro", MakeService("greeter", "", {"1"}), 0).ok());
  auto got = f.registry->GetService("micro", "greeter", "latest");
  REQUIRE(got.ok());
  CHECK((*got)[0].version == "latest");
}

TEMPLATE_TEST_CASE("registering a node again refreshes it without duplicating it",
                   "[registry][contract]", BACKENDS) {
  Fixture<TestType> f;
  REQUIRE(f.registry->Register("micro", MakeService("greeter", "1", {"1"}), 0).ok());
  Service moved = MakeService("greeter", "1", {"1"});
  moved.nodes[0].address = "10.0.0.1:80";
  moved.metadata = {{"team", "edge"}};
  REQUIRE(f.registry->Register("micro", moved, 0).ok());

  auto got = f.registry->GetService("micro", "greeter", "1");
  REQUIRE(got.ok());
  REQUIRE((*got)[0].nodes.size() == 1);
  CHECK((*got)[0].nodes[0].address == "10.0.0.1:80");
  CHECK((*got)[0].metadata.at("team") == "edge");
}

TEMPLATE_TEST_CASE("deregistering nodes removes them, and the last one takes the version",
                   "[registry][contract]", BACKENDS) {
  Fixture<TestType> f;
  REQUIRE(f.registry->Register("micro", MakeService("greeter", "1", {"1", "2"}), 0).ok());

  REQUIRE(f.registry->Deregister("micro", MakeService("greeter", "1", {"1"})).ok());
  auto got = f.registry->GetService("micro", "greeter", "1");
  REQUIRE(got.ok());
  CHECK(NodeIds((*got)[0]) == std::vector<std::string>{"2"});

  REQUIRE(f.registry->Deregister("micro", MakeService("greeter", "1", {"2"})).ok());
  CHECK(f.registry->GetService("micro", "greeter", "").status().code() ==
        absl::StatusCode::kNotFound);
}

TEMPLATE_TEST_CASE("deregistering with no nodes removes the whole version", "[registry][contract]",
                   BACKENDS) {
  Fixture<TestType> f;
  REQUIRE(f.registry->Register("micro", MakeService("greeter", "1", {"1", "2"}), 0).ok());
  REQUIRE(f.registry->Register("micro", MakeService("greeter", "2", {"3"}), 0).ok());
  REQUIRE(f.registry->Deregister("micro", MakeService("greeter", "1", {})).ok());

  auto got = f.registry->GetService("micro", "greeter", "");
  REQUIRE(got.ok());
  REQUIRE(got->size() == 1);
  CHECK((*got)[0].version == "2");
}

TEMPLATE_TEST_CASE("deregistering an unknown version is NOT_FOUND", "[registry][contract]",
                   BACKENDS) {
  Fixture<TestType> f;
  CHECK(f.registry->Deregister("micro", MakeService("ghost", "1", {})).code() ==
        absl::StatusCode::kNotFound);
}

TEMPLATE_TEST_CASE("namespaces isolate services and watchers", "[registry][contract]", BACKENDS) {
  Fixture<TestType> f;
  auto watcher = f.registry->Watch("other", "", [] {});
  REQUIRE(watcher.ok());
  REQUIRE(f.registry->Register("micro", MakeService("greeter", "1", {"1"}), 0).ok());

  CHECK(f.registry->GetService("other", "greeter", "").status().code() ==
        absl::StatusCode::kNotFound);
  auto listed = f.registry->ListServices("other");
  REQUIRE(listed.ok());
  CHECK(listed->empty());
  CHECK(Drain(**watcher).empty());
  CHECK(f.registry->Deregister("other", MakeService("greeter", "1", {})).code() ==
        absl::StatusCode::kNotFound);
}

TEMPLATE_TEST_CASE("services are listed in name then version order", "[registry][contract]",
                   BACKENDS) {
  Fixture<TestType> f;
  REQUIRE(f.registry->Register("micro", MakeService("zeta", "1", {"1"}), 0).ok());
  REQUIRE(f.registry->Register("micro", MakeService("alpha", "2", {"1"}), 0).ok());
  REQUIRE(f.registry->Register("micro", MakeService("alpha", "1", {"1"}), 0).ok());
  auto listed = f.registry->ListServices("micro");
  REQUIRE(listed.ok());
  REQUIRE(listed->size() == 3);
  CHECK(((*listed)[0].name == "alpha" && (*listed)[0].version == "1"));
  CHECK(((*listed)[1].name == "alpha" && (*listed)[1].version == "2"));
  CHECK((*listed)[2].name == "zeta");
}

TEMPLATE_TEST_CASE("a node not refreshed within its TTL disappears", "[registry][contract][ttl]",
                   BACKENDS) {
  Fixture<TestType> f;
  REQUIRE(f.registry->Register("micro", MakeService("greeter", "1", {"short"}), 10).ok());
  REQUIRE(f.registry->Register("micro", MakeService("greeter", "1", {"forever"}), 0).ok());

  f.clock.Advance(9s);
  CHECK(NodeIds((*f.registry->GetService("micro", "greeter", ""))[0]) ==
        std::vector<std::string>{"forever", "short"});

  // Past the deadline the node is gone from reads even before any sweep has run.
  f.clock.Advance(2s);
  CHECK(NodeIds((*f.registry->GetService("micro", "greeter", ""))[0]) ==
        std::vector<std::string>{"forever"});
  f.clock.Advance(1000h);
  CHECK(NodeIds((*f.registry->GetService("micro", "greeter", ""))[0]) ==
        std::vector<std::string>{"forever"});
}

TEMPLATE_TEST_CASE("registering again within the TTL keeps a node alive",
                   "[registry][contract][ttl]", BACKENDS) {
  Fixture<TestType> f;
  for (int i = 0; i < 5; ++i) {
    REQUIRE(f.registry->Register("micro", MakeService("greeter", "1", {"1"}), 10).ok());
    f.clock.Advance(8s);
  }
  REQUIRE(f.registry->GetService("micro", "greeter", "").ok());
  CHECK_FALSE(f.registry->ExpireNodes() == std::nullopt);
  f.clock.Advance(3s);
  f.registry->ExpireNodes();
  CHECK(f.registry->GetService("micro", "greeter", "").status().code() ==
        absl::StatusCode::kNotFound);
}

TEMPLATE_TEST_CASE("expiry tells watchers with ACTION_DELETE naming the expired nodes",
                   "[registry][contract][ttl]", BACKENDS) {
  Fixture<TestType> f;
  REQUIRE(f.registry->Register("micro", MakeService("greeter", "1", {"1", "2"}), 5).ok());
  REQUIRE(f.registry->Register("micro", MakeService("greeter", "1", {"3"}), 60).ok());
  auto watcher = f.registry->Watch("micro", "greeter", [] {});
  REQUIRE(watcher.ok());

  auto next = f.registry->ExpireNodes();
  REQUIRE(next.has_value());
  CHECK(*next == std::chrono::nanoseconds(5s));
  CHECK(Drain(**watcher).empty());

  f.clock.Advance(6s);
  next = f.registry->ExpireNodes();
  REQUIRE(next.has_value());
  CHECK(*next == std::chrono::nanoseconds(54s));
  auto events = Drain(**watcher);
  REQUIRE(events.size() == 1);
  CHECK(events[0].action == Action::kDelete);
  CHECK(NodeIds(events[0].service) == std::vector<std::string>{"1", "2"});

  f.clock.Advance(60s);
  CHECK(f.registry->ExpireNodes() == std::nullopt);
  events = Drain(**watcher);
  REQUIRE(events.size() == 1);
  CHECK(NodeIds(events[0].service) == std::vector<std::string>{"3"});
  CHECK(f.registry->GetService("micro", "greeter", "").status().code() ==
        absl::StatusCode::kNotFound);
}

TEMPLATE_TEST_CASE("watchers see create, update and delete in order", "[registry][contract]",
                   BACKENDS) {
  Fixture<TestType> f;
  int notified = 0;
  auto all = f.registry->Watch("micro", "", [&] { ++notified; });
  auto only_greeter = f.registry->Watch("micro", "greeter", [] {});
  REQUIRE(all.ok());
  REQUIRE(only_greeter.ok());

  REQUIRE(f.registry->Register("micro", MakeService("greeter", "1", {"1"}), 0).ok());
  REQUIRE(f.registry->Register("micro", MakeService("greeter", "1", {"2"}), 0).ok());
  REQUIRE(f.registry->Register("micro", MakeService("other", "1", {"1"}), 0).ok());
  REQUIRE(f.registry->Deregister("micro", MakeService("greeter", "1", {"1"})).ok());

  auto events = Drain(**all);
  REQUIRE(events.size() == 4);
  CHECK(notified >= 4);
  CHECK(events[0].action == Action::kCreate);
  CHECK(events[1].action == Action::kUpdate);
  CHECK(NodeIds(events[1].service) == std::vector<std::string>{"1", "2"});
  CHECK(events[2].service.name == "other");
  CHECK(events[3].action == Action::kDelete);
  CHECK(NodeIds(events[3].service) == std::vector<std::string>{"1"});
  CHECK(events[3].timestamp_unix_ms > 0);

  auto filtered = Drain(**only_greeter);
  REQUIRE(filtered.size() == 3);
  for (const Event& e : filtered) CHECK(e.service.name == "greeter");
  CHECK((**all).status().ok());
}

TEMPLATE_TEST_CASE("a heartbeat that changes nothing tells watchers nothing",
                   "[registry][contract]", BACKENDS) {
  Fixture<TestType> f;
  REQUIRE(f.registry->Register("micro", MakeService("greeter", "1", {"1"}), 30).ok());
  auto watcher = f.registry->Watch("micro", "", [] {});
  REQUIRE(watcher.ok());
  f.clock.Advance(20s);
  REQUIRE(f.registry->Register("micro", MakeService("greeter", "1", {"1"}), 30).ok());
  CHECK(Drain(**watcher).empty());
  f.clock.Advance(20s);  // past the first deadline, within the refreshed one
  f.registry->ExpireNodes();
  CHECK(Drain(**watcher).empty());
  CHECK(f.registry->GetService("micro", "greeter", "").ok());

  Service changed = MakeService("greeter", "1", {"1"});
  changed.nodes[0].metadata["zone"] = "b";
  REQUIRE(f.registry->Register("micro", changed, 30).ok());
  auto events = Drain(**watcher);
  REQUIRE(events.size() == 1);
  CHECK(events[0].action == Action::kUpdate);
  CHECK(events[0].service.nodes[0].metadata.at("zone") == "b");
}

TEMPLATE_TEST_CASE("the revision moves on every visible change and the next deadline is known",
                   "[registry][contract]", BACKENDS) {
  Fixture<TestType> f;
  const Freshness empty = f.registry->CurrentFreshness();
  CHECK_FALSE(empty.valid_until.has_value());

  REQUIRE(f.registry->Register("micro", MakeService("greeter", "1", {"1"}), 30).ok());
  const Freshness registered = f.registry->CurrentFreshness();
  CHECK(registered.revision != empty.revision);
  REQUIRE(registered.valid_until.has_value());
  CHECK(*registered.valid_until == f.clock.Now() + 30s);

  REQUIRE(f.registry->Register("micro", MakeService("greeter", "1", {"1"}), 30).ok());
  CHECK(f.registry->CurrentFreshness() == registered);  // a heartbeat at the same instant

  f.clock.Advance(10s);
  REQUIRE(f.registry->Register("micro", MakeService("greeter", "1", {"1"}), 30).ok());
  const Freshness refreshed = f.registry->CurrentFreshness();
  CHECK(refreshed.revision == registered.revision);
  CHECK(*refreshed.valid_until == f.clock.Now() + 30s);

  REQUIRE(f.registry->Deregister("micro", MakeService("greeter", "1", {})).ok());
  const Freshness gone = f.registry->CurrentFreshness();
  CHECK(gone.revision != refreshed.revision);
  CHECK_FALSE(gone.valid_until.has_value());

  CHECK_FALSE(f.registry->Register("micro", MakeService("bad name", "1", {"1"}), 0).ok());
  CHECK(f.registry->CurrentFreshness() == gone);
}

TEMPLATE_TEST_CASE("a watcher that stops reading is closed and blocks nobody",
                   "[registry][contract][limits]", BACKENDS) {
  Limits limits;
  limits.watcher_queue_events = 8;
  Fixture<TestType> f(limits);
  auto stalled = f.registry->Watch("micro", "", [] {});
  auto reader = f.registry->Watch("micro", "", [] {});
  REQUIRE(stalled.ok());
  REQUIRE(reader.ok());

  for (int i = 0; i < 20; ++i) {
    REQUIRE(
        f.registry->Register("micro", MakeService("svc" + std::to_string(i), "1", {"1"}), 0).ok());
    REQUIRE(Drain(**reader).size() == 1);
  }
  CHECK(Drain(**stalled).empty());
  CHECK((**stalled).status().code() == absl::StatusCode::kResourceExhausted);
  CHECK((**reader).status().ok());
}

TEMPLATE_TEST_CASE("the number of namespaces is limited and empty ones are given back",
                   "[registry][contract][limits]", BACKENDS) {
  Limits limits;
  limits.max_namespaces = 2;
  Fixture<TestType> f(limits);
  REQUIRE(f.registry->Register("a", MakeService("s", "1", {"1"}), 0).ok());
  REQUIRE(f.registry->Register("b", MakeService("s", "1", {"1"}), 5).ok());
  CHECK(f.registry->Register("c", MakeService("s", "1", {"1"}), 0).code() ==
        absl::StatusCode::kResourceExhausted);
  REQUIRE(f.registry->Deregister("a", MakeService("s", "1", {})).ok());
  CHECK(f.registry->Register("c", MakeService("s", "1", {"1"}), 0).ok());
  f.clock.Advance(6s);
  f.registry->ExpireNodes();
  CHECK(f.registry->Register("d", MakeService("s", "1", {"1"}), 0).ok());
}

TEMPLATE_TEST_CASE("a slow watcher is also closed when its backlog passes the byte limit",
                   "[registry][contract][limits]", BACKENDS) {
  Limits limits;
  limits.watcher_queue_bytes = 64 << 10;
  Fixture<TestType> f(limits);
  auto stalled = f.registry->Watch("micro", "", [] {});
  REQUIRE(stalled.ok());
  Service big = MakeService("big", "1", {"1"});
  big.metadata["blob"] = std::string(4000, 'x');
  for (int i = 0; i < 20; ++i) {
    big.nodes[0].id = "n" + std::to_string(i);
    REQUIRE(f.registry->Register("micro", big, 0).ok());
  }
  CHECK(Drain(**stalled).empty());
  CHECK((**stalled).status().code() == absl::StatusCode::kResourceExhausted);
}

TEMPLATE_TEST_CASE("the number of watchers is limited and closing one frees its place",
                   "[registry][contract][limits]", BACKENDS) {
  Limits limits;
  limits.max_watchers = 2;
  Fixture<TestType> f(limits);
  auto a = f.registry->Watch("micro", "", [] {});
  auto b = f.registry->Watch("micro", "", [] {});
  REQUIRE((a.ok() && b.ok()));
  CHECK(f.registry->Watch("micro", "", [] {}).status().code() ==
        absl::StatusCode::kResourceExhausted);
  a->reset();
  CHECK(f.registry->Watch("micro", "", [] {}).ok());
}

TEMPLATE_TEST_CASE("closing watchers for shutdown ends them with UNAVAILABLE",
                   "[registry][contract]", BACKENDS) {
  Fixture<TestType> f;
  bool notified = false;
  auto watcher = f.registry->Watch("micro", "", [&] { notified = true; });
  REQUIRE(watcher.ok());
  f.registry->CloseWatchers();
  CHECK(notified);
  CHECK((**watcher).status().code() == absl::StatusCode::kUnavailable);
  CHECK(f.registry->Watch("micro", "", [] {}).status().code() == absl::StatusCode::kUnavailable);
}

TEMPLATE_TEST_CASE("bad input is INVALID_ARGUMENT and changes nothing",
                   "[registry][contract][limits]", BACKENDS) {
  Fixture<TestType> f;
  REQUIRE(f.registry->Register("micro", MakeService("greeter", "1", {"1"}), 0).ok());
  auto watcher = f.registry->Watch("micro", "", [] {});
  REQUIRE(watcher.ok());

  std::vector<std::pair<std::string, Service>> bad;
  bad.push_back({"empty name", MakeService("", "1", {"1"})});
  bad.push_back({"space in name", MakeService("bad name", "1", {"1"})});
  bad.push_back({"name starting with '-'", MakeService("-x", "1", {"1"})});
  bad.push_back({"long name", MakeService(std::string(129, 'a'), "1", {"1"})});
  bad.push_back({"bad version", MakeService("greeter", "1 0", {"1"})});
  bad.push_back({"long version", MakeService("greeter", std::string(65, '1'), {"1"})});
  bad.push_back({"empty node id", MakeService("greeter", "1", {""})});
  bad.push_back({"duplicate node id", MakeService("greeter", "1", {"2", "2"})});
  Service no_address = MakeService("greeter", "1", {"2"});
  no_address.nodes[0].address = "";
  bad.push_back({"empty address", no_address});
  Service big_meta = MakeService("greeter", "1", {"2"});
  big_meta.metadata["k"] = std::string(4097, 'x');
  bad.push_back({"metadata value too long", big_meta});
  Service many_meta = MakeService("greeter", "1", {"2"});
  for (int i = 0; i < 65; ++i) many_meta.nodes[0].metadata["k" + std::to_string(i)] = "v";
  bad.push_back({"too many node metadata entries", many_meta});

  for (const auto& [why, service] : bad) {
    INFO(why);
    CHECK(f.registry->Register("micro", service, 0).code() == absl::StatusCode::kInvalidArgument);
  }
  CHECK(f.registry->Register("micro", MakeService("greeter", "1", {"2"}), -1).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(f.registry->Register("micro", MakeService("greeter", "1", {"2"}), 86401).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(f.registry->GetService("micro", "bad name", "").status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(f.registry->Watch("micro", "bad name", [] {}).status().code() ==
        absl::StatusCode::kInvalidArgument);

  auto got = f.registry->GetService("micro", "greeter", "");
  REQUIRE(got.ok());
  REQUIRE(got->size() == 1);
  CHECK(NodeIds((*got)[0]) == std::vector<std::string>{"1"});
  CHECK(Drain(**watcher).empty());
}

TEMPLATE_TEST_CASE("counts beyond the limits are RESOURCE_EXHAUSTED and change nothing",
                   "[registry][contract][limits]", BACKENDS) {
  Limits limits;
  limits.max_nodes_per_version = 3;
  limits.max_versions_per_service = 2;
  limits.max_services_per_namespace = 2;
  Fixture<TestType> f(limits);
  REQUIRE(f.registry->Register("micro", MakeService("a", "1", {"1", "2"}), 0).ok());

  CHECK(f.registry->Register("micro", MakeService("a", "1", {"3", "4"}), 0).code() ==
        absl::StatusCode::kResourceExhausted);
  CHECK(f.registry->Register("micro", MakeService("a", "1", {"1", "2", "3"}), 0).ok());
  REQUIRE(f.registry->Register("micro", MakeService("a", "2", {"1"}), 0).ok());
  CHECK(f.registry->Register("micro", MakeService("a", "3", {"1"}), 0).code() ==
        absl::StatusCode::kResourceExhausted);
  REQUIRE(f.registry->Register("micro", MakeService("b", "1", {"1"}), 0).ok());
  CHECK(f.registry->Register("micro", MakeService("c", "1", {"1"}), 0).code() ==
        absl::StatusCode::kResourceExhausted);
  CHECK(f.registry->Register("other", MakeService("c", "1", {"1"}), 0).ok());

  auto listed = f.registry->ListServices("micro");
  REQUIRE(listed.ok());
  CHECK(listed->size() == 3);
  CHECK(NodeIds((*listed)[0]) == std::vector<std::string>{"1", "2", "3"});
}

TEMPLATE_TEST_CASE("registrations without a TTL share a byte budget, TTL ones do not count",
                   "[registry][contract][limits]", BACKENDS) {
  Limits limits;
  limits.max_static_bytes = 8 << 10;
  Fixture<TestType> f(limits);
  // Register static services until the budget refuses one.
  int registered = 0;
  Status refused;
  for (; registered < 1000; ++registered) {
    refused = f.registry->Register(
        "micro", MakeService("static" + std::to_string(registered), "1", {"1"}), 0);
    if (!refused.ok()) break;
  }
  REQUIRE(registered > 1);
  REQUIRE(registered < 1000);
  CHECK(refused.code() == absl::StatusCode::kResourceExhausted);
  CHECK(std::string(refused.message()).find("max_static_bytes") != std::string::npos);
  CHECK(
      f.registry->GetService("micro", "static" + std::to_string(registered), "").status().code() ==
      absl::StatusCode::kNotFound);
  // Nodes with a TTL do not count.
  for (int i = 0; i < 50; ++i) {
    CHECK(
        f.registry->Register("micro", MakeService("ttl" + std::to_string(i), "1", {"1"}), 30).ok());
  }
  // Refreshing a static node already counted is fine; registering it with a TTL frees its bytes.
  CHECK(f.registry->Register("micro", MakeService("static0", "1", {"1"}), 0).ok());
  CHECK(f.registry->Register("micro", MakeService("late", "1", {"1"}), 0).code() ==
        absl::StatusCode::kResourceExhausted);
  CHECK(f.registry->Register("micro", MakeService("static0", "1", {"1"}), 30).ok());
  CHECK(f.registry->Register("micro", MakeService("late", "1", {"1"}), 0).ok());
  // A version without nodes counts too, and deregistering gives the bytes back.
  for (int i = 1; i < registered; ++i) {
    REQUIRE(
        f.registry->Deregister("micro", MakeService("static" + std::to_string(i), "1", {})).ok());
  }
  int bare = 0;
  while (
      bare < 1000 &&
      f.registry->Register("micro", MakeService("bare" + std::to_string(bare), "1", {}), 0).ok()) {
    ++bare;
  }
  CHECK(bare >= registered - 1);  // versions without nodes are smaller, so at least as many fit
  CHECK(bare < 1000);
}

}  // namespace
}  // namespace micro::registry
