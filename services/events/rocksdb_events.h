#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "core/clock.h"
#include "core/serial_executor.h"
#include "core/stream_bytes.h"
#include "services/events/dispatcher.h"
#include "services/events/event_log.h"
#include "services/events/events.h"
#include "storage/rocks_db.h"

namespace micro::events {
namespace internal {
class TopicMeta;
}

struct RocksDbEventsOptions {
  Retention retention;
  // How often the trimmer looks for events past retention and expired dedup ids.
  std::chrono::milliseconds trim_interval{1000};
  // Publishes stop while the data dir's file system has less than this free.
  uint64_t disk_reserve_bytes = 64 << 20;
};

// Durable event logs in the daemon's RocksDB, in the column family "events":
//
//   'e' ns \0 topic \0 sequence (8 bytes, big-endian)  -> StoredEvent   one ordered range a topic
//   't' ns \0 topic                                    -> TopicMeta     first/last sequence,
//   counts,
//                                                                     the topic's own retention
//   'g' ns \0 topic \0 group                           -> position (8 bytes, big-endian)
//   'd' ns \0 topic \0 id                              -> DedupEntry    client ids in the window
//   'x' time (8 bytes) ns \0 topic \0 id               -> ""            dedup ids by expiry
//
// Writes go through one committer thread that batches everything queued meanwhile into one
// WriteBatch with a synced WAL (group commit, as the store): events, their topic's counters and
// dedup entries land together, so sequences never repeat after a crash and an acknowledged
// event is on disk. A trimmer thread applies retention; the Dispatcher delivers to consumers.
class RocksDbEvents final : public Events, private EventLog {
 public:
  static constexpr const char* kFamily = "events";
  using Options = RocksDbEventsOptions;

  // `db`, `clock` and `stream_bytes` (nullable) must outlive the result.
  [[nodiscard]] static Result<std::unique_ptr<RocksDbEvents>> Open(
      storage::RocksDb& db, const Clock& clock, Limits limits = {}, Options options = {},
      StreamBytes* stream_bytes = nullptr);
  // Ends the consumers (which must be destroyed before this), commits what is queued, stops.
  ~RocksDbEvents() override;

  void Publish(const std::string& ns, const std::string& topic, std::string payload,
               Metadata metadata, const std::string& id, PublishDone done) override;
  Result<std::vector<Event>> Read(const std::string& ns, const std::string& topic,
                                  uint64_t start_sequence, uint32_t limit) override;
  Result<std::vector<TopicInfo>> Topics(const std::string& ns) override;
  Result<std::unique_ptr<Consumer>> Consume(const std::string& ns, const Subscription& subscription,
                                            std::function<void()> notify) override;
  void CloseConsumers() override;
  EventsStats Stats() override;
  void Configure(const std::string& ns, const std::string& topic, const TopicRetention& retention,
                 bool reset, ConfigureDone done) override;

  // One retention pass now (the trimmer runs it every trim_interval). For tests.
  void TrimNow();

 private:
  struct Op;
  struct Batch;

  RocksDbEvents(storage::RocksDb& db, const Clock& clock, Limits limits, Options options,
                StreamBytes* stream_bytes);

  // EventLog, for the dispatcher.
  Result<Bounds> TopicBounds(const std::string& ns, const std::string& topic) override;
  Result<std::optional<Event>> ReadOne(const std::string& ns, const std::string& topic,
                                       uint64_t sequence) override;
  Result<std::optional<uint64_t>> LoadPosition(const std::string& ns, const std::string& topic,
                                               const std::string& group) override;
  void StorePosition(const std::string& ns, const std::string& topic, const std::string& group,
                     uint64_t position) override;
  void Append(const std::string& ns, const std::string& topic, std::string payload,
              Metadata metadata, std::function<void(Result<Published>)> done) override;

  void Submit(Op op);
  void Flush();  // waits until everything queued before is committed and answered
  void CommitLoop();
  void Commit(std::deque<Op>& ops);
  Result<Published> ApplyPublish(Batch& batch, Op& op);
  void ApplyTrim(Batch& batch, const Op& op);
  void ApplyDedupExpiry(Batch& batch, const Op& op);
  void ApplyPosition(Batch& batch, const Op& op);
  Result<TopicInfo> ApplyConfigure(Batch& batch, const Op& op);
  internal::TopicMeta& Meta(Batch& batch, const std::string& topic_key);
  void TrimLoop();
  void TrimTopic(const std::string& topic_key, const internal::TopicMeta& meta, int64_t now);
  TopicInfo Info(const std::string& name, const internal::TopicMeta& meta) const;
  void ExpireDedup(int64_t now);

  storage::RocksDb& rocks_;
  rocksdb::ColumnFamilyHandle* family_;
  const Clock& clock_;
  const Limits limits_;
  const Options options_;

  // Owned by the committer thread: the counters of the topics it wrote, as committed.
  std::unordered_map<std::string, std::unique_ptr<internal::TopicMeta>> metas_;

  std::atomic<uint64_t> published_{0};  // events committed since Open

  // Acknowledgements run here, so the committer starts the next fsync meanwhile.
  std::unique_ptr<SerialExecutor> acknowledger_ = std::make_unique<SerialExecutor>("events-ack");

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<Op> queue_;
  bool stopping_ = false;
  std::thread committer_;

  std::mutex trim_mu_;
  std::condition_variable trim_cv_;
  bool trim_stopping_ = false;
  std::thread trimmer_;

  std::unique_ptr<Dispatcher> dispatcher_;  // after the committer: destroyed before it
};

}  // namespace micro::events
