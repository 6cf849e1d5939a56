#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "core/clock.h"
#include "core/serial_executor.h"
#include "services/store/store.h"
#include "storage/rocks_db.h"

namespace micro::store {
namespace internal {
class StoredRecord;
}

struct RocksDbStoreOptions {
  // Where Snapshot writes; empty: Snapshot is FAILED_PRECONDITION.
  std::string snapshot_dir;
  // Bytes of stored records (RecordBytes: keys, values, metadata) beyond which writes that
  // grow the store are RESOURCE_EXHAUSTED, while deletes and shrinking writes still work.
  // 0: no quota.
  uint64_t quota_bytes = 0;
};

// Records in the daemon's RocksDB, durable once acknowledged.
//
// Layout: family "store" maps `db \0 table \0 key` to a StoredRecord; family "store_ttl" maps
// `expiry (8 bytes, big-endian ms) db \0 table \0 key` to nothing, so the sweeper finds expired
// records in deadline order, with exactly one entry per stored record that has a TTL; the
// default family keeps the revision high-water mark and the bytes of stored records (for the
// quota), both written in the same batch as the records they describe.
//
// Writes go through one committer thread: it checks conditions against the latest state
// (including earlier writes of the same batch), assigns revisions, and commits everything that
// queued up meanwhile as one WriteBatch with a synced WAL. Concurrent writers share that fsync
// (group commit); conditional writes are serialized without per-key locks.
class RocksDbStore final : public Store {
 public:
  static constexpr const char* kRecordsFamily = "store";
  static constexpr const char* kExpiryFamily = "store_ttl";

  using Options = RocksDbStoreOptions;

  // `db` and `clock` must outlive the store. Reads the revision high-water mark and the stored
  // bytes (counting them once, on a database from before the count was kept).
  [[nodiscard]] static Result<std::unique_ptr<RocksDbStore>> Open(storage::RocksDb& db,
                                                                  Clock& clock, Limits limits = {},
                                                                  Options options = {});
  ~RocksDbStore() override;  // commits what is queued, then stops the committer

  Result<Record> Get(const std::string& db, const std::string& table,
                     const std::string& key) override;
  Result<ReadPage> Read(const std::string& db, const std::string& table, const Scan& scan) override;
  void Write(const std::string& db, const std::string& table, Record record, Condition condition,
             WriteDone done) override;
  void Delete(const std::string& db, const std::string& table, const std::string& key,
              DeleteDone done) override;
  Result<std::unique_ptr<KeyCursor>> List(const std::string& db, const std::string& table,
                                          const Scan& scan) override;
  Result<std::vector<std::string>> Databases() override;
  Result<std::vector<std::string>> Tables(const std::string& db) override;
  size_t ExpireRecords() override;
  Result<SnapshotInfo> Snapshot(const std::string& dir) override;
  std::string Alarm() override;
  StoreStats Stats() override;

  // The bytes of stored records the quota counts (expired ones until the sweep removes them).
  uint64_t stored_bytes() const { return stored_bytes_.load(); }

 private:
  struct Op;
  struct Batch;

  RocksDbStore(storage::RocksDb& db, Clock& clock, Limits limits, Options options,
               uint64_t high_water, uint64_t stored_bytes);
  void Submit(Op op);
  void CommitLoop();
  void Commit(std::deque<Op>& ops);
  std::optional<internal::StoredRecord> Current(Batch& batch, const std::string& key);
  void Replace(Batch& batch, const std::string& key,
               const std::optional<internal::StoredRecord>& old,
               std::optional<internal::StoredRecord> next);
  void ApplyExpire(Batch& batch, const Op& op);
  Result<uint64_t> ApplyPut(Batch& batch, Op& op);
  Status CheckQuota(Batch& batch, const Op& op, int64_t growth) const;
  Status Persist(Batch& batch);
  void UpdateAlarm(const Batch& batch, const Status& status);
  void Acknowledge(std::deque<Op> ops, std::vector<Result<uint64_t>> results, Status status);
  uint64_t NextRevision(bool* raise_high_water);
  uint64_t DiskRoom() const;  // free bytes on the data dir's disk beyond the reserve

  storage::RocksDb& rocks_;
  rocksdb::ColumnFamilyHandle* records_;
  rocksdb::ColumnFamilyHandle* expiry_;
  Clock& clock_;
  const Limits limits_;
  const Options options_;

  // Owned by the committer thread.
  uint64_t revision_;
  uint64_t high_water_;
  std::atomic<uint64_t> committed_revision_;
  std::atomic<uint64_t> stored_bytes_;  // as of the last committed batch
  bool write_failed_ = false;           // the last batch failed: try DB::Resume first

  std::mutex alarm_mu_;
  std::string alarm_;  // why writes are refused; empty when they are accepted

  // Acknowledgements run here, so the committer can start the next batch (and its fsync) while
  // gRPC finishes the calls of the previous one. Destroyed after the committer: it drains last.
  SerialExecutor acknowledger_;

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<Op> queue_;
  bool stopping_ = false;
  std::thread committer_;  // last: started once everything above is ready
};

}  // namespace micro::store
