#include "services/events/rocksdb_events.h"

#include <fmt/format.h>
#include <pthread.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <future>
#include <random>
#include <unordered_set>

#include "micro/events/internal/stored_event.pb.h"

namespace micro::events {
namespace {

using internal::DedupEntry;
using internal::StoredEvent;
using internal::TopicMeta;

constexpr size_t kMaxOpsPerBatch = 4096;
constexpr size_t kTrimEventsPerPass = 10000;  // per topic and pass: a pass stays short
constexpr size_t kDedupExpiriesPerPass = 10000;
constexpr size_t kMaxTopicsListed = 10000;
constexpr size_t kMaxCachedTopics = 100000;  // the committer's topic counters kept in memory

std::string U64(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i, v >>= 8) out[static_cast<size_t>(i)] = static_cast<char>(v & 0xff);
  return out;
}

uint64_t DecodeU64(const char* p) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

std::string TopicKey(const std::string& ns, const std::string& topic) {
  return ns + std::string(1, '\0') + topic;
}
std::string EventPrefix(const std::string& topic_key) {
  return "e" + topic_key + std::string(1, '\0');
}
std::string EventKey(const std::string& topic_key, uint64_t sequence) {
  return EventPrefix(topic_key) + U64(sequence);
}
std::string MetaKey(const std::string& topic_key) { return "t" + topic_key; }
std::string GroupKey(const std::string& topic_key, const std::string& group) {
  return "g" + topic_key + std::string(1, '\0') + group;
}
std::string DedupKey(const std::string& topic_key, const std::string& id) {
  return "d" + topic_key + std::string(1, '\0') + id;
}
std::string ExpiryKey(int64_t unix_ms, const std::string& topic_key, const std::string& id) {
  return "x" + U64(static_cast<uint64_t>(unix_ms)) + topic_key + std::string(1, '\0') + id;
}

std::pair<std::string, std::string> SplitTopicKey(const std::string& topic_key) {
  const size_t zero = topic_key.find('\0');
  return {topic_key.substr(0, zero), topic_key.substr(zero + 1)};
}

std::string NewId() {
  thread_local std::mt19937_64 random{std::random_device{}()};
  return fmt::format("{:016x}{:016x}", random(), random());
}

bool StartsWith(const rocksdb::Slice& key, const std::string& prefix) {
  return key.size() >= prefix.size() && std::memcmp(key.data(), prefix.data(), prefix.size()) == 0;
}

Event ToEvent(const std::string& topic, uint64_t sequence, StoredEvent&& stored) {
  Event event;
  event.id = std::move(*stored.mutable_id());
  event.topic = topic;
  event.sequence = sequence;
  event.payload = std::move(*stored.mutable_payload());
  for (auto& [k, v] : stored.metadata()) event.metadata[k] = v;
  event.timestamp_unix_ms = stored.timestamp_unix_ms();
  return event;
}

internal::TopicRetention ToStored(const TopicRetention& in) {
  internal::TopicRetention out;
  if (in.max_age_ms) out.set_max_age_ms(*in.max_age_ms);
  if (in.max_events) out.set_max_events(*in.max_events);
  if (in.max_bytes) out.set_max_bytes(*in.max_bytes);
  return out;
}

TopicRetention FromStored(const internal::TopicRetention& in) {
  TopicRetention out;
  if (in.has_max_age_ms()) out.max_age_ms = in.max_age_ms();
  if (in.has_max_events()) out.max_events = in.max_events();
  if (in.has_max_bytes()) out.max_bytes = in.max_bytes();
  return out;
}

}  // namespace

