#include "services/events/make_events.h"

#include <rocksdb/env.h>

#include "services/events/rocksdb_events.h"

namespace micro::events {
namespace {

// The memory backend: the RocksDB engine on a database of its own in RocksDB's in-memory file
// system, so it behaves exactly as the durable one while the daemon runs and keeps nothing.
class MemoryEvents final : public Events {
 public:
  static Result<std::unique_ptr<Events>> Open(const EventsConfig& config, const Clock& clock,
                                              StreamBytes* stream_bytes) {
    std::unique_ptr<MemoryEvents> out(new MemoryEvents());
    out->env_.reset(rocksdb::NewMemEnv(rocksdb::Env::Default()));
    storage::RocksDb::Options db_options{"/micro-events-memory", {RocksDbEvents::kFamily}};
    db_options.env = out->env_.get();
    auto db = storage::RocksDb::Open(db_options);
    if (!db.ok()) return db.status();
    out->db_ = std::move(*db);
    RocksDbEvents::Options options;
    options.retention = config.retention;
    options.disk_reserve_bytes = 0;  // no disk
    auto events = RocksDbEvents::Open(*out->db_, clock, Limits{}, options, stream_bytes);
    if (!events.ok()) return events.status();
    out->events_ = std::move(*events);
    return std::unique_ptr<Events>(std::move(out));
  }

  void Publish(const std::string& ns, const std::string& topic, std::string payload,
               Metadata metadata, const std::string& id, PublishDone done) override {
    events_->Publish(ns, topic, std::move(payload), std::move(metadata), id, std::move(done));
  }
  Result<std::vector<Event>> Read(const std::string& ns, const std::string& topic,
                                  uint64_t start_sequence, uint32_t limit) override {
    return events_->Read(ns, topic, start_sequence, limit);
  }
  Result<std::vector<TopicInfo>> Topics(const std::string& ns) override {
    return events_->Topics(ns);
  }
  Result<std::unique_ptr<Consumer>> Consume(const std::string& ns, const Subscription& subscription,
                                            std::function<void()> notify) override {
    return events_->Consume(ns, subscription, std::move(notify));
  }
  void CloseConsumers() override { events_->CloseConsumers(); }
  EventsStats Stats() override { return events_->Stats(); }
  void Configure(const std::string& ns, const std::string& topic, const TopicRetention& retention,
                 bool reset, ConfigureDone done) override {
    events_->Configure(ns, topic, retention, reset, std::move(done));
  }

 private:
  MemoryEvents() = default;
  // Destroyed in reverse: the engine, then its database, then the file system under it.
  std::unique_ptr<rocksdb::Env> env_;
  std::unique_ptr<storage::RocksDb> db_;
  std::unique_ptr<RocksDbEvents> events_;
};

}  // namespace

Result<std::unique_ptr<Events>> MakeEvents(const EventsConfig& config, storage::RocksDb& db,
                                           const Clock& clock, StreamBytes* stream_bytes) {
  if (config.backend == "rocksdb") {
    RocksDbEvents::Options options;
    options.retention = config.retention;
    auto events = RocksDbEvents::Open(db, clock, Limits{}, options, stream_bytes);
    if (!events.ok()) return events.status();
    return std::unique_ptr<Events>(std::move(*events));
  }
  if (config.backend == "memory") return MemoryEvents::Open(config, clock, stream_bytes);
  return absl::InvalidArgumentError("events.backend '" + config.backend +
                                    "' is not known; valid backends: rocksdb, memory");
}

}  // namespace micro::events
