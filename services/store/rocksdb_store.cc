#include "services/store/rocksdb_store.h"

#include <fmt/format.h>
#include <pthread.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>

#include <optional>
#include <unordered_map>

#include "core/names.h"
#include "micro/store/internal/stored_record.pb.h"
#include "services/store/rocksdb_scan.h"
#include "services/store/snapshot_path.h"
#include "services/store/validation.h"

namespace micro::store {
namespace {

constexpr const char* kHighWaterKey = "store/revision-high-water";
constexpr const char* kStoredBytesKey = "store/stored-bytes";
constexpr uint64_t kRevisionBlock = 100000;
constexpr size_t kMaxOpsPerBatch = 4096;
// Writes that add data stop while the data dir's file system has less than this free (a tenth of
// a small file system), so RocksDB itself never meets a full disk: this build of RocksDB aborts
// the process on the write after a failed WAL append. Deletes go on, to free space.
constexpr uint64_t kDiskReserveBytes = 64 << 20;
constexpr const char* kDiskAlarm =
    "the data dir's disk is nearly full; writes that add data are refused until space is freed";

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

// One batch as the committer builds it: the writes, the state each key will have once they
// land (later ops see earlier ones), and the counters that change with it.
struct RocksDbStore::Batch {
  int64_t now = 0;
  rocksdb::WriteBatch writes;
  std::unordered_map<std::string, std::optional<StoredRecord>> overlay;
  uint64_t persisted_high_water = 0;
  bool raise_high_water = false;
  uint64_t stored_bytes = 0;  // after the batch
  uint64_t disk_room = 0;     // bytes writes may still add before the disk reserve
  bool disk_low = false;      // no room at all when the batch started
  bool disk_refused = false;
  bool quota_refused = false;
};

namespace {

// Reads a counter of the default family; `fallback` if it was never written.
Result<uint64_t> ReadCounter(rocksdb::DB& db, const char* key, uint64_t fallback) {
  std::string value;
  rocksdb::Status s = db.Get(rocksdb::ReadOptions(), db.DefaultColumnFamily(), key, &value);
  if (s.IsNotFound()) return fallback;
  if (!s.ok()) return storage::FromRocks(s, fmt::format("cannot read the store's {}", key));
  return DecodeU64(value);
}

// The bytes of every stored record: for a database written before the count was kept.
Result<uint64_t> CountStoredBytes(rocksdb::DB& db, rocksdb::ColumnFamilyHandle* records) {
  uint64_t bytes = 0;
  std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(rocksdb::ReadOptions(), records));
  StoredRecord record;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (!record.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) continue;
    bytes += StoredBytes(it->key().ToString(), record);
  }
  if (Status s = storage::FromRocks(it->status(), "cannot count the stored bytes"); !s.ok()) {
    return s;
  }
  return bytes;
}

}  // namespace

Result<std::unique_ptr<RocksDbStore>> RocksDbStore::Open(storage::RocksDb& db, Clock& clock,
                                                         Limits limits, Options options) {
  auto high_water = ReadCounter(db.db(), kHighWaterKey, 0);
  if (!high_water.ok()) return high_water.status();
  auto stored = ReadCounter(db.db(), kStoredBytesKey, UINT64_MAX);
  if (!stored.ok()) return stored.status();
  if (*stored == UINT64_MAX) {
    stored = CountStoredBytes(db.db(), db.family(kRecordsFamily));
    if (!stored.ok()) return stored.status();
  }
  return std::unique_ptr<RocksDbStore>(
      new RocksDbStore(db, clock, limits, std::move(options), *high_water, *stored));
}

RocksDbStore::RocksDbStore(storage::RocksDb& db, Clock& clock, Limits limits, Options options,
                           uint64_t high_water, uint64_t stored_bytes)
    : rocks_(db),
      records_(db.family(kRecordsFamily)),
      expiry_(db.family(kExpiryFamily)),
      clock_(clock),
      limits_(limits),
      options_(std::move(options)),
      revision_(high_water),  // revisions up to the mark may have been used before a crash
      high_water_(high_water),
      committed_revision_(high_water),
      stored_bytes_(stored_bytes),
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