struct RocksDbEvents::Op {
  // kFlush writes nothing: its answer says every op before it is committed and answered.
  enum class Kind {
    kPublish,
    kTrim,
    kDedupExpiry,
    kPosition,
    kConfigure,
    kFlush
  } kind = Kind::kPublish;
  std::string topic_key;
  // kPublish
  std::string payload;
  Metadata metadata;
  std::string id;
  PublishDone done;
  // kTrim
  uint64_t expected_first = 0;
  uint64_t new_first = 0;
  uint64_t removed_count = 0;
  uint64_t removed_bytes = 0;
  // kDedupExpiry
  std::vector<std::string> expiry_keys;
  // kPosition
  std::string key;
  uint64_t position = 0;
  // kConfigure
  internal::TopicRetention retention;
  bool reset = false;
  ConfigureDone configured;
};

struct RocksDbEvents::Batch {
  int64_t now = 0;
  bool disk_low = false;
  rocksdb::WriteBatch writes;
  std::unordered_map<std::string, TopicMeta> metas;     // topics this batch changes
  std::unordered_map<std::string, uint64_t> dedup;      // ids this batch stores
  std::unordered_map<std::string, uint64_t> positions;  // group positions this batch stores
  std::unordered_set<std::string> appended, trimmed;    // topic keys
};

Result<std::unique_ptr<RocksDbEvents>> RocksDbEvents::Open(storage::RocksDb& db, const Clock& clock,
                                                           Limits limits, Options options,
                                                           StreamBytes* stream_bytes) {
  return std::unique_ptr<RocksDbEvents>(
      new RocksDbEvents(db, clock, limits, std::move(options), stream_bytes));
}

RocksDbEvents::RocksDbEvents(storage::RocksDb& db, const Clock& clock, Limits limits,
                             Options options, StreamBytes* stream_bytes)
    : rocks_(db),
      family_(db.family(kFamily)),
      clock_(clock),
      limits_(limits),
      options_(std::move(options)) {
  EventLog& log = *this;  // the private base, converted here where it is accessible
  dispatcher_ = std::make_unique<Dispatcher>(log, clock_, limits_, stream_bytes);
  committer_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "events-commit");
    CommitLoop();
  });
  trimmer_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "events-trim");
    TrimLoop();
  });
}

RocksDbEvents::~RocksDbEvents() {
  {
    std::lock_guard lock(trim_mu_);
    trim_stopping_ = true;
  }
  trim_cv_.notify_one();
  trimmer_.join();
  dispatcher_->Stop();  // stores the groups' positions through the committer
  // An acknowledgement may store a position in turn (a dead letter done): the second flush
  // commits what the first one's acknowledgements queued.
  Flush();
  Flush();
  {
    std::lock_guard lock(queue_mu_);
    stopping_ = true;
  }
  queue_cv_.notify_one();
  committer_.join();
  acknowledger_.reset();  // runs the last acknowledgements, which may call the dispatcher
  dispatcher_.reset();
}

void RocksDbEvents::Publish(const std::string& ns, const std::string& topic, std::string payload,
                            Metadata metadata, const std::string& id, PublishDone done) {
  if (Status s = CheckPublish(topic, payload, metadata, id, limits_); !s.ok()) return done(s);
  Op op;
  op.kind = Op::Kind::kPublish;
  op.topic_key = TopicKey(ns, topic);
  op.payload = std::move(payload);
  op.metadata = std::move(metadata);
  op.id = id;
  op.done = std::move(done);
  Submit(std::move(op));
}

void RocksDbEvents::Append(const std::string& ns, const std::string& topic, std::string payload,
                           Metadata metadata, std::function<void(Result<Published>)> done) {
  Publish(ns, topic, std::move(payload), std::move(metadata), "", std::move(done));
}

void RocksDbEvents::StorePosition(const std::string& ns, const std::string& topic,
                                  const std::string& group, uint64_t position) {
  Op op;
  op.kind = Op::Kind::kPosition;
  op.topic_key = TopicKey(ns, topic);
  op.key = GroupKey(op.topic_key, group);
  op.position = position;
  Submit(std::move(op));
}

