#pragma once

#include <rocksdb/env.h>

#include <catch2/catch.hpp>
#include <future>
#include <memory>
#include <optional>
#include <string>

#include "core/fake_clock.h"
#include "services/events/rocksdb_events.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace micro::events::testing {

using namespace std::chrono_literals;

// A RocksDbEvents on a real RocksDB in a temporary directory, reopenable as after a restart;
// with `memory`, the memory backend: the same engine on RocksDB's in-memory file system (kept
// across Reopen, as it is while a daemon runs). Retention runs only when a test calls TrimNow.
struct Harness {
  explicit Harness(Retention retention = {0, 0, 0}, Limits limits = {},
                   uint64_t disk_reserve_bytes = 0, bool memory = false)
      : retention(retention), limits(limits), disk_reserve_bytes(disk_reserve_bytes) {
    if (memory) env.reset(rocksdb::NewMemEnv(rocksdb::Env::Default()));
    Open();
  }

  void Open() {
    storage::RocksDb::Options db_options{env ? "/memory/db" : dir.path() + "/db",
                                         {RocksDbEvents::kFamily}};
    db_options.env = env.get();
    auto opened = storage::RocksDb::Open(db_options);
    REQUIRE(opened.ok());
    db = std::move(*opened);
    RocksDbEvents::Options options;
    options.retention = retention;
    options.trim_interval = std::chrono::hours(1);
    options.disk_reserve_bytes = disk_reserve_bytes;
    auto made = RocksDbEvents::Open(*db, clock, limits, options, &stream_bytes);
    REQUIRE(made.ok());
    events = std::move(*made);
  }
  void Reopen() {
    events.reset();
    db.reset();
    Open();
  }

  Result<Published> Publish(const std::string& topic, const std::string& payload,
                            const std::string& id = "", Metadata metadata = {}) {
    std::promise<Result<Published>> done;
    events->Publish("ns", topic, payload, std::move(metadata), id,
                    [&](Result<Published> r) { done.set_value(std::move(r)); });
    return done.get_future().get();
  }

  Result<TopicInfo> Configure(const std::string& topic, TopicRetention retention,
                              bool reset = false) {
    std::promise<Result<TopicInfo>> done;
    events->Configure("ns", topic, retention, reset,
                      [&](Result<TopicInfo> r) { done.set_value(std::move(r)); });
    return done.get_future().get();
  }

  std::optional<TopicInfo> Topic(const std::string& topic) {
    auto topics = events->Topics("ns");
    REQUIRE(topics.ok());
    for (const auto& t : *topics) {
      if (t.name == topic) return t;
    }
    return std::nullopt;
  }

  std::vector<Event> ReadAll(const std::string& topic, uint64_t start = 0) {
    auto read = events->Read("ns", topic, start, 0);
    REQUIRE(read.ok());
    return *read;
  }

  uint64_t FirstSequence(const std::string& topic) {
    auto topics = events->Topics("ns");
    REQUIRE(topics.ok());
    for (const auto& t : *topics) {
      if (t.name == topic) return t.first_sequence;
    }
    return 0;
  }

  FakeClock clock;
  micro::testing::TempDir dir;
  Retention retention;
  Limits limits;
  uint64_t disk_reserve_bytes;
  StreamBytes stream_bytes;
  std::unique_ptr<rocksdb::Env> env;  // the memory backend's file system
  std::unique_ptr<storage::RocksDb> db;
  std::unique_ptr<RocksDbEvents> events;
};

// A consumer and a way to wait for its next event.
struct TestConsumer {
  TestConsumer(Events& events, Subscription sub, const std::string& ns = "ns") {
    auto made = events.Consume(ns, sub, [] {});
    REQUIRE(made.ok());
    consumer = std::move(*made);
  }
  // The next event, waiting up to 10 s (the dispatcher runs on its own thread).
  std::optional<Event> Next(std::chrono::milliseconds timeout = 10s) {
    std::optional<Event> event;
    micro::testing::WaitFor([&] { return (event = consumer->Next()).has_value(); }, timeout);
    return event;
  }
  std::unique_ptr<Consumer> consumer;
};

inline Subscription Sub(const std::string& topic, const std::string& group = "",
                        uint64_t start_sequence = 0) {
  Subscription sub;
  sub.topic = topic;
  sub.group = group;
  sub.start_sequence = start_sequence;
  return sub;
}

}  // namespace micro::events::testing
