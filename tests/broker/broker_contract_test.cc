// The contract every Broker backend must pass: fan-out, queue groups, wildcards, namespaces,
// limits, and the bounded buffer of a subscriber that does not read.
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <map>
#include <set>
#include <thread>

#include "services/broker/memory_broker.h"

namespace micro::broker {
namespace {

template <typename T>
std::unique_ptr<Broker> MakeBackend(const Limits& limits);

template <>
std::unique_ptr<Broker> MakeBackend<MemoryBroker>(const Limits& limits) {
  return std::make_unique<MemoryBroker>(limits);
}

// A subscription with a notify counter.
struct Sub {
  std::shared_ptr<std::atomic<int>> notified = std::make_shared<std::atomic<int>>(0);
  std::unique_ptr<Subscription> subscription;

  // Every buffered message body, in order, and the drops reported with them.
  std::vector<std::string> Drain(uint64_t* dropped = nullptr) {
    std::vector<std::string> bodies;
    Delivery delivery;
    while (subscription->Take(1000, SIZE_MAX, &delivery)) {
      for (const auto& m : delivery.messages) bodies.push_back(m->body);
      if (dropped != nullptr) *dropped += delivery.dropped;
    }
    return bodies;
  }
};

template <typename T>
struct Fixture {
  explicit Fixture(Limits limits = {}) : broker(MakeBackend<T>(limits)) {}

  Sub Subscribe(const std::string& topic, const std::string& queue = "",
                const std::string& ns = "micro") {
    Sub sub;
    auto made = broker->Subscribe(ns, topic, queue, [n = sub.notified] { ++*n; });
    REQUIRE(made.ok());
    sub.subscription = std::move(*made);
    return sub;
  }

  Status Publish(const std::string& topic, const std::string& body, Header header = {},
                 const std::string& ns = "micro") {
    return broker->Publish(ns, Message{topic, std::move(header), body});
  }