void RocksDbEvents::Configure(const std::string& ns, const std::string& topic,
                              const TopicRetention& retention, bool reset, ConfigureDone done) {
  if (Status s = CheckTopic(topic, limits_); !s.ok()) return done(s);
  if (Status s = CheckRetention(retention); !s.ok()) return done(s);
  Op op;
  op.kind = Op::Kind::kConfigure;
  op.topic_key = TopicKey(ns, topic);
  op.retention = ToStored(retention);
  op.reset = reset;
  op.configured = std::move(done);
  Submit(std::move(op));
}

void RocksDbEvents::Flush() {
  std::promise<void> done;
  Op op;
  op.kind = Op::Kind::kFlush;
  op.done = [&done](Result<Published>) { done.set_value(); };
  Submit(std::move(op));
  done.get_future().wait();
}

void RocksDbEvents::Submit(Op op) {
  {
    std::lock_guard lock(queue_mu_);
    if (!stopping_) {
      queue_.push_back(std::move(op));
      queue_cv_.notify_one();
      return;
    }
  }
  const Status stopping = absl::UnavailableError("the events service is stopping");
  if (op.done) op.done(stopping);
  if (op.configured) op.configured(stopping);
}

void RocksDbEvents::CommitLoop() {
  for (;;) {
    std::deque<Op> ops;
    {
      std::unique_lock lock(queue_mu_);
      queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      while (!queue_.empty() && ops.size() < kMaxOpsPerBatch) {
        ops.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    Commit(ops);
  }
}

// One WriteBatch for everything queued, one synced WAL append, then each op's answer.
void RocksDbEvents::Commit(std::deque<Op>& ops) {
  Batch batch;
  batch.now = clock_.UnixMillis();
  batch.disk_low =
      options_.disk_reserve_bytes != 0 && rocks_.Space().free_bytes < options_.disk_reserve_bytes;
  std::vector<Result<Published>> results(ops.size(), Published{});
  std::vector<Result<TopicInfo>> configured(ops.size(), TopicInfo{});
  for (size_t i = 0; i < ops.size(); ++i) {
    switch (ops[i].kind) {
      case Op::Kind::kPublish:
        results[i] = ApplyPublish(batch, ops[i]);
        break;
      case Op::Kind::kTrim:
        ApplyTrim(batch, ops[i]);
        break;
      case Op::Kind::kDedupExpiry:
        ApplyDedupExpiry(batch, ops[i]);
        break;
      case Op::Kind::kPosition:
        ApplyPosition(batch, ops[i]);
        break;
      case Op::Kind::kConfigure:
        configured[i] = ApplyConfigure(batch, ops[i]);
        break;
      case Op::Kind::kFlush:
        break;
    }
  }
  for (const auto& [topic_key, meta] : batch.metas) {
    batch.writes.Put(family_, MetaKey(topic_key), meta.SerializeAsString());
  }
  Status status;
  if (batch.writes.Count() != 0) {
    rocksdb::WriteOptions options;
    options.sync = true;  // acknowledged means on disk
    status = storage::FromRocks(rocks_.db().Write(options, &batch.writes), "events write failed");
  }
  if (status.ok()) {
    uint64_t published = 0;
    for (size_t i = 0; i < ops.size(); ++i) {
      published += ops[i].kind == Op::Kind::kPublish && results[i].ok() && !results[i]->duplicate;
    }
    if (published != 0) published_.fetch_add(published, std::memory_order_relaxed);
    // A cache: a flood of topics must not grow it without bound; a miss reads the database.
    if (metas_.size() > kMaxCachedTopics) metas_.clear();
    for (auto& [topic_key, meta] : batch.metas) {
      auto& cached = metas_[topic_key];
      if (!cached) cached = std::make_unique<TopicMeta>();
      *cached = meta;
      auto [ns, topic] = SplitTopicKey(topic_key);
      if (batch.appended.count(topic_key) != 0)
        dispatcher_->Appended(ns, topic, meta.last_sequence());
      if (batch.trimmed.count(topic_key) != 0)
        dispatcher_->Trimmed(ns, topic, meta.first_sequence());
    }
  } else {
    spdlog::error("events: {}", std::string(status.message()));
  }
  acknowledger_->Submit([ops = std::move(ops), results = std::move(results),
                         configured = std::move(configured), status]() mutable {
    for (size_t i = 0; i < ops.size(); ++i) {
      if (ops[i].done) ops[i].done(status.ok() ? std::move(results[i]) : Result<Published>(status));
      if (ops[i].configured) {
        ops[i].configured(status.ok() ? std::move(configured[i]) : Result<TopicInfo>(status));
      }
    }
  });
}

// The topic's counters as this batch leaves them (a copy until the batch commits).
TopicMeta& RocksDbEvents::Meta(Batch& batch, const std::string& topic_key) {
  if (auto it = batch.metas.find(topic_key); it != batch.metas.end()) return it->second;
  TopicMeta meta;
  if (auto it = metas_.find(topic_key); it != metas_.end()) {
    meta = *it->second;
  } else {
    std::string value;
    rocksdb::Status s =
        rocks_.db().Get(rocksdb::ReadOptions(), family_, MetaKey(topic_key), &value);
    if (!s.ok() || !meta.ParseFromString(value)) {
      meta.Clear();
      meta.set_first_sequence(1);
    }
  }
  return batch.metas.emplace(topic_key, std::move(meta)).first->second;
}

Result<Published> RocksDbEvents::ApplyPublish(Batch& batch, Op& op) {
  if (!op.id.empty()) {
    const std::string dedup_key = DedupKey(op.topic_key, op.id);
    if (auto it = batch.dedup.find(dedup_key); it != batch.dedup.end()) {
      return Published{op.id, it->second, true};
    }
    std::string value;
    DedupEntry entry;
    if (rocks_.db().Get(rocksdb::ReadOptions(), family_, dedup_key, &value).ok() &&
        entry.ParseFromString(value) &&
        entry.timestamp_unix_ms() >= batch.now - limits_.dedup_window_ms) {
      return Published{op.id, entry.sequence(), true};
    }
  }
  if (batch.disk_low) {
    return absl::ResourceExhaustedError(fmt::format(
        "the data dir's disk is nearly full: publishing stops while it has less than {} bytes "
        "free; free space there (publishing resumes by itself)",
        options_.disk_reserve_bytes));
  }
  TopicMeta& meta = Meta(batch, op.topic_key);
  const uint64_t sequence = meta.last_sequence() + 1;
  const int64_t timestamp = std::max(batch.now, meta.last_timestamp_unix_ms());
  StoredEvent stored;
  const std::string id = op.id.empty() ? NewId() : op.id;
  stored.set_id(id);
  stored.set_payload(std::move(op.payload));
  for (auto& [k, v] : op.metadata) (*stored.mutable_metadata())[k] = v;
  stored.set_timestamp_unix_ms(timestamp);
  const std::string key = EventKey(op.topic_key, sequence);
  const std::string value = stored.SerializeAsString();
  batch.writes.Put(family_, key, value);
  if (meta.count() == 0) meta.set_first_sequence(sequence);
  meta.set_last_sequence(sequence);
  meta.set_count(meta.count() + 1);
  meta.set_bytes(meta.bytes() + key.size() + value.size());
  meta.set_last_timestamp_unix_ms(timestamp);
  if (!op.id.empty()) {
    DedupEntry entry;
    entry.set_sequence(sequence);
    entry.set_timestamp_unix_ms(timestamp);
    const std::string dedup_key = DedupKey(op.topic_key, op.id);
    batch.writes.Put(family_, dedup_key, entry.SerializeAsString());
    batch.writes.Put(family_, ExpiryKey(timestamp, op.topic_key, op.id), rocksdb::Slice());
    batch.dedup[dedup_key] = sequence;
  }
  batch.appended.insert(op.topic_key);
  return Published{id, sequence, false};
}

// Drops the oldest events the trimmer chose, unless the topic changed at its front since.
void RocksDbEvents::ApplyTrim(Batch& batch, const Op& op) {
  TopicMeta& meta = Meta(batch, op.topic_key);
  if (meta.first_sequence() != op.expected_first || op.new_first > meta.last_sequence() + 1) {
    return;
  }
  for (uint64_t s = op.expected_first; s < op.new_first; ++s) {
    batch.writes.Delete(family_, EventKey(op.topic_key, s));
  }
  meta.set_first_sequence(op.new_first);
  meta.set_count(meta.count() - std::min(meta.count(), op.removed_count));
  meta.set_bytes(meta.bytes() - std::min(meta.bytes(), op.removed_bytes));
  batch.trimmed.insert(op.topic_key);
}

// Forgets dedup ids past the window; an id published again since keeps its newer entry.
void RocksDbEvents::ApplyDedupExpiry(Batch& batch, const Op& op) {
  for (const std::string& expiry_key : op.expiry_keys) {
    batch.writes.Delete(family_, expiry_key);
    const int64_t stamp = static_cast<int64_t>(DecodeU64(expiry_key.data() + 1));
    const std::string dedup_key = "d" + expiry_key.substr(9);
    if (batch.dedup.count(dedup_key) != 0) continue;
    std::string value;
    DedupEntry entry;
    if (rocks_.db().Get(rocksdb::ReadOptions(), family_, dedup_key, &value).ok() &&
        entry.ParseFromString(value) && entry.timestamp_unix_ms() == stamp) {
      batch.writes.Delete(family_, dedup_key);
    }
  }
}

// A group's position only moves forward, whatever order positions arrive in.
void RocksDbEvents::ApplyPosition(Batch& batch, const Op& op) {
  uint64_t current = 0;
  if (auto it = batch.positions.find(op.key); it != batch.positions.end()) {
    current = it->second;
  } else {
    std::string value;
    if (rocks_.db().Get(rocksdb::ReadOptions(), family_, op.key, &value).ok() &&
        value.size() == 8) {
      current = DecodeU64(value.data());
    }
  }
  if (op.position <= current && current != 0) return;
  batch.writes.Put(family_, op.key, U64(op.position));
  batch.positions[op.key] = op.position;
}

// Sets the topic's own retention in its counters' record (creating the topic if it has none).
Result<TopicInfo> RocksDbEvents::ApplyConfigure(Batch& batch, const Op& op) {
  if (batch.disk_low) {
    return absl::ResourceExhaustedError(fmt::format(
        "the data dir's disk is nearly full: changes stop while it has less than {} bytes free",
        options_.disk_reserve_bytes));
  }
  TopicMeta& meta = Meta(batch, op.topic_key);
  internal::TopicRetention* own = meta.mutable_retention();
  if (op.reset) own->Clear();
  own->MergeFrom(op.retention);
  return Info(SplitTopicKey(op.topic_key).second, meta);
}

TopicInfo RocksDbEvents::Info(const std::string& name, const TopicMeta& meta) const {
  TopicInfo info;
  info.name = name;
  info.count = meta.count();
  info.bytes = meta.bytes();
  info.last_sequence = meta.last_sequence();
  info.first_sequence = meta.count() == 0 ? 0 : meta.first_sequence();
  info.own = FromStored(meta.retention());
  info.retention = Effective(options_.retention, info.own);
  return info;
}

Result<std::vector<Event>> RocksDbEvents::Read(const std::string& ns, const std::string& topic,
                                               uint64_t start_sequence, uint32_t limit) {
  if (Status s = CheckTopic(topic, limits_); !s.ok()) return s;
  if (limit == 0 || limit > limits_.max_read_events) limit = limits_.max_read_events;
  const std::string topic_key = TopicKey(ns, topic);
  const std::string prefix = EventPrefix(topic_key);
  std::vector<Event> out;
  size_t bytes = 0;
  std::unique_ptr<rocksdb::Iterator> it(rocks_.db().NewIterator(rocksdb::ReadOptions(), family_));
  StoredEvent stored;
  for (it->Seek(EventKey(topic_key, std::max<uint64_t>(start_sequence, 1)));
       it->Valid() && StartsWith(it->key(), prefix) && out.size() < limit; it->Next()) {
    if (!out.empty() && bytes + it->value().size() > limits_.max_read_bytes) break;
    bytes += it->value().size();
    if (!stored.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) continue;
    out.push_back(ToEvent(topic, DecodeU64(it->key().data() + prefix.size()), std::move(stored)));
  }
  if (Status s = storage::FromRocks(it->status(), "reading events failed"); !s.ok()) return s;
  return out;
}

Result<std::vector<TopicInfo>> RocksDbEvents::Topics(const std::string& ns) {
  const std::string prefix = "t" + ns + std::string(1, '\0');
  std::vector<TopicInfo> out;
  std::unique_ptr<rocksdb::Iterator> it(rocks_.db().NewIterator(rocksdb::ReadOptions(), family_));
  TopicMeta meta;
  for (it->Seek(prefix);
       it->Valid() && StartsWith(it->key(), prefix) && out.size() < kMaxTopicsListed; it->Next()) {
    if (!meta.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) continue;
    out.push_back(Info(it->key().ToString().substr(prefix.size()), meta));
  }
  if (Status s = storage::FromRocks(it->status(), "listing topics failed"); !s.ok()) return s;
  return out;
}

Result<std::unique_ptr<Consumer>> RocksDbEvents::Consume(const std::string& ns,
                                                         const Subscription& subscription,
                                                         std::function<void()> notify) {
  if (Status s = CheckSubscription(subscription, limits_); !s.ok()) return s;
  return dispatcher_->Join(ns, subscription, std::move(notify));
}

void RocksDbEvents::CloseConsumers() { dispatcher_->CloseAll(); }

EventsStats RocksDbEvents::Stats() {
  EventsStats stats;
  stats.published = published_.load(std::memory_order_relaxed);
  stats.groups = dispatcher_->groups();
  stats.consumers = dispatcher_->consumers();
  // A property RocksDB keeps in memory: no read of the files.
  (void)rocks_.db().GetIntProperty(family_, rocksdb::DB::Properties::kTotalSstFilesSize,
                                   &stats.disk_bytes);
  return stats;
}

Result<EventLog::Bounds> RocksDbEvents::TopicBounds(const std::string& ns,
                                                    const std::string& topic) {
  std::string value;
  rocksdb::Status s =
      rocks_.db().Get(rocksdb::ReadOptions(), family_, MetaKey(TopicKey(ns, topic)), &value);
  Bounds bounds;
  if (s.IsNotFound()) return bounds;
  if (!s.ok()) return storage::FromRocks(s, "reading a topic failed");
  TopicMeta meta;
  if (!meta.ParseFromString(value)) return absl::InternalError("a topic's counters are corrupt");
  bounds.last = meta.last_sequence();
  bounds.first = meta.count() == 0 ? meta.last_sequence() + 1 : meta.first_sequence();
  return bounds;
}

Result<std::optional<Event>> RocksDbEvents::ReadOne(const std::string& ns, const std::string& topic,
                                                    uint64_t sequence) {
  std::string value;
  rocksdb::Status s = rocks_.db().Get(rocksdb::ReadOptions(), family_,
                                      EventKey(TopicKey(ns, topic), sequence), &value);
  if (s.IsNotFound()) return std::optional<Event>();
  if (!s.ok()) return storage::FromRocks(s, "reading an event failed");
  StoredEvent stored;
  if (!stored.ParseFromString(value)) return absl::InternalError("a stored event is corrupt");
  return std::optional<Event>(ToEvent(topic, sequence, std::move(stored)));
}

Result<std::optional<uint64_t>> RocksDbEvents::LoadPosition(const std::string& ns,
                                                            const std::string& topic,
                                                            const std::string& group) {
  std::string value;
  rocksdb::Status s = rocks_.db().Get(rocksdb::ReadOptions(), family_,
                                      GroupKey(TopicKey(ns, topic), group), &value);
  if (s.IsNotFound()) return std::optional<uint64_t>();
  if (!s.ok()) return storage::FromRocks(s, "reading a group's position failed");
  if (value.size() != 8) return absl::InternalError("a group's stored position is corrupt");
  return std::optional<uint64_t>(DecodeU64(value.data()));
}

void RocksDbEvents::TrimLoop() {
  std::unique_lock lock(trim_mu_);
  while (!trim_stopping_) {
    trim_cv_.wait_for(lock, options_.trim_interval, [&] { return trim_stopping_; });
    if (trim_stopping_) break;
    lock.unlock();
    TrimNow();
    lock.lock();
  }
}

void RocksDbEvents::TrimNow() {
  const int64_t now = clock_.UnixMillis();
  std::unique_ptr<rocksdb::Iterator> it(rocks_.db().NewIterator(rocksdb::ReadOptions(), family_));
  TopicMeta meta;
  for (it->Seek("t"); it->Valid() && it->key().starts_with("t"); it->Next()) {
    if (!meta.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) continue;
    TrimTopic(it->key().ToString().substr(1), meta, now);
  }
  ExpireDedup(now);
}

// Queues the removal of the topic's oldest events that are past a retention bound.
void RocksDbEvents::TrimTopic(const std::string& topic_key, const TopicMeta& meta, int64_t now) {
  if (meta.count() == 0) return;
  const Retention r = Effective(options_.retention, FromStored(meta.retention()));
  if (r.max_age_ms == 0 && r.max_events == 0 && r.max_bytes == 0) return;
  const uint64_t over_count =
      r.max_events != 0 && meta.count() > r.max_events ? meta.count() - r.max_events : 0;
  const bool over_bytes = r.max_bytes != 0 && meta.bytes() > r.max_bytes;
  const std::string prefix = EventPrefix(topic_key);
  std::unique_ptr<rocksdb::Iterator> it(rocks_.db().NewIterator(rocksdb::ReadOptions(), family_));
  uint64_t removed = 0, bytes = 0, next = meta.first_sequence();
  StoredEvent stored;
  for (it->Seek(EventKey(topic_key, meta.first_sequence()));
       it->Valid() && StartsWith(it->key(), prefix) && removed < kTrimEventsPerPass; it->Next()) {
    bool drop = removed < over_count || (over_bytes && meta.bytes() - bytes > r.max_bytes);
    if (!drop && r.max_age_ms != 0) {
      drop = stored.ParseFromArray(it->value().data(), static_cast<int>(it->value().size())) &&
             stored.timestamp_unix_ms() < now - r.max_age_ms;
    }
    if (!drop) break;
    ++removed;
    bytes += it->key().size() + it->value().size();
    next = DecodeU64(it->key().data() + prefix.size()) + 1;
  }
  if (removed == 0) return;
  Op op;
  op.kind = Op::Kind::kTrim;
  op.topic_key = topic_key;
  op.expected_first = meta.first_sequence();
  op.new_first = next;
  op.removed_count = removed;
  op.removed_bytes = bytes;
  Submit(std::move(op));
}

void RocksDbEvents::ExpireDedup(int64_t now) {
  const uint64_t before =
      static_cast<uint64_t>(std::max<int64_t>(0, now - limits_.dedup_window_ms));
  Op op;
  op.kind = Op::Kind::kDedupExpiry;
  std::unique_ptr<rocksdb::Iterator> it(rocks_.db().NewIterator(rocksdb::ReadOptions(), family_));
  for (it->Seek("x"); it->Valid() && it->key().starts_with("x") && it->key().size() > 9 &&
                      op.expiry_keys.size() < kDedupExpiriesPerPass;
       it->Next()) {
    if (DecodeU64(it->key().data() + 1) >= before) break;
    op.expiry_keys.push_back(it->key().ToString());
  }
  if (!op.expiry_keys.empty()) Submit(std::move(op));
}

}  // namespace micro::events
