// The contract of the Events interface, on both backends: RocksDB on disk, and memory (the same
// engine on RocksDB's in-memory file system).
#include <set>
#include <thread>

#include "tests/events/events_harness.h"

namespace micro::events::testing {
namespace {

TEST_CASE("sequences are per topic, start at 1 and come back from Read in order",
          "[events][contract]") {
  Harness h({0, 0, 0}, {}, 0, /*memory=*/GENERATE(false, true));
  for (int i = 1; i <= 3; ++i) {
    auto p = h.Publish("a", "a" + std::to_string(i), "", {{"k", "v"}});
    REQUIRE(p.ok());
    CHECK(p->sequence == static_cast<uint64_t>(i));
    CHECK_FALSE(p->id.empty());
    CHECK_FALSE(p->duplicate);
  }
  REQUIRE(h.Publish("b", "b1").ok());
  auto events = h.ReadAll("a");
  REQUIRE(events.size() == 3);
  CHECK(events[0].payload == "a1");
  CHECK(events[2].sequence == 3);
  CHECK(events[1].metadata.at("k") == "v");
  CHECK(events[0].topic == "a");
  CHECK(h.ReadAll("a", 2).size() == 2);
  CHECK(h.ReadAll("b").size() == 1);
  CHECK(h.ReadAll("missing").empty());
  auto other_ns = h.events->Read("other", "a", 0, 0);
  REQUIRE(other_ns.ok());
  CHECK(other_ns->empty());
  auto topics = h.events->Topics("ns");
  REQUIRE(topics.ok());
  REQUIRE(topics->size() == 2);
  CHECK((*topics)[0].name == "a");
  CHECK((*topics)[0].last_sequence == 3);
  CHECK((*topics)[0].count == 3);
}

TEST_CASE("Stats counts events appended, groups and consumers", "[events][contract]") {
  Harness h({0, 0, 0}, {}, 0, /*memory=*/GENERATE(false, true));
  REQUIRE(h.Publish("t", "one", "id-1").ok());
  REQUIRE(h.Publish("t", "one again", "id-1")->duplicate);
  REQUIRE(h.Publish("u", "two").ok());
  auto a1 = std::make_unique<TestConsumer>(*h.events, Sub("t", "a"));
  TestConsumer a2(*h.events, Sub("t", "a"));
  TestConsumer b(*h.events, Sub("u", "b"));
  EventsStats stats = h.events->Stats();
  CHECK(stats.published == 2);
  CHECK(stats.groups == 2);
  CHECK(stats.consumers == 3);
  a1.reset();
  CHECK(h.events->Stats().consumers == 2);
}

TEST_CASE("published events and sequence numbers survive a restart", "[events][contract]") {
  Harness h({0, 0, 0}, {}, 0, /*memory=*/GENERATE(false, true));
  REQUIRE(h.Publish("t", "one").ok());
  REQUIRE(h.Publish("t", "two").ok());
  h.Reopen();
  CHECK(h.ReadAll("t").size() == 2);
  auto third = h.Publish("t", "three");
  REQUIRE(third.ok());
  CHECK(third->sequence == 3);
}

TEST_CASE("an id published again within the window is stored once, also after a restart",
          "[events][contract]") {
  Harness h({0, 0, 0}, {}, 0, /*memory=*/GENERATE(false, true));
  auto first = h.Publish("t", "x", "order-1");
  REQUIRE(first.ok());
  CHECK(first->id == "order-1");
  auto again = h.Publish("t", "different payload", "order-1");
  REQUIRE(again.ok());
  CHECK(again->duplicate);
  CHECK(again->sequence == first->sequence);
  CHECK(h.ReadAll("t").size() == 1);
  // The same id in another topic is another event.
  CHECK_FALSE(h.Publish("u", "x", "order-1")->duplicate);
  h.Reopen();
  CHECK(h.Publish("t", "x", "order-1")->duplicate);
  h.clock.Advance(std::chrono::milliseconds(h.limits.dedup_window_ms + 1000));
  auto later = h.Publish("t", "x", "order-1");
  REQUIRE(later.ok());
  CHECK_FALSE(later->duplicate);
  CHECK(later->sequence == 2);
  // The trimmer forgets expired ids and keeps the one written since.
  h.clock.Advance(1s);
  h.events->TrimNow();
  CHECK(h.Publish("t", "x", "order-1")->duplicate);
}

TEST_CASE("bad input is INVALID_ARGUMENT naming the field and stores nothing",
          "[events][contract]") {
  Harness h({0, 0, 0}, {}, 0, /*memory=*/GENERATE(false, true));
  CHECK(h.Publish("", "x").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(h.Publish("a b", "x").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(h.Publish(".a", "x").status().code() == absl::StatusCode::kInvalidArgument);
  // The topic rule is the broker's (core/limits.h): 256 bytes, 32 tokens, no wildcards.
  CHECK(h.Publish(std::string(257, 't'), "x").status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(h.Publish("a..b", "x").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(h.Publish("orders.*", "x").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(h.Publish("orders.>", "x").status().code() == absl::StatusCode::kInvalidArgument);
  std::string tokens = "t";
  for (int i = 1; i < 33; ++i) tokens += ".t";
  CHECK(h.Publish(tokens, "x").status().code() == absl::StatusCode::kInvalidArgument);
  REQUIRE(h.Publish(std::string(256, 't'), "x").ok());  // and what the broker takes is taken
  REQUIRE(h.Publish("Orders_EU:created.v2", "x").ok());
  auto big = h.Publish("t", std::string(h.limits.max_payload_bytes + 1, 'x'));
  CHECK(big.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(big.status().message()).find("payload") != std::string::npos);
  CHECK(h.Publish("t", "x", "has space").status().code() == absl::StatusCode::kInvalidArgument);
  Metadata many;
  for (int i = 0; i < 65; ++i) many["k" + std::to_string(i)] = "v";
  CHECK(h.Publish("t", "x", "", many).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(h.Publish("t", "x", "", {{"", "v"}}).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(h.ReadAll("t").empty());
  CHECK(h.ReadAll("orders").empty());
  CHECK(h.events->Read("ns", "bad topic", 0, 0).status().code() ==
        absl::StatusCode::kInvalidArgument);

  auto refused = [&](Subscription sub) {
    return h.events->Consume("ns", sub, [] {}).status().code() ==
           absl::StatusCode::kInvalidArgument;
  };
  Subscription sub = Sub("t", "g");
  sub.start_sequence = 1;
  sub.start_unix_ms = 1;
  CHECK(refused(sub));
  sub = Sub("t", "g");
  sub.ack_wait_ms = -1;
  CHECK(refused(sub));
  sub = Sub("t", "g");
  sub.max_in_flight = h.limits.max_in_flight + 1;
  CHECK(refused(sub));
  sub = Sub("t", "g");
  sub.retry_limit = -1;
  CHECK(refused(sub));
  CHECK(refused(Sub("t", "bad group")));
  sub = Sub("t", "g");
  sub.dead_letter_topic = "t";
  CHECK(refused(sub));
  sub = Sub(tokens.substr(2), "g");  // 32 tokens: "<topic>.dead" would have 33
  sub.retry_limit = 1;
  CHECK(refused(sub));
  sub.dead_letter_topic = "dead";
  CHECK_FALSE(refused(sub));
}

TEST_CASE("the disk reserve refuses publishes with RESOURCE_EXHAUSTED", "[events][contract]") {
  Harness h({0, 0, 0}, {}, UINT64_MAX);
  CHECK(h.Publish("t", "x").status().code() == absl::StatusCode::kResourceExhausted);
  CHECK(h.ReadAll("t").empty());
}

TEST_CASE("every group gets every event; the consumers of one group share them",
          "[events][contract]") {
  Harness h({0, 0, 0}, {}, 0, /*memory=*/GENERATE(false, true));
  TestConsumer a1(*h.events, Sub("t", "a", 1));
  TestConsumer a2(*h.events, Sub("t", "a", 1));
  TestConsumer b(*h.events, Sub("t", "b", 1));
  constexpr int kEvents = 40;
  for (int i = 0; i < kEvents; ++i) REQUIRE(h.Publish("t", std::to_string(i)).ok());
  std::set<uint64_t> group_a, group_b;
  int from_a1 = 0, from_a2 = 0;
  while (group_b.size() < kEvents) {
    auto e = b.Next();
    REQUIRE(e);
    CHECK(group_b.insert(e->sequence).second);
    b.consumer->Ack(e->id, true);
  }
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (group_a.size() < kEvents && std::chrono::steady_clock::now() < deadline) {
    for (auto* c : {&a1, &a2}) {
      while (auto e = c->consumer->Next()) {
        CHECK(group_a.insert(e->sequence).second);  // one consumer at a time
        CHECK(e->delivery_count == 1);
        c->consumer->Ack(e->id, true);
        (c == &a1 ? from_a1 : from_a2)++;
      }
    }
    std::this_thread::sleep_for(1ms);
  }
  REQUIRE(group_a.size() == kEvents);
  CHECK(from_a1 > 0);
  CHECK(from_a2 > 0);
}

TEST_CASE("an event not acknowledged within ack_wait is delivered again", "[events][contract]") {
  Harness h({0, 0, 0}, {}, 0, /*memory=*/GENERATE(false, true));
  Subscription sub = Sub("t", "g", 1);
  sub.ack_wait_ms = 5000;
  TestConsumer c(*h.events, sub);
  REQUIRE(h.Publish("t", "x").ok());
  auto first = c.Next();
  REQUIRE(first);
  CHECK(first->delivery_count == 1);
  h.clock.Advance(6s);  // the dispatcher looks at the clock at least once a second
  auto second = c.Next();
  REQUIRE(second);
  CHECK(second->sequence == first->sequence);
  CHECK(second->delivery_count == 2);
  c.consumer->Ack(second->id, true);
}

TEST_CASE("a negative ack redelivers; past retry_limit the event goes to the dead-letter topic",
          "[events][contract]") {
  Harness h({0, 0, 0}, {}, 0, /*memory=*/GENERATE(false, true));
  Subscription sub = Sub("orders", "g", 1);
  sub.retry_limit = 1;
  TestConsumer c(*h.events, sub);
  REQUIRE(h.Publish("orders", "poison", "", {{"origin", "test"}}).ok());
  REQUIRE(h.Publish("orders", "fine").ok());
  auto first = c.Next();
  REQUIRE(first);
  REQUIRE(first->payload == "poison");
  c.consumer->Ack(first->id, false);
  // The next one may be "fine" (sequence 2) or the redelivery.
  std::optional<Event> redelivered;
  for (int i = 0; i < 3 && !redelivered; ++i) {
    auto e = c.Next();
    REQUIRE(e);
    if (e->sequence == 1) {
      redelivered = e;
    } else {
      c.consumer->Ack(e->id, true);
    }
  }
  REQUIRE(redelivered);
  CHECK(redelivered->delivery_count == 2);
  c.consumer->Ack(redelivered->id, false);  // the last retry failed too
  REQUIRE(micro::testing::WaitFor([&] { return h.ReadAll("orders.dead").size() == 1; }, 10s));
  auto dead = h.ReadAll("orders.dead");
  CHECK(dead[0].payload == "poison");
  CHECK(dead[0].metadata.at("dead-letter-sequence") == "1");
  CHECK(dead[0].metadata.at("dead-letter-group") == "g");
  CHECK(dead[0].metadata.at("origin") == "test");
  // Done in its group: a new consumer of the group after a restart gets nothing old.
  REQUIRE(micro::testing::WaitFor([&] { return !c.consumer->Next(); }, 1s));
  c.consumer.reset();
  h.Reopen();
  TestConsumer again(*h.events, Sub("orders", "g", 1));
  REQUIRE(h.Publish("orders", "new").ok());
  auto next = again.Next();
  REQUIRE(next);
  CHECK(next->payload == "new");
}

TEST_CASE("a group resumes from its stored position after a restart", "[events][contract]") {
  Harness h({0, 0, 0}, {}, 0, /*memory=*/GENERATE(false, true));
  for (int i = 1; i <= 5; ++i) REQUIRE(h.Publish("t", std::to_string(i)).ok());
  {
    TestConsumer c(*h.events, Sub("t", "g", 1));
    for (int i = 1; i <= 3; ++i) {
      auto e = c.Next();
      REQUIRE(e);
      CHECK(e->sequence == static_cast<uint64_t>(i));
      c.consumer->Ack(e->id, true);
    }
  }
  h.Reopen();
  // An existing group ignores the start it is given.
  TestConsumer c(*h.events, Sub("t", "g", 1));
  auto e = c.Next();
  REQUIRE(e);
  CHECK(e->sequence == 4);
  // Another group is new and starts where it is told.
  TestConsumer other(*h.events, Sub("t", "other", 2));
  auto o = other.Next();
  REQUIRE(o);
  CHECK(o->sequence == 2);
}

TEST_CASE("a new group starts by time, or with the next event", "[events][contract]") {
  Harness h({0, 0, 0}, {}, 0, /*memory=*/GENERATE(false, true));
  for (int i = 1; i <= 3; ++i) REQUIRE(h.Publish("t", "old").ok());
  h.clock.Advance(10s);
  const int64_t since = h.clock.UnixMillis();
  for (int i = 4; i <= 6; ++i) REQUIRE(h.Publish("t", "new").ok());
  Subscription by_time = Sub("t", "by-time");
  by_time.start_unix_ms = since;
  TestConsumer c(*h.events, by_time);
  auto e = c.Next();
  REQUIRE(e);
  CHECK(e->sequence == 4);

  TestConsumer fresh(*h.events, Sub("t", "fresh"));
  // Once attached, the group gets every event published from then on.
  REQUIRE(micro::testing::WaitFor([&] { return fresh.consumer->attached(); }, 10s));
  REQUIRE(h.Publish("t", "latest").ok());
  auto f = fresh.Next();
  REQUIRE(f);
  CHECK(f->sequence == 7);
}

TEST_CASE("max_in_flight bounds the unacknowledged events of a consumer", "[events][contract]") {
  Harness h({0, 0, 0}, {}, 0, /*memory=*/GENERATE(false, true));
  Subscription sub = Sub("t", "g", 1);
  sub.max_in_flight = 2;
  TestConsumer c(*h.events, sub);
  for (int i = 0; i < 5; ++i) REQUIRE(h.Publish("t", "x").ok());
  auto e1 = c.Next();
  auto e2 = c.Next();
  REQUIRE(e1);
  REQUIRE(e2);
  CHECK_FALSE(c.Next(300ms));
  c.consumer->Ack(e1->id, true);
  auto e3 = c.Next();
  REQUIRE(e3);
  CHECK(e3->sequence == 3);
}

TEST_CASE("auto_ack moves the group's position without acks", "[events][contract]") {
  Harness h({0, 0, 0}, {}, 0, /*memory=*/GENERATE(false, true));
  for (int i = 0; i < 3; ++i) REQUIRE(h.Publish("t", "x").ok());
  {
    Subscription sub = Sub("t", "g", 1);
    sub.auto_ack = true;
    TestConsumer c(*h.events, sub);
    for (int i = 0; i < 3; ++i) REQUIRE(c.Next());
  }
  TestConsumer c(*h.events, Sub("t", "g", 1));
  REQUIRE(h.Publish("t", "fourth").ok());
  auto e = c.Next();
  REQUIRE(e);
  CHECK(e->sequence == 4);
}

TEST_CASE("a member that leaves: its unacknowledged events go to another at once",
          "[events][contract]") {
  Harness h({0, 0, 0}, {}, 0, /*memory=*/GENERATE(false, true));
  Subscription sub = Sub("t", "g", 1);
  sub.ack_wait_ms = 3600 * 1000;  // the fake clock never gets there
  auto leaving = std::make_unique<TestConsumer>(*h.events, sub);
  REQUIRE(h.Publish("t", "x").ok());
  auto taken = leaving->Next();
  REQUIRE(taken);
  TestConsumer staying(*h.events, sub);
  leaving.reset();  // without acknowledging
  auto e = staying.Next();
  REQUIRE(e);
  CHECK(e->sequence == taken->sequence);
  CHECK(e->delivery_count == 2);
}

TEST_CASE("retention trims the oldest events by count, bytes and age", "[events][contract]") {
  SECTION("count") {
    Harness h({0, 3, 0});
    for (int i = 0; i < 5; ++i) REQUIRE(h.Publish("t", "x").ok());
    h.events->TrimNow();
    REQUIRE(micro::testing::WaitFor([&] { return h.FirstSequence("t") == 3; }, 10s));
    auto events = h.ReadAll("t");
    REQUIRE(events.size() == 3);
    CHECK(events[0].sequence == 3);
    CHECK(h.Publish("t", "x")->sequence == 6);  // sequences never go back
  }
  SECTION("age") {
    Harness h({60'000, 0, 0});
    REQUIRE(h.Publish("t", "old").ok());
    h.clock.Advance(120s);
    REQUIRE(h.Publish("t", "new").ok());
    h.events->TrimNow();
    REQUIRE(micro::testing::WaitFor([&] { return h.FirstSequence("t") == 2; }, 10s));
    CHECK(h.ReadAll("t").size() == 1);
  }
  SECTION("bytes") {
    Harness h({0, 0, 10'000});
    for (int i = 0; i < 10; ++i) REQUIRE(h.Publish("t", std::string(2000, 'x')).ok());
    h.events->TrimNow();
    REQUIRE(micro::testing::WaitFor([&] { return h.FirstSequence("t") > 1; }, 10s));
    auto topics = h.events->Topics("ns");
    REQUIRE(topics.ok());
    CHECK((*topics)[0].bytes <= 10'000);
    CHECK((*topics)[0].count == h.ReadAll("t").size());
  }
  SECTION("a group behind the trimmed range skips to the first stored event") {
    Harness h({0, 2, 0});
    for (int i = 0; i < 5; ++i) REQUIRE(h.Publish("t", "x").ok());
    h.events->TrimNow();
    REQUIRE(micro::testing::WaitFor([&] { return h.FirstSequence("t") == 4; }, 10s));
    TestConsumer c(*h.events, Sub("t", "g", 1));
    auto e = c.Next();
    REQUIRE(e);
    CHECK(e->sequence == 4);
  }
}

TEST_CASE("a topic's own retention replaces the defaults for it alone and survives a restart",
          "[events][contract]") {
  const bool memory = GENERATE(false, true);
  Harness h({0, 3, 0}, {}, 0, memory);  // the daemon keeps 3 events a topic
  TopicRetention keep_two;
  keep_two.max_events = 2;
  auto configured = h.Configure("two", keep_two);
  REQUIRE(configured.ok());
  CHECK(configured->retention.max_events == 2);
  CHECK(configured->own.max_events == 2);
  CHECK(!configured->own.max_age_ms);
  TopicRetention unbounded;
  unbounded.max_events = 0;  // 0: no bound, not "the default"
  REQUIRE(h.Configure("all", unbounded).ok());
  auto listed = h.Topic("all");  // configured before its first event: listed, empty
  REQUIRE(listed);
  CHECK(listed->count == 0);
  CHECK(listed->first_sequence == 0);

  for (const char* topic : {"two", "all", "default"}) {
    for (int i = 0; i < 6; ++i) REQUIRE(h.Publish(topic, "x").ok());
  }
  h.events->TrimNow();
  REQUIRE(micro::testing::WaitFor(
      [&] { return h.FirstSequence("two") == 5 && h.FirstSequence("default") == 4; }, 10s));
  CHECK(h.ReadAll("two").size() == 2);
  CHECK(h.ReadAll("default").size() == 3);
  CHECK(h.ReadAll("all").size() == 6);

  // Another bound leaves the first one as it was.
  TopicRetention age;
  age.max_age_ms = 60'000;
  auto merged = h.Configure("two", age);
  REQUIRE(merged.ok());
  CHECK(merged->own.max_events == 2);
  CHECK(merged->own.max_age_ms == 60'000);

  h.Reopen();
  auto after = h.Topic("two");
  REQUIRE(after);
  CHECK(after->own.max_events == 2);
  CHECK(after->retention.max_age_ms == 60'000);
  CHECK(after->count == 2);

  // reset: the defaults apply again.
  auto reset = h.Configure("all", {}, /*reset=*/true);
  REQUIRE(reset.ok());
  CHECK(!reset->own.max_events);
  CHECK(reset->retention.max_events == 3);
  h.events->TrimNow();
  REQUIRE(micro::testing::WaitFor([&] { return h.FirstSequence("all") == 4; }, 10s));
}

TEST_CASE("bad retention is INVALID_ARGUMENT and changes nothing", "[events][contract]") {
  Harness h({0, 3, 0});
  TopicRetention negative;
  negative.max_age_ms = -1;
  auto refused = h.Configure("t", negative);
  REQUIRE(refused.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(refused.status().message().find("max_age_ms") != std::string::npos);
  CHECK(h.Configure("bad topic", {}).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(!h.Topic("t"));
}

TEST_CASE("Read is bounded by its limit and by 3 MiB", "[events][contract]") {
  Harness h({0, 0, 0}, {}, 0, /*memory=*/GENERATE(false, true));
  for (int i = 0; i < 5; ++i) REQUIRE(h.Publish("t", std::string(1 << 20, 'x')).ok());
  auto page = h.events->Read("ns", "t", 0, 0);
  REQUIRE(page.ok());
  CHECK(page->size() >= 1);
  CHECK(page->size() <= 3);
  auto limited = h.events->Read("ns", "t", 2, 1);
  REQUIRE(limited.ok());
  REQUIRE(limited->size() == 1);
  CHECK((*limited)[0].sequence == 2);
}

TEST_CASE("CloseConsumers ends every consumer with UNAVAILABLE", "[events][contract]") {
  Harness h({0, 0, 0}, {}, 0, /*memory=*/GENERATE(false, true));
  TestConsumer c(*h.events, Sub("t", "g"));
  h.events->CloseConsumers();
  CHECK(c.consumer->status().code() == absl::StatusCode::kUnavailable);
  CHECK_FALSE(c.consumer->Next());
  TestConsumer late(*h.events, Sub("t", "g"));  // joins after: ended too
  CHECK(late.consumer->status().code() == absl::StatusCode::kUnavailable);
}

TEST_CASE("queued events count against the daemon's stream bytes and are refunded",
          "[events][contract]") {
  Harness h({0, 0, 0}, {}, 0, /*memory=*/GENERATE(false, true));
  {
    TestConsumer c(*h.events, Sub("t", "g", 1));
    REQUIRE(h.Publish("t", std::string(1000, 'x')).ok());
    REQUIRE(micro::testing::WaitFor([&] { return h.stream_bytes.used() >= 1000; }, 10s));
  }
  CHECK(h.stream_bytes.used() == 0);
}

}  // namespace
}  // namespace micro::events::testing

namespace micro::events::testing {
namespace {

TEST_CASE("a spent stream budget holds delivery back until the consumer reads",
          "[events][contract]") {
  Harness h({0, 0, 0}, {}, 0, /*memory=*/GENERATE(false, true));
  h.stream_bytes.set_max(1);  // every queue takes its first event, nothing more
  for (int i = 0; i < 3; ++i) REQUIRE(h.Publish("t", std::string(1000, 'x')).ok());
  TestConsumer c(*h.events, Sub("t", "g", 1));
  REQUIRE(micro::testing::WaitFor([&] { return h.stream_bytes.used() >= 1000; }, 10s));
  std::this_thread::sleep_for(200ms);
  CHECK(h.stream_bytes.used() < 2000);  // one event queued, the others held back
  for (uint64_t sequence = 1; sequence <= 3; ++sequence) {
    auto e = c.Next();
    REQUIRE(e);
    CHECK(e->sequence == sequence);
    c.consumer->Ack(e->id, true);
  }
}

}  // namespace
}  // namespace micro::events::testing
