#include "services/store/rocksdb_store.h"

#include <fmt/format.h>
#include <pthread.h>
#include <rocksdb/write_batch.h>

#include <optional>
#include <unordered_map>

#include "core/names.h"
#include "micro/store/internal/stored_record.pb.h"
#include "services/store/validation.h"

namespace micro::store {
namespace {

using internal::StoredRecord;

constexpr const char* kHighWaterKey = "store/revision-high-water";
constexpr uint64_t kRevisionBlock = 100000;
constexpr size_t kMaxOpsPerBatch = 4096;

std::string Location(const std::string& db, const std::string& table) {
  std::string out = db;
  out.push_back('\0');
  out += table;
  out.push_back('\0');
  return out;
}

std::string EncodeU64(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i, v >>= 8) out[static_cast<size_t>(i)] = static_cast<char>(v & 0xff);
  return out;
}

uint64_t DecodeU64(const rocksdb::Slice& s) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8 && i < s.size(); ++i) v = (v << 8) | static_cast<uint8_t>(s[i]);
  return v;
}

std::string ExpiryKey(int64_t expires_unix_ms, const std::string& record_key) {
  return EncodeU64(static_cast<uint64_t>(expires_unix_ms)) + record_key;
}

// The smallest string greater than every string starting with `prefix` (prefix is never all
// 0xff here: it starts with a database name).
std::string Successor(std::string prefix) {
  while (!prefix.empty() && static_cast<uint8_t>(prefix.back()) == 0xff) prefix.pop_back();
  if (!prefix.empty()) prefix.back() = static_cast<char>(static_cast<uint8_t>(prefix.back()) + 1);
  return prefix;
}

bool Live(const StoredRecord& r, int64_t now) {
  return r.expires_unix_ms() == 0 || r.expires_unix_ms() > now;
}

Record ToRecord(std::string key, const StoredRecord& r, int64_t now) {
  return Record{std::move(key), r.value(), SecondsLeft(r.expires_unix_ms(), now),
                Metadata(r.metadata().begin(), r.metadata().end()), r.revision()};
}

// Walks the keys of one table in scan order, skipping dead records and applying the offset.
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
      it_->SeekForPrev(Successor(full_prefix_));
    }
  }

  // The next live record in range: key without location, and the record. False at the end.
  bool Next(std::string* key, StoredRecord* record) {
    for (; it_->Valid(); Step()) {
      if (!it_->key().starts_with(full_prefix_)) {
        if (scan_.order == Order::kDesc && it_->key().compare(full_prefix_) > 0) continue;
        return false;
      }
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
    return false;
  }

  Status status() const { return storage::FromRocks(it_->status(), "scan failed"); }

 private:
  void Step() { scan_.order == Order::kAsc ? it_->Next() : it_->Prev(); }

  const std::string location_;
  const std::string full_prefix_;
  const Scan scan_;
  const int64_t now_;
  std::unique_ptr<rocksdb::Iterator> it_;
  uint32_t skipped_ = 0;
};

class RocksKeyCursor final : public KeyCursor {
 public:
  RocksKeyCursor(std::unique_ptr<TableWalker> walker, uint32_t limit)
      : walker_(std::move(walker)), left_(limit == 0 ? UINT64_MAX : limit) {}

  Result<std::vector<std::string>> Next(size_t max) override {
    std::vector<std::string> keys;
    std::string key;
    StoredRecord record;
    while (keys.size() < max && left_ > 0 && walker_->Next(&key, &record)) {
      keys.push_back(std::move(key));
      --left_;
    }
    if (Status s = walker_->status(); !s.ok()) return s;
    return keys;
  }

 private:
  std::unique_ptr<TableWalker> walker_;
  uint64_t left_;
};

}  // namespace

struct RocksDbStore::Op {
  enum class Kind { kPut, kDelete, kExpire } kind = Kind::kPut;
  std::string key;  // location + user key
  Record record;
  Condition condition;
  std::string expiry_key;  // kExpire: the index entry to drop
  WriteDone write_done;
  DeleteDone delete_done;
};

