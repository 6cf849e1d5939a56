#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "core/clock.h"
#include "core/serial_executor.h"
#include "services/store/store.h"
#include "storage/rocks_db.h"

namespace micro::store {

// Records in the daemon's RocksDB, durable once acknowledged.
//
// Layout: family "store" maps `db \0 table \0 key` to a StoredRecord; family "store_ttl" maps
// `expiry (8 bytes, big-endian ms) db \0 table \0 key` to nothing, so the sweeper finds expired
// records in deadline order; the default family keeps the revision high-water mark.
//
// Writes go through one committer thread: it checks conditions against the latest state
// (including earlier writes of the same batch), assigns revisions, and commits everything that
// queued up meanwhile as one WriteBatch with a synced WAL. Concurrent writers share that fsync
// (group commit); conditional writes are serialized without per-key locks.
class RocksDbStore final : public Store {
 public:
  static constexpr const char* kRecordsFamily = "store";
  static constexpr const char* kExpiryFamily = "store_ttl";

  // `db` and `clock` must outlive the store. Reads the revision high-water mark.
  [[nodiscard]] static Result<std::unique_ptr<RocksDbStore>> Open(storage::RocksDb& db,
                                                                  Clock& clock, Limits limits = {});
  ~RocksDbStore() override;  // commits what is queued, then stops the committer

  Result<Record> Get(const std::string& db, const std::string& table,
                     const std::string& key) override;
  Result<std::vector<Record>> Read(const std::string& db, const std::string& table,
                                   const Scan& scan) override;
  void Write(const std::string& db, const std::string& table, Record record, Condition condition,
             WriteDone done) override;
  void Delete(const std::string& db, const std::string& table, const std::string& key,
              DeleteDone done) override;
  Result<std::unique_ptr<KeyCursor>> List(const std::string& db, const std::string& table,
                                          const Scan& scan) override;
  Result<std::vector<std::string>> Databases() override;
  Result<std::vector<std::string>> Tables(const std::string& db) override;
  size_t ExpireRecords() override;
  Result<uint64_t> Snapshot(const std::string& dir) override;

 private:
  struct Op;

  RocksDbStore(storage::RocksDb& db, Clock& clock, Limits limits, uint64_t high_water);
  void Submit(Op op);
  void CommitLoop();
  void Commit(std::deque<Op>& ops);
  uint64_t NextRevision(bool* raise_high_water);

  storage::RocksDb& rocks_;
  rocksdb::ColumnFamilyHandle* records_;
  rocksdb::ColumnFamilyHandle* expiry_;
  Clock& clock_;
  const Limits limits_;

  // Owned by the committer thread.
  uint64_t revision_;
  uint64_t high_water_;
  std::atomic<uint64_t> committed_revision_;

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
