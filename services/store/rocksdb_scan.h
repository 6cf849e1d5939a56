#pragma once

// The read side of RocksDbStore: records as stored, and walking the keys of one table. Internal
// to the store's RocksDB backend.
#include <rocksdb/db.h>

#include <memory>
#include <string>

#include "micro/store/internal/stored_record.pb.h"
#include "services/store/store.h"
#include "services/store/validation.h"
#include "storage/rocks_db.h"

namespace micro::store {

using internal::StoredRecord;

// Whether a stored record has not expired at `now` (Unix ms).
inline bool Live(const StoredRecord& r, int64_t now) {
  return r.expires_unix_ms() == 0 || r.expires_unix_ms() > now;
}

inline Record ToRecord(std::string key, const StoredRecord& r, int64_t now) {
  return Record{std::move(key), r.value(), SecondsLeft(r.expires_unix_ms(), now),
                Metadata(r.metadata().begin(), r.metadata().end()), r.revision()};
}

// RecordBytes of a stored record under `key`.
inline size_t StoredBytes(const std::string& key, const StoredRecord& r) {
  size_t bytes = key.size() + r.value().size();
  for (const auto& [k, v] : r.metadata()) bytes += k.size() + v.size();
  return bytes;
}

// Walks the keys of one table in scan order, skipping dead records and applying the offset.
// `Next` steps over at most as many keys as its PageBudget allows.
class TableWalker {
 public:
  TableWalker(rocksdb::DB& db, rocksdb::ColumnFamilyHandle* family, const std::string& location,
              const Scan& scan, int64_t now)
      : location_(location),
        full_prefix_(location + scan.prefix),
        scan_(scan),
        now_(now),
        it_(db.NewIterator(rocksdb::ReadOptions(), family)) {
    if (scan.order == Order::kAsc) {
      it_->Seek(full_prefix_);
    } else {
      it_->SeekForPrev(PrefixEnd(full_prefix_));
    }
  }

  // The next live record in range: key without location, and the record. False at the end
  // (at_end()), or once `budget` refuses another step.
  bool Next(std::string* key, StoredRecord* record, PageBudget& budget) {
    for (; it_->Valid(); Step()) {
      if (!it_->key().starts_with(full_prefix_)) {
        if (scan_.order == Order::kDesc && it_->key().compare(full_prefix_) > 0) continue;
        break;
      }
      if (!budget.Step()) return false;
      std::string user_key = it_->key().ToString().substr(location_.size());
      if (!InScan(user_key, scan_)) continue;
      if (!record->ParseFromArray(it_->value().data(), static_cast<int>(it_->value().size())) ||
          !Live(*record, now_)) {
        continue;
      }
      if (skipped_ < scan_.offset) {
        ++skipped_;
        continue;
      }
      *key = std::move(user_key);
      Step();
      return true;
    }
    at_end_ = true;
    return false;
  }

  bool at_end() const { return at_end_; }
  Status status() const { return storage::FromRocks(it_->status(), "scan failed"); }

 private:
  void Step() { scan_.order == Order::kAsc ? it_->Next() : it_->Prev(); }

  const std::string location_;
  const std::string full_prefix_;
  const Scan scan_;
  const int64_t now_;
  std::unique_ptr<rocksdb::Iterator> it_;
  uint32_t skipped_ = 0;
  bool at_end_ = false;
};

class RocksKeyCursor final : public KeyCursor {
 public:
  RocksKeyCursor(std::unique_ptr<TableWalker> walker, uint32_t limit, const Limits& limits)
      : walker_(std::move(walker)), left_(limit == 0 ? UINT64_MAX : limit), limits_(limits) {}

  // Each call steps over at most Limits::max_scan_visits keys, so no call holds a thread for
  // long however sparse the matches.
  Result<std::vector<std::string>> Next(size_t max) override {
    std::vector<std::string> keys;
    std::string key;
    StoredRecord record;
    PageBudget budget(limits_, UINT32_MAX);
    while (keys.size() < max && left_ > 0 && walker_->Next(&key, &record, budget)) {
      keys.push_back(std::move(key));
      --left_;
    }
    if (Status s = walker_->status(); !s.ok()) return s;
    return keys;
  }

  bool AtEnd() const override { return left_ == 0 || walker_->at_end(); }

 private:
  std::unique_ptr<TableWalker> walker_;
  uint64_t left_;
  const Limits& limits_;
};

}  // namespace micro::store