Result<std::unique_ptr<RocksDbStore>> RocksDbStore::Open(storage::RocksDb& db, Clock& clock,
                                                         Limits limits) {
  std::string value;
  rocksdb::Status s =
      db.db().Get(rocksdb::ReadOptions(), db.db().DefaultColumnFamily(), kHighWaterKey, &value);
  if (!s.ok() && !s.IsNotFound()) return storage::FromRocks(s, "cannot read the store revision");
  const uint64_t high_water = s.ok() ? DecodeU64(value) : 0;
  return std::unique_ptr<RocksDbStore>(new RocksDbStore(db, clock, limits, high_water));
}

RocksDbStore::RocksDbStore(storage::RocksDb& db, Clock& clock, Limits limits, uint64_t high_water)
    : rocks_(db),
      records_(db.family(kRecordsFamily)),
      expiry_(db.family(kExpiryFamily)),
      clock_(clock),
      limits_(limits),
      revision_(high_water),  // revisions up to the mark may have been used before a crash
      high_water_(high_water),
      committed_revision_(high_water),
      acknowledger_("store-ack"),
      committer_([this] {
        pthread_setname_np(pthread_self(), "store-commit");
        CommitLoop();
      }) {}

RocksDbStore::~RocksDbStore() {
  {
    std::lock_guard lock(queue_mu_);
    stopping_ = true;
  }
  queue_cv_.notify_one();
  committer_.join();
}

Result<Record> RocksDbStore::Get(const std::string& db, const std::string& table,
                                 const std::string& key) {
  if (auto s = CheckLocation(db, table, limits_); !s.ok()) return s;
  if (auto s = CheckKey(key, limits_); !s.ok()) return s;
  rocksdb::PinnableSlice value;
  rocksdb::Status s =
      rocks_.db().Get(rocksdb::ReadOptions(), records_, Location(db, table) + key, &value);
  const int64_t now = clock_.UnixMillis();
  StoredRecord record;
  if (s.ok() && record.ParseFromArray(value.data(), static_cast<int>(value.size())) &&
      Live(record, now)) {
    return ToRecord(key, record, now);
  }
  if (!s.ok() && !s.IsNotFound()) return storage::FromRocks(s, "read failed");
  return absl::NotFoundError(fmt::format("no record '{}' in {}/{}", key, db, table));
}

Result<std::vector<Record>> RocksDbStore::Read(const std::string& db, const std::string& table,
                                               const Scan& scan) {
  if (auto s = CheckLocation(db, table, limits_); !s.ok()) return s;
  const int64_t now = clock_.UnixMillis();
  TableWalker walker(rocks_.db(), records_, Location(db, table), scan, now);
  std::vector<Record> records;
  const uint32_t cap = ScanCap(scan, limits_);
  std::string key;
  StoredRecord record;
  while (records.size() < cap && walker.Next(&key, &record)) {
    records.push_back(ToRecord(std::move(key), record, now));
  }
  if (Status s = walker.status(); !s.ok()) return s;
  return records;
}

void RocksDbStore::Write(const std::string& db, const std::string& table, Record record,
                         Condition condition, WriteDone done) {
  if (auto s = CheckLocation(db, table, limits_); !s.ok()) return done(s);
  if (auto s = CheckRecord(record, limits_); !s.ok()) return done(s);
  Op op;
  op.kind = Op::Kind::kPut;
  op.key = Location(db, table) + record.key;
  op.record = std::move(record);
  op.condition = condition;
  op.write_done = std::move(done);
  Submit(std::move(op));
}

void RocksDbStore::Delete(const std::string& db, const std::string& table, const std::string& key,
                          DeleteDone done) {
  if (auto s = CheckLocation(db, table, limits_); !s.ok()) return done(s);
  if (auto s = CheckKey(key, limits_); !s.ok()) return done(s);
  Op op;
  op.kind = Op::Kind::kDelete;
  op.key = Location(db, table) + key;
  op.delete_done = std::move(done);
  Submit(std::move(op));
}