  std::unique_ptr<Broker> broker;
};

#define BROKER_BACKENDS MemoryBroker

TEMPLATE_TEST_CASE("every subscriber of a topic gets every message, with topic and header",
                   "[broker][contract]", BROKER_BACKENDS) {
  Fixture<TestType> f;
  Sub a = f.Subscribe("orders.created");
  Sub b = f.Subscribe("orders.created");
  Sub other = f.Subscribe("orders.deleted");
  REQUIRE(f.Publish("orders.created", "one", {{"k", "v"}}).ok());
  REQUIRE(f.Publish("orders.created", "two").ok());
  Delivery delivery;
  REQUIRE(a.subscription->Take(10, SIZE_MAX, &delivery));
  REQUIRE(delivery.messages.size() == 2);
  CHECK(*delivery.messages[0] == Message{"orders.created", {{"k", "v"}}, "one"});
  CHECK(delivery.messages[1]->body == "two");
  CHECK(delivery.dropped == 0);
  CHECK(b.Drain() == std::vector<std::string>{"one", "two"});
  CHECK(other.Drain().empty());
  CHECK(*a.notified >= 1);
  CHECK_FALSE(a.subscription->Take(10, SIZE_MAX, &delivery));
}

TEMPLATE_TEST_CASE("publishing to a topic nobody subscribes to succeeds and delivers nothing",
                   "[broker][contract]", BROKER_BACKENDS) {
  Fixture<TestType> f;
  CHECK(f.Publish("nobody.listens", "x").ok());
  Sub late = f.Subscribe("nobody.listens");
  CHECK(late.Drain().empty());  // at most once, nothing kept
}

TEMPLATE_TEST_CASE("a queue group shares the messages: each to exactly one member",
                   "[broker][contract]", BROKER_BACKENDS) {
  Fixture<TestType> f;
  std::vector<Sub> workers;
  for (int i = 0; i < 3; ++i) workers.push_back(f.Subscribe("jobs.run", "workers"));
  Sub other_group = f.Subscribe("jobs.run", "auditors");
  Sub wildcard_member = f.Subscribe("jobs.*", "workers");  // same queue name, other pattern
  Sub plain = f.Subscribe("jobs.run");
  constexpr int kMessages = 400;
  for (int i = 0; i < kMessages; ++i) REQUIRE(f.Publish("jobs.run", std::to_string(i)).ok());

  std::multiset<std::string> seen;
  workers.push_back(std::move(wildcard_member));
  for (Sub& w : workers) {
    std::vector<std::string> got = w.Drain();
    CHECK(got.size() > 0);  // round robin gives every member a share
    seen.insert(got.begin(), got.end());
  }
  CHECK(seen.size() == kMessages);
  for (int i = 0; i < kMessages; ++i) CHECK(seen.count(std::to_string(i)) == 1);
  CHECK(other_group.Drain().size() == kMessages);  // every group gets every message
  CHECK(plain.Drain().size() == kMessages);        // and every plain subscriber
}

TEMPLATE_TEST_CASE("a queue group skips a member whose buffer is full while another has room",
                   "[broker][contract]", BROKER_BACKENDS) {
  Limits limits;
  limits.subscriber_buffer_bytes = 4096;
  Fixture<TestType> f(limits);
  Sub stalled = f.Subscribe("jobs", "g");
  Sub reader = f.Subscribe("jobs", "g");
  int got = 0;
  uint64_t dropped = 0;
  for (int i = 0; i < 200; ++i) {
    REQUIRE(f.Publish("jobs", std::string(500, 'x')).ok());
    got += static_cast<int>(reader.Drain(&dropped).size());
  }
  uint64_t stalled_dropped = 0;
  const int stalled_got = static_cast<int>(stalled.Drain(&stalled_dropped).size());
  CHECK(got + stalled_got == 200);  // nothing lost: the reader took what the stalled could not
  CHECK(dropped == 0);
  CHECK(stalled_dropped == 0);
  CHECK(stalled_got < 10);
}

TEMPLATE_TEST_CASE("'*' matches exactly one token and '>' one or more at the end",
                   "[broker][contract]", BROKER_BACKENDS) {
  Fixture<TestType> f;
  Sub star = f.Subscribe("a.*");
  Sub star_mid = f.Subscribe("a.*.c");
  Sub rest = f.Subscribe("a.>");
  Sub all = f.Subscribe(">");
  Sub first_star = f.Subscribe("*.b");
  for (const char* topic : {"a", "a.b", "a.b.c", "a.x.c", "b.b", "a.b.c.d"}) {
    REQUIRE(f.Publish(topic, topic).ok());
  }
  CHECK(star.Drain() == std::vector<std::string>{"a.b"});
  CHECK(star_mid.Drain() == std::vector<std::string>{"a.b.c", "a.x.c"});
  CHECK(rest.Drain() == std::vector<std::string>{"a.b", "a.b.c", "a.x.c", "a.b.c.d"});
  CHECK(all.Drain().size() == 6);
  CHECK(first_star.Drain() == std::vector<std::string>{"a.b", "b.b"});
}

TEMPLATE_TEST_CASE("a subscriber matching through several patterns is still one subscriber",
                   "[broker][contract]", BROKER_BACKENDS) {
  Fixture<TestType> f;
  Sub exact = f.Subscribe("x.y");
  Sub wild = f.Subscribe("x.*");
  REQUIRE(f.Publish("x.y", "m").ok());
  CHECK(exact.Drain().size() == 1);  // each subscription gets the message once
  CHECK(wild.Drain().size() == 1);
}

TEMPLATE_TEST_CASE("namespaces isolate topics", "[broker][contract]", BROKER_BACKENDS) {
  Fixture<TestType> f;
  Sub in_a = f.Subscribe("t", "", "team-a");
  Sub in_b = f.Subscribe("t", "", "team-b");
  Sub all_b = f.Subscribe(">", "", "team-b");
  REQUIRE(f.Publish("t", "for-a", {}, "team-a").ok());
  CHECK(in_a.Drain() == std::vector<std::string>{"for-a"});
  CHECK(in_b.Drain().empty());
  CHECK(all_b.Drain().empty());
}

TEMPLATE_TEST_CASE("messages of one publisher on one topic arrive in order", "[broker][contract]",
                   BROKER_BACKENDS) {
  Fixture<TestType> f;
  Sub sub = f.Subscribe("seq");
  std::vector<std::string> sent;
  for (int i = 0; i < 1000; ++i) {
    sent.push_back(std::to_string(i));
    REQUIRE(f.Publish("seq", sent.back()).ok());
  }
  CHECK(sub.Drain() == sent);
}

TEMPLATE_TEST_CASE("unsubscribing stops deliveries and leaves the others alone",
                   "[broker][contract]", BROKER_BACKENDS) {
  Fixture<TestType> f;
  Sub stays = f.Subscribe("a.>");
  {
    Sub goes = f.Subscribe("a.b.c");
    Sub goes_too = f.Subscribe("a.>");
  }
  REQUIRE(f.Publish("a.b.c", "m").ok());
  CHECK(stays.Drain().size() == 1);
  // A new subscription on the pruned branch works.
  Sub again = f.Subscribe("a.b.c");
  REQUIRE(f.Publish("a.b.c", "n").ok());
  CHECK(again.Drain() == std::vector<std::string>{"n"});
}

TEMPLATE_TEST_CASE("bad topics, queues, headers and bodies are refused and deliver nothing",
                   "[broker][contract]", BROKER_BACKENDS) {
  Fixture<TestType> f;
  Sub all = f.Subscribe(">");
  const auto refused = [&](const Status& s, const std::string& words) {
    INFO(s.message());
    CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    CHECK(std::string(s.message()).find(words) != std::string::npos);
  };
  refused(f.Publish("", "x"), "topic is empty");
  refused(f.Publish("a..b", "x"), "empty token");
  refused(f.Publish("a.", "x"), "empty token");
  refused(f.Publish("a.*", "x"), "wildcard");
  refused(f.Publish("a.>", "x"), "wildcard");
  refused(f.Publish("a b", "x"), "printable ASCII");
  refused(f.Publish(std::string(257, 'a'), "x"), "the limit is 256");
  std::string deep = "t";
  for (int i = 0; i < 32; ++i) deep += ".t";
  refused(f.Publish(deep, "x"), "more than 32 tokens");
  refused(f.Publish("t", std::string((1 << 20) + 1, 'b')), "the limit is 1048576");
  CHECK(f.Publish("t", std::string(1 << 20, 'b')).ok());  // exactly 1 MiB is allowed
  Header many;
  for (int i = 0; i < 65; ++i) many["k" + std::to_string(i)] = "v";
  refused(f.Publish("t", "x", many), "65 entries; the limit is 64");
  refused(f.Publish("t", "x", {{std::string(129, 'k'), "v"}}), "must be 1 to 128 bytes");
  refused(f.Publish("t", "x", {{"", "v"}}), "must be 1 to 128 bytes");
  refused(f.Publish("t", "x", {{"k", std::string(4097, 'v')}}), "the limit is 4096");
  refused(f.Publish("t", "x", {{"Micro-Dropped", "5"}}), "reserved");

  Delivery delivery;
  REQUIRE(all.subscription->Take(100, SIZE_MAX, &delivery));
  CHECK(delivery.messages.size() == 1);  // only the 1 MiB one

  const auto subscribe = [&](const std::string& topic, const std::string& queue) {
    return f.broker->Subscribe("micro", topic, queue, [] {}).status();
  };
  refused(subscribe("a.>.b", ""), "'>' may only be the last token");
  refused(subscribe("a.b*", ""), "must be whole tokens");
  refused(subscribe("a..b", ""), "empty token");
  refused(subscribe("a", "bad queue"), "queue 'bad queue'");
  refused(subscribe("a", std::string(129, 'q')), "queue is 129 bytes; the limit is 128");
  CHECK(subscribe("*.*.>", "q-1").ok());
}

TEMPLATE_TEST_CASE("subscriptions past max_subscriptions are refused with RESOURCE_EXHAUSTED",
                   "[broker][contract]", BROKER_BACKENDS) {
  Limits limits;
  limits.max_subscriptions = 3;
  Fixture<TestType> f(limits);
  std::vector<Sub> subs;
  for (int i = 0; i < 3; ++i) subs.push_back(f.Subscribe("t" + std::to_string(i)));
  auto refused = f.broker->Subscribe("micro", "t", "", [] {});
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK(std::string(refused.status().message()).find("max_subscriptions") != std::string::npos);
  subs.pop_back();
  CHECK(f.broker->Subscribe("micro", "t", "", [] {}).ok());
}

TEMPLATE_TEST_CASE(
    "a subscriber that stops reading stays within its buffer and is told what it lost, while "
    "the others get everything",
    "[broker][contract][flow]", BROKER_BACKENDS) {
  Limits limits;
  limits.subscriber_buffer_bytes = 64 << 10;
  StreamBytes shared(1 << 30);
  limits.stream_bytes = &shared;
  Fixture<TestType> f(limits);
  Sub stalled = f.Subscribe("feed");
  Sub reader = f.Subscribe("feed");
  Sub other_reader = f.Subscribe("f.>");  // a pattern elsewhere, reading too
  std::vector<std::string> got;
  constexpr int kMessages = 2000;
  size_t peak = 0;
  for (int i = 0; i < kMessages; ++i) {
    REQUIRE(f.Publish("feed", std::to_string(i) + std::string(1000, '.')).ok());
    std::vector<std::string> taken = reader.Drain();
    got.insert(got.end(), taken.begin(), taken.end());
    peak = std::max(peak, stalled.subscription->buffered_bytes());
  }
  CHECK(got.size() == kMessages);
  CHECK(other_reader.Drain().empty());
  CHECK(peak <= limits.subscriber_buffer_bytes);
  CHECK(peak > limits.subscriber_buffer_bytes / 2);
  CHECK(shared.used() == stalled.subscription->buffered_bytes());

  uint64_t dropped = 0;
  std::vector<std::string> stalled_got = stalled.Drain(&dropped);
  CHECK(dropped > 0);
  CHECK(stalled_got.size() + dropped == kMessages);
  CHECK(stalled_got.front().substr(0, 2) == "0.");  // the oldest are kept, the newest dropped
  CHECK(shared.used() == 0);
  // Reading again, it gets new messages with no stale drop count.
  REQUIRE(f.Publish("feed", "after").ok());
  uint64_t later = 0;
  CHECK(stalled.Drain(&later) == std::vector<std::string>{"after"});
  CHECK(later == 0);
}

TEMPLATE_TEST_CASE("PublishMany delivers as Publish does and stops before a refused message",
                   "[broker][contract]", BROKER_BACKENDS) {
  Limits limits;
  limits.subscriber_buffer_bytes = 16 << 10;
  Fixture<TestType> f(limits);
  Sub all = f.Subscribe("a.>");
  Sub only_b = f.Subscribe("a.b");
  Sub q1 = f.Subscribe("a.*", "workers");
  Sub q2 = f.Subscribe("a.*", "workers");
  Sub small = f.Subscribe("big");
  std::vector<Message> batch;
  for (int i = 0; i < 6; ++i) batch.push_back({i < 3 ? "a.b" : "a.c", {}, std::to_string(i)});
  for (int i = 0; i < 40; ++i) batch.push_back({"big", {}, std::string(1000, 'x')});
  batch.push_back({"a.b", {}, "after"});
  batch.push_back({"a.*", {}, "refused"});  // a wildcard in a publish
  batch.push_back({"a.b", {}, "never"});
  size_t published = 0;
  Status s = f.broker->PublishMany("micro", batch, &published);
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(published == 47);
  CHECK(all.Drain() == std::vector<std::string>{"0", "1", "2", "3", "4", "5", "after"});
  CHECK(only_b.Drain() == std::vector<std::string>{"0", "1", "2", "after"});
  std::vector<std::string> shared = q1.Drain();
  const std::vector<std::string> other = q2.Drain();
  CHECK(shared.size() == 4);  // round robin over 7 messages, as Publish
  CHECK(other.size() == 3);
  shared.insert(shared.end(), other.begin(), other.end());
  std::sort(shared.begin(), shared.end());
  CHECK(shared == std::vector<std::string>{"0", "1", "2", "3", "4", "5", "after"});
  uint64_t dropped = 0;
  const size_t kept = small.Drain(&dropped).size();
  CHECK(dropped > 0);  // a 16 KiB buffer holds some of the 40 KiB, the rest is counted
  CHECK(kept + dropped == 40);
  CHECK(*small.notified == 1);  // one notify for the run, when the buffer stopped being empty
}

TEMPLATE_TEST_CASE("Stats counts subscriptions, messages published, copies delivered and dropped",
                   "[broker][contract]", BROKER_BACKENDS) {
  Limits limits;
  limits.subscriber_buffer_bytes = 4096;
  Fixture<TestType> f(limits);
  Sub plain = f.Subscribe("t");
  Sub q1 = f.Subscribe("t", "g");
  Sub q2 = f.Subscribe("t", "g");
  CHECK(f.broker->Stats().subscriptions == 3);
  REQUIRE(f.Publish("t", "1").ok());       // two copies: the plain one, one of the group
  REQUIRE(f.Publish("nobody", "x").ok());  // no copy
  // Two more copies each; the plain subscriber has room for only the first.
  std::vector<Message> big(2, Message{"t", {}, std::string(3000, 'x')});
  size_t published = 0;
  REQUIRE(f.broker->PublishMany("micro", big, &published).ok());
  BrokerStats stats = f.broker->Stats();
  CHECK(stats.published == 4);
  CHECK(stats.delivered == 5);
  CHECK(stats.dropped == 1);
  plain.subscription.reset();
  CHECK(f.broker->Stats().subscriptions == 2);
}

TEMPLATE_TEST_CASE("the daemon-wide byte budget drops for the subscribers that fell behind",
                   "[broker][contract][flow]", BROKER_BACKENDS) {
  Limits limits;
  limits.subscriber_buffer_bytes = 1 << 20;
  StreamBytes shared(64 << 10);  // far less than the subscribers' own buffers together
  limits.stream_bytes = &shared;
  Fixture<TestType> f(limits);
  std::vector<Sub> stalled;
  for (int i = 0; i < 4; ++i) stalled.push_back(f.Subscribe("t"));
  Sub reader = f.Subscribe("t");
  size_t got = 0;
  for (int i = 0; i < 500; ++i) {
    REQUIRE(f.Publish("t", std::string(1000, 'x')).ok());
    got += reader.Drain().size();
    CHECK(shared.used() <= shared.max() + 4 * 1100);  // past it by at most one item each
  }
  CHECK(got == 500);  // a reader that keeps up never loses a message to the others' backlog
  uint64_t dropped = 0;
  for (Sub& s : stalled) s.Drain(&dropped);
  CHECK(dropped > 0);
  stalled.clear();
  CHECK(shared.used() == 0);
}

TEMPLATE_TEST_CASE("destroying a subscription with buffered messages refunds their bytes",
                   "[broker][contract][flow]", BROKER_BACKENDS) {
  Limits limits;
  StreamBytes shared;
  limits.stream_bytes = &shared;
  Fixture<TestType> f(limits);
  {
    Sub sub = f.Subscribe("t");
    for (int i = 0; i < 10; ++i) REQUIRE(f.Publish("t", "payload").ok());
    CHECK(shared.used() > 0);
    CHECK(shared.used() == sub.subscription->buffered_bytes());
  }
  CHECK(shared.used() == 0);
}

TEMPLATE_TEST_CASE("closing subscriptions ends them with UNAVAILABLE and refuses new ones",
                   "[broker][contract]", BROKER_BACKENDS) {
  Fixture<TestType> f;
  Sub sub = f.Subscribe("t");
  REQUIRE(f.Publish("t", "before").ok());
  const int notified = *sub.notified;
  f.broker->CloseSubscriptions();
  CHECK(*sub.notified > notified);
  CHECK(sub.subscription->status().code() == absl::StatusCode::kUnavailable);
  CHECK(sub.Drain() == std::vector<std::string>{"before"});  // what was buffered can be read
  CHECK(f.Publish("t", "after").ok());
  CHECK(sub.Drain().empty());
  auto refused = f.broker->Subscribe("micro", "t", "", [] {});
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == absl::StatusCode::kUnavailable);
}

TEMPLATE_TEST_CASE("concurrent publishers and subscribers lose nothing that fits",
                   "[broker][contract]", BROKER_BACKENDS) {
  Fixture<TestType> f;
  Sub sub = f.Subscribe("c.>");
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};  // Catch2's assertions are not for other threads
  // Subscriptions come and go on other topics while four threads publish.
  std::thread churn([&] {
    while (!stop) {
      auto s = f.broker->Subscribe("micro", "c.x.y", "", [] {});
      if (!s.ok()) ++failures;
    }
  });
  std::vector<std::thread> publishers;
  for (int t = 0; t < 4; ++t) {
    publishers.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        if (!f.Publish("c." + std::to_string(t), std::to_string(i)).ok()) ++failures;
      }
    });
  }
  for (auto& p : publishers) p.join();
  stop = true;
  churn.join();
  CHECK(failures == 0);
  std::map<std::string, int> last;
  Delivery delivery;
  size_t total = 0;
  while (sub.subscription->Take(1000, SIZE_MAX, &delivery)) {
    for (const auto& m : delivery.messages) {
      const int n = std::stoi(m->body);
      CHECK(n > last.emplace(m->topic, -1).first->second);  // per publisher, in order
      last[m->topic] = n;
      ++total;
    }
  }
  CHECK(total == 2000);
}

}  // namespace
}  // namespace micro::broker