Result<ReadPage> RocksDbStore::Read(const std::string& db, const std::string& table,
                                    const Scan& scan) {
  if (auto s = CheckLocation(db, table, limits_); !s.ok()) return s;
  const int64_t now = clock_.UnixMillis();
  TableWalker walker(rocks_.db(), records_, Location(db, table), scan, now);
  ReadPage page;
  PageBudget budget(limits_, ScanCap(scan, limits_));
  std::string key;
  StoredRecord record;
  while (walker.Next(&key, &record, budget)) {
    if (!budget.Take(StoredBytes(key, record))) {
      page.more = true;
      break;
    }
    page.records.push_back(ToRecord(std::move(key), record, now));
  }
  if (Status s = budget.status(); !s.ok()) return s;
  if (Status s = walker.status(); !s.ok()) return s;
  return page;
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
      std::make_unique<RocksKeyCursor>(std::move(walker), scan.limit, limits_));
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
    it->Seek(PrefixEnd(db + std::string(1, '\0')));
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
  Limits unbounded = limits_;  // a table is listed if it has one live record, however far in
  unbounded.max_scan_visits = UINT32_MAX;
  std::unique_ptr<rocksdb::Iterator> it(rocks_.db().NewIterator(rocksdb::ReadOptions(), records_));
  for (it->Seek(db_prefix); it->Valid() && it->key().starts_with(db_prefix);) {
    const std::string rest = it->key().ToString().substr(db_prefix.size());
    const std::string table = rest.substr(0, rest.find('\0'));
    TableWalker walker(rocks_.db(), records_, Location(db, table), Scan{}, now);
    std::string key;
    StoredRecord record;
    PageBudget budget(unbounded, 1);
    if (walker.Next(&key, &record, budget)) out.push_back(table);
    it->Seek(PrefixEnd(Location(db, table)));
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

Result<SnapshotInfo> RocksDbStore::Snapshot(const std::string& dir) {
  if (options_.snapshot_dir.empty()) {
    return absl::FailedPreconditionError("this store has no snapshot folder configured");
  }
  auto path = SnapshotPath(options_.snapshot_dir, dir);
  if (!path.ok()) return path.status();
  const uint64_t revision = committed_revision_.load();
  if (Status s = rocks_.Checkpoint(*path); !s.ok()) return s;
  return SnapshotInfo{*path, revision};
}

std::string RocksDbStore::Alarm() {
  std::lock_guard lock(alarm_mu_);
  // Space freed outside the store ends the condition before the next write notices.
  if (alarm_ == kDiskAlarm && DiskRoom() > 0) return "";
  return alarm_;
}

StoreStats RocksDbStore::Stats() {
  StoreStats stats;
  rocksdb::DB& db = rocks_.db();
  // Properties RocksDB keeps in memory: no read of the files.
  (void)db.GetIntProperty(records_, rocksdb::DB::Properties::kEstimateNumKeys, &stats.records);
  for (rocksdb::ColumnFamilyHandle* family : {records_, expiry_}) {
    uint64_t sst_bytes = 0;
    if (db.GetIntProperty(family, rocksdb::DB::Properties::kTotalSstFilesSize, &sst_bytes)) {
      stats.disk_bytes += sst_bytes;
    }
  }
  stats.bytes = stored_bytes_.load();
  return stats;
}

uint64_t RocksDbStore::DiskRoom() const {
  const storage::RocksDb::DiskSpace space = rocks_.Space();
  const uint64_t reserve = std::min(kDiskReserveBytes, space.total_bytes / 10);
  return space.free_bytes > reserve ? space.free_bytes - reserve : 0;
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

// Builds one WriteBatch from everything queued, writes it with one synced WAL append, and
// acknowledges each op with its own result.
void RocksDbStore::Commit(std::deque<Op>& ops) {
  Batch batch;
  batch.now = clock_.UnixMillis();
  batch.persisted_high_water = high_water_;
  batch.stored_bytes = stored_bytes_.load();
  batch.disk_room = DiskRoom();
  batch.disk_low = batch.disk_room == 0;
  std::vector<Result<uint64_t>> results(ops.size(), uint64_t{0});
  for (size_t i = 0; i < ops.size(); ++i) {
    Op& op = ops[i];
    if (op.kind == Op::Kind::kExpire) {
      ApplyExpire(batch, op);
    } else if (op.kind == Op::Kind::kDelete) {
      Replace(batch, op.key, Current(batch, op.key), std::nullopt);
    } else {
      results[i] = ApplyPut(batch, op);
    }
  }
  const Status status = Persist(batch);
  UpdateAlarm(batch, status);
  Acknowledge(std::move(ops), std::move(results), status);
}

// The record stored under `key` once the ops before this one land, dead or alive.
std::optional<StoredRecord> RocksDbStore::Current(Batch& batch, const std::string& key) {
  if (auto it = batch.overlay.find(key); it != batch.overlay.end()) return it->second;
  std::string value;
  StoredRecord record;
  if (rocks_.db().Get(rocksdb::ReadOptions(), records_, key, &value).ok() &&
      record.ParseFromString(value)) {
    return record;
  }
  return std::nullopt;
}

// Replaces `old` (what Current returned) with `next` (nullopt: deletes). The old record's TTL
// index entry goes in the same batch, so the index holds one entry per stored record with a
// TTL, whatever the write rate.
void RocksDbStore::Replace(Batch& batch, const std::string& key,
                           const std::optional<StoredRecord>& old,
                           std::optional<StoredRecord> next) {
  if (old) {
    if (old->expires_unix_ms() != 0) {
      batch.writes.Delete(expiry_, ExpiryKey(old->expires_unix_ms(), key));
    }
    batch.stored_bytes -= std::min<uint64_t>(batch.stored_bytes, StoredBytes(key, *old));
  }
  if (next) {
    if (next->expires_unix_ms() != 0) {
      batch.writes.Put(expiry_, ExpiryKey(next->expires_unix_ms(), key), rocksdb::Slice());
    }
    batch.writes.Put(records_, key, next->SerializeAsString());
    batch.stored_bytes += StoredBytes(key, *next);
  } else if (old) {
    batch.writes.Delete(records_, key);
  }
  batch.overlay[key] = std::move(next);
}

// Drops the record only if it is still the one that expired; always drops the index entry.
void RocksDbStore::ApplyExpire(Batch& batch, const Op& op) {
  std::optional<StoredRecord> now_there = Current(batch, op.key);
  const int64_t indexed = static_cast<int64_t>(DecodeU64(op.expiry_key));
  if (now_there && !Live(*now_there, batch.now) && now_there->expires_unix_ms() == indexed) {
    Replace(batch, op.key, now_there, std::nullopt);  // drops the index entry too
  } else {
    batch.writes.Delete(expiry_, op.expiry_key);  // stale: the record changed since
  }
}

Result<uint64_t> RocksDbStore::ApplyPut(Batch& batch, Op& op) {
  std::optional<StoredRecord> now_there = Current(batch, op.key);
  const bool live = now_there && Live(*now_there, batch.now);
  const std::string& user_key = op.record.key;
  if (op.condition.if_absent && live) {
    return absl::FailedPreconditionError(
        fmt::format("record '{}' exists (revision {}); if_absent refused the write", user_key,
                    now_there->revision()));
  }
  if (op.condition.if_revision != 0 &&
      (!live || now_there->revision() != op.condition.if_revision)) {
    return absl::FailedPreconditionError(
        fmt::format("record '{}' is at revision {}, not {}; the write was refused", user_key,
                    live ? now_there->revision() : 0, op.condition.if_revision));
  }
  StoredRecord record;
  record.set_value(std::move(op.record.value));
  for (auto& [k, v] : op.record.metadata) (*record.mutable_metadata())[k] = v;
  const int64_t growth = static_cast<int64_t>(StoredBytes(op.key, record)) -
                         (now_there ? static_cast<int64_t>(StoredBytes(op.key, *now_there)) : 0);
  if (Status s = CheckQuota(batch, op, growth); !s.ok()) return s;
  record.set_revision(NextRevision(&batch.raise_high_water));
  if (op.record.ttl_seconds > 0)
    record.set_expires_unix_ms(batch.now + op.record.ttl_seconds * 1000);
  const uint64_t revision = record.revision();
  Replace(batch, op.key, now_there, std::move(record));
  return revision;
}

// Writes that grow the store stop at the quota; deletes and shrinking writes never do, so
// space can always be freed through the API.
Status RocksDbStore::CheckQuota(Batch& batch, const Op& op, int64_t growth) const {
  if (growth <= 0) return absl::OkStatus();
  // The WAL, and later the table files, take about as many bytes as the write adds.
  if (static_cast<uint64_t>(growth) > batch.disk_room) {
    batch.disk_refused = true;
    return absl::ResourceExhaustedError(fmt::format(
        "the data dir's disk is nearly full: writes stop while it has less than a reserve of "
        "min(64 MiB, a tenth of the disk) free; free space there or delete records (writes "
        "resume by themselves)"));
  }
  batch.disk_room -= static_cast<uint64_t>(growth);
  if (options_.quota_bytes == 0 ||
      batch.stored_bytes + static_cast<uint64_t>(growth) <= options_.quota_bytes) {
    return absl::OkStatus();
  }
  batch.quota_refused = true;
  return absl::ResourceExhaustedError(fmt::format(
      "the store is full: it holds {} bytes of records and its quota is {} (store.quota_bytes); "
      "writing '{}' needs {} more. Delete records, or raise store.quota_bytes and restart",
      batch.stored_bytes, options_.quota_bytes, op.record.key, growth));
}

Status RocksDbStore::Persist(Batch& batch) {
  if (batch.raise_high_water) {
    batch.writes.Put(rocks_.db().DefaultColumnFamily(), kHighWaterKey, EncodeU64(high_water_));
  }
  if (batch.stored_bytes != stored_bytes_.load()) {
    batch.writes.Put(rocks_.db().DefaultColumnFamily(), kStoredBytesKey,
                     EncodeU64(batch.stored_bytes));
  }
  if (batch.writes.Count() == 0) return absl::OkStatus();
  if (write_failed_) {
    // After an I/O error (a full disk) RocksDB refuses every write until resumed; this brings
    // it back as soon as the cause is gone, without a restart. It fails fast while it is not.
    (void)rocks_.db().Resume();
  }
  rocksdb::WriteOptions options;
  options.sync = true;  // acknowledged means on disk
  Status status = storage::FromRocks(rocks_.db().Write(options, &batch.writes), "write failed");
  write_failed_ = !status.ok();
  if (status.ok()) {
    committed_revision_.store(revision_);
    stored_bytes_.store(batch.stored_bytes);
  } else {
    // The raised mark never reached the disk: raise (and persist) it again with the next batch,
    // so no revision handed out later can be handed out again after a restart.
    high_water_ = batch.persisted_high_water;
  }
  return status;
}

// Logs each change of condition once: writes refused (the quota, a full disk) and accepted
// again.
void RocksDbStore::UpdateAlarm(const Batch& batch, const Status& status) {
  std::string alarm;
  if (!status.ok()) {
    alarm = std::string(status.message());
  } else if (batch.disk_refused || batch.disk_low) {
    alarm = kDiskAlarm;
  } else if (batch.quota_refused ||
             (options_.quota_bytes != 0 && stored_bytes_.load() >= options_.quota_bytes)) {
    alarm = fmt::format(
        "the store's quota is reached: {} of {} bytes (store.quota_bytes); writes that add data "
        "are refused until records are deleted",
        stored_bytes_.load(), options_.quota_bytes);
  }
  std::lock_guard lock(alarm_mu_);
  if (alarm.empty() == alarm_.empty()) {
    if (!alarm.empty()) alarm_ = std::move(alarm);
    return;
  }
  if (alarm.empty()) {
    spdlog::info("store: writes are accepted again");
  } else {
    spdlog::error("store: writes are refused: {}", alarm);
  }
  alarm_ = std::move(alarm);
}

void RocksDbStore::Acknowledge(std::deque<Op> ops, std::vector<Result<uint64_t>> results,
                               Status status) {
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