Result<std::unique_ptr<KeyCursor>> RocksDbStore::List(const std::string& db,
                                                      const std::string& table, const Scan& scan) {
  if (auto s = CheckLocation(db, table, limits_); !s.ok()) return s;
  auto walker = std::make_unique<TableWalker>(rocks_.db(), records_, Location(db, table), scan,
                                              clock_.UnixMillis());
  return std::unique_ptr<KeyCursor>(
      std::make_unique<RocksKeyCursor>(std::move(walker), scan.limit));
}

Result<std::vector<std::string>> RocksDbStore::Databases() {
  // Skip-scan: one seek per database, checking it holds a live record.
  std::vector<std::string> out;
  std::unique_ptr<rocksdb::Iterator> it(rocks_.db().NewIterator(rocksdb::ReadOptions(), records_));
  for (it->SeekToFirst(); it->Valid();) {
    const std::string key = it->key().ToString();
    const std::string db = key.substr(0, key.find('\0'));
    auto tables = Tables(db);
    if (!tables.ok()) return tables.status();
    if (!tables->empty()) out.push_back(db);
    it->Seek(Successor(db + std::string(1, '\0')));
  }
  if (auto s = storage::FromRocks(it->status(), "listing databases failed"); !s.ok()) return s;
  return out;
}

Result<std::vector<std::string>> RocksDbStore::Tables(const std::string& db) {
  if (auto s = CheckName("database", db, limits_.max_name_bytes, Charset::kName); !s.ok()) {
    return s;
  }
  std::vector<std::string> out;
  const std::string db_prefix = db + std::string(1, '\0');
  const int64_t now = clock_.UnixMillis();
  std::unique_ptr<rocksdb::Iterator> it(rocks_.db().NewIterator(rocksdb::ReadOptions(), records_));
  for (it->Seek(db_prefix); it->Valid() && it->key().starts_with(db_prefix);) {
    const std::string rest = it->key().ToString().substr(db_prefix.size());
    const std::string table = rest.substr(0, rest.find('\0'));
    TableWalker walker(rocks_.db(), records_, Location(db, table), Scan{}, now);
    std::string key;
    StoredRecord record;
    if (walker.Next(&key, &record)) out.push_back(table);
    it->Seek(Successor(Location(db, table)));
  }
  if (auto s = storage::FromRocks(it->status(), "listing tables failed"); !s.ok()) return s;
  return out;
}

size_t RocksDbStore::ExpireRecords() {
  const int64_t now = clock_.UnixMillis();
  size_t submitted = 0;
  std::unique_ptr<rocksdb::Iterator> it(rocks_.db().NewIterator(rocksdb::ReadOptions(), expiry_));
  for (it->SeekToFirst(); it->Valid() && submitted < kMaxOpsPerBatch; it->Next()) {
    if (static_cast<int64_t>(DecodeU64(it->key())) > now) break;
    Op op;
    op.kind = Op::Kind::kExpire;
    op.expiry_key = it->key().ToString();
    op.key = op.expiry_key.substr(8);
    Submit(std::move(op));
    ++submitted;
  }
  return submitted;
}

Result<uint64_t> RocksDbStore::Snapshot(const std::string& dir) {
  const uint64_t revision = committed_revision_.load();
  if (Status s = rocks_.Checkpoint(dir); !s.ok()) return s;
  return revision;
}

void RocksDbStore::Submit(Op op) {
  {
    std::lock_guard lock(queue_mu_);
    queue_.push_back(std::move(op));
  }
  queue_cv_.notify_one();
}

