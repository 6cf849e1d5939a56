#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "core/clock.h"
#include "services/store/store.h"

namespace micro::store {

// Records kept in this process's memory: nothing survives a restart. For tests and for
// deployments that want a scratch store; the daemon's default is RocksDbStore.
class MemoryStore final : public Store {
 public:
  // `clock` must outlive the store.
  explicit MemoryStore(Clock& clock, Limits limits = {});

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

 private:
  struct Entry {
    std::string value;
    Metadata metadata;
    uint64_t revision = 0;
    int64_t expires_unix_ms = 0;  // 0: never
  };
  using Table = std::map<std::string, Entry>;

  bool Live(const Entry& entry, int64_t now) const;
  Record ToRecord(const std::string& key, const Entry& entry, int64_t now) const;
  // Calls `visit` on the rows of a table in scan order (prefix-bounded) until it returns false.
  void Visit(const std::string& db, const std::string& table, const Scan& scan,
             const std::function<bool(const std::string&, const Entry&)>& visit);
  std::vector<std::string> Keys(const std::string& db, const std::string& table, const Scan& scan,
                                uint32_t cap);

  Clock& clock_;
  const Limits limits_;
  std::mutex mu_;
  std::map<std::string, std::map<std::string, Table>> databases_;
  uint64_t revision_ = 0;
};

}  // namespace micro::store