void RocksDbStore::CommitLoop() {
  for (;;) {
    std::deque<Op> ops;
    {
      std::unique_lock lock(queue_mu_);
      queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left to commit
      while (!queue_.empty() && ops.size() < kMaxOpsPerBatch) {
        ops.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    Commit(ops);
  }
}

uint64_t RocksDbStore::NextRevision(bool* raise_high_water) {
  if (revision_ + 1 > high_water_) {
    high_water_ = revision_ + kRevisionBlock;
    *raise_high_water = true;
  }
  return ++revision_;
}

void RocksDbStore::Commit(std::deque<Op>& ops) {
  const int64_t now = clock_.UnixMillis();
  const uint64_t persisted_high_water = high_water_;
  rocksdb::WriteBatch batch;
  // The state each key will have once the batch lands: later ops see earlier ones.
  std::unordered_map<std::string, std::optional<StoredRecord>> overlay;
  const auto current = [&](const std::string& key) -> std::optional<StoredRecord> {
    if (auto it = overlay.find(key); it != overlay.end()) return it->second;
    std::string value;
    StoredRecord record;
    if (rocks_.db().Get(rocksdb::ReadOptions(), records_, key, &value).ok() &&
        record.ParseFromString(value)) {
      return record;
    }
    return std::nullopt;
  };
  std::vector<Result<uint64_t>> results(ops.size(), uint64_t{0});
  bool raise_high_water = false;
  for (size_t i = 0; i < ops.size(); ++i) {
    Op& op = ops[i];
    // Only expiry and conditional writes need the record that is there now; plain writes and
    // deletes skip the read.
    const bool needs_current =
        op.kind == Op::Kind::kExpire ||
        (op.kind == Op::Kind::kPut && (op.condition.if_absent || op.condition.if_revision != 0));
    std::optional<StoredRecord> now_there = needs_current ? current(op.key) : std::nullopt;
    const bool live = now_there && Live(*now_there, now);
    if (op.kind == Op::Kind::kExpire) {
      // Drop the record only if it is still the one that expired; always drop the index entry.
      const int64_t indexed = static_cast<int64_t>(DecodeU64(op.expiry_key));
      if (now_there && !live && now_there->expires_unix_ms() == indexed) {
        batch.Delete(records_, op.key);
        overlay[op.key] = std::nullopt;
      }
      batch.Delete(expiry_, op.expiry_key);
      continue;
    }
    if (op.kind == Op::Kind::kDelete) {
      batch.Delete(records_, op.key);
      overlay[op.key] = std::nullopt;
      continue;
    }
    const std::string& user_key = op.record.key;
    if (op.condition.if_absent && live) {
      results[i] = absl::FailedPreconditionError(
          fmt::format("record '{}' exists (revision {}); if_absent refused the write", user_key,
                      now_there->revision()));
      continue;
    }
    if (op.condition.if_revision != 0 &&
        (!live || now_there->revision() != op.condition.if_revision)) {
      results[i] = absl::FailedPreconditionError(
          fmt::format("record '{}' is at revision {}, not {}; the write was refused", user_key,
                      live ? now_there->revision() : 0, op.condition.if_revision));
      continue;
    }
    StoredRecord record;
    record.set_value(std::move(op.record.value));
    for (auto& [k, v] : op.record.metadata) (*record.mutable_metadata())[k] = v;
    record.set_revision(NextRevision(&raise_high_water));
    if (op.record.ttl_seconds > 0) {
      record.set_expires_unix_ms(now + op.record.ttl_seconds * 1000);
      batch.Put(expiry_, ExpiryKey(record.expires_unix_ms(), op.key), rocksdb::Slice());
    }
    batch.Put(records_, op.key, record.SerializeAsString());
    results[i] = record.revision();
    overlay[op.key] = std::move(record);
  }
  if (raise_high_water) {
    batch.Put(rocks_.db().DefaultColumnFamily(), kHighWaterKey, EncodeU64(high_water_));
  }
  rocksdb::WriteOptions options;
  options.sync = true;  // acknowledged means on disk
  Status status = storage::FromRocks(rocks_.db().Write(options, &batch), "write failed");
  if (status.ok()) {
    committed_revision_.store(revision_);
  } else {
    // The raised mark never reached the disk: raise (and persist) it again with the next batch,
    // so no revision handed out later can be handed out again after a restart.
    high_water_ = persisted_high_water;
  }
  acknowledger_.Submit([ops = std::move(ops), results = std::move(results), status]() mutable {
    for (size_t i = 0; i < ops.size(); ++i) {
      Op& op = ops[i];
      if (op.kind == Op::Kind::kPut) {
        op.write_done(status.ok() ? std::move(results[i]) : Result<uint64_t>(status));
      } else if (op.kind == Op::Kind::kDelete) {
        op.delete_done(status);
      }
    }
  });
}

}  // namespace micro::store
