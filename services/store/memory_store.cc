#include "services/store/memory_store.h"

#include <fmt/format.h>

#include "core/names.h"
#include "services/store/validation.h"

namespace micro::store {
namespace {

// A cursor over keys collected up front: the memory store is small by nature.
class VectorCursor final : public KeyCursor {
 public:
  explicit VectorCursor(std::vector<std::string> keys) : keys_(std::move(keys)) {}
  bool AtEnd() const override { return next_ == keys_.size(); }
  Result<std::vector<std::string>> Next(size_t max) override {
    const size_t n = std::min(max, keys_.size() - next_);
    std::vector<std::string> out(keys_.begin() + static_cast<std::ptrdiff_t>(next_),
                                 keys_.begin() + static_cast<std::ptrdiff_t>(next_ + n));
    next_ += n;
    return out;
  }

 private:
  std::vector<std::string> keys_;
  size_t next_ = 0;
};

}  // namespace

MemoryStore::MemoryStore(Clock& clock, Limits limits) : clock_(clock), limits_(limits) {}

bool MemoryStore::Live(const Entry& entry, int64_t now) const {
  return entry.expires_unix_ms == 0 || entry.expires_unix_ms > now;
}

Record MemoryStore::ToRecord(const std::string& key, const Entry& entry, int64_t now) const {
  return Record{key, entry.value, SecondsLeft(entry.expires_unix_ms, now), entry.metadata,
                entry.revision};
}

Result<Record> MemoryStore::Get(const std::string& db, const std::string& table,
                                const std::string& key) {
  if (auto s = CheckLocation(db, table, limits_); !s.ok()) return s;
  if (auto s = CheckKey(key, limits_); !s.ok()) return s;
  const int64_t now = clock_.UnixMillis();
  std::lock_guard lock(mu_);
  auto d = databases_.find(db);
  if (d != databases_.end()) {
    auto t = d->second.find(table);
    if (t != d->second.end()) {
      auto e = t->second.find(key);
      if (e != t->second.end() && Live(e->second, now)) return ToRecord(key, e->second, now);
    }
  }
  return absl::NotFoundError(fmt::format("no record '{}' in {}/{}", key, db, table));
}

void MemoryStore::Visit(const std::string& db, const std::string& table, const Scan& scan,
                        const std::function<bool(const std::string&, const Entry&)>& visit) {
  auto d = databases_.find(db);
  if (d == databases_.end()) return;
  auto t = d->second.find(table);
  if (t == d->second.end()) return;
  const Table& rows = t->second;
  if (scan.order == Order::kAsc) {
    for (auto it = rows.lower_bound(scan.prefix); it != rows.end(); ++it) {
      if (it->first.compare(0, scan.prefix.size(), scan.prefix) != 0) break;
      if (!visit(it->first, it->second)) break;
    }
  } else {
    auto end = scan.prefix.empty() ? rows.end() : rows.lower_bound(PrefixEnd(scan.prefix));
    for (auto it = std::make_reverse_iterator(end); it != rows.rend(); ++it) {
      if (it->first.compare(0, scan.prefix.size(), scan.prefix) != 0) break;
      if (!visit(it->first, it->second)) break;
    }
  }
}

std::vector<std::string> MemoryStore::Keys(const std::string& db, const std::string& table,
                                           const Scan& scan, uint32_t cap) {
  std::vector<std::string> keys;
  const int64_t now = clock_.UnixMillis();
  uint32_t skipped = 0;
  Visit(db, table, scan, [&](const std::string& key, const Entry& entry) {
    if (!InScan(key, scan) || !Live(entry, now)) return true;
    if (skipped < scan.offset) {
      ++skipped;
      return true;
    }
    keys.push_back(key);
    return keys.size() < cap;
  });
  return keys;
}

Result<ReadPage> MemoryStore::Read(const std::string& db, const std::string& table,
                                   const Scan& scan) {
  if (auto s = CheckLocation(db, table, limits_); !s.ok()) return s;
  const int64_t now = clock_.UnixMillis();
  const uint32_t cap = ScanCap(scan, limits_);
  std::lock_guard lock(mu_);
  ReadPage page;
  PageBudget budget(limits_, cap);
  uint32_t skipped = 0;
  Visit(db, table, scan, [&](const std::string& key, const Entry& entry) {
    if (!budget.Step()) return false;
    if (!InScan(key, scan) || !Live(entry, now)) return true;
    if (skipped < scan.offset) {
      ++skipped;
      return true;
    }
    if (!budget.Take(RecordBytes(key, entry.value, entry.metadata))) {
      page.more = true;
      return false;
    }
    page.records.push_back(ToRecord(key, entry, now));
    return true;
  });
  if (Status s = budget.status(); !s.ok()) return s;
  return page;
}

void MemoryStore::Write(const std::string& db, const std::string& table, Record record,
                        Condition condition, WriteDone done) {
  if (auto s = CheckLocation(db, table, limits_); !s.ok()) return done(s);
  if (auto s = CheckRecord(record, limits_); !s.ok()) return done(s);
  const int64_t now = clock_.UnixMillis();
  Result<uint64_t> result;
  {
    std::lock_guard lock(mu_);
    auto& rows = databases_[db][table];
    auto it = rows.find(record.key);
    const Entry* live = it != rows.end() && Live(it->second, now) ? &it->second : nullptr;
    if (condition.if_absent && live) {
      result = absl::FailedPreconditionError(
          fmt::format("record '{}' exists (revision {}); if_absent refused the write", record.key,
                      live->revision));
    } else if (condition.if_revision != 0 && (!live || live->revision != condition.if_revision)) {
      result = absl::FailedPreconditionError(
          fmt::format("record '{}' is at revision {}, not {}; the write was refused", record.key,
                      live ? live->revision : 0, condition.if_revision));
    } else {
      Entry& entry = rows[record.key];
      entry.value = std::move(record.value);
      entry.metadata = std::move(record.metadata);
      entry.revision = ++revision_;
      entry.expires_unix_ms = record.ttl_seconds > 0 ? now + record.ttl_seconds * 1000 : 0;
      result = entry.revision;
    }
    if (rows.empty()) databases_[db].erase(table);
    if (databases_[db].empty()) databases_.erase(db);
  }
  done(std::move(result));
}

void MemoryStore::Delete(const std::string& db, const std::string& table, const std::string& key,
                         DeleteDone done) {
  if (auto s = CheckLocation(db, table, limits_); !s.ok()) return done(s);
  if (auto s = CheckKey(key, limits_); !s.ok()) return done(s);
  {
    std::lock_guard lock(mu_);
    auto d = databases_.find(db);
    if (d != databases_.end()) {
      auto t = d->second.find(table);
      if (t != d->second.end()) {
        t->second.erase(key);
        if (t->second.empty()) d->second.erase(t);
      }
      if (d->second.empty()) databases_.erase(d);
    }
  }
  done(absl::OkStatus());
}

Result<std::unique_ptr<KeyCursor>> MemoryStore::List(const std::string& db,
                                                     const std::string& table, const Scan& scan) {
  if (auto s = CheckLocation(db, table, limits_); !s.ok()) return s;
  std::lock_guard lock(mu_);
  const uint32_t cap = scan.limit == 0 ? UINT32_MAX : scan.limit;
  return std::unique_ptr<KeyCursor>(std::make_unique<VectorCursor>(Keys(db, table, scan, cap)));
}

Result<std::vector<std::string>> MemoryStore::Databases() {
  ExpireRecords();
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& [name, tables] : databases_) out.push_back(name);
  return out;
}

Result<std::vector<std::string>> MemoryStore::Tables(const std::string& db) {
  if (auto s = CheckName("database", db, limits_.max_name_bytes, Charset::kName); !s.ok()) {
    return s;
  }
  ExpireRecords();
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  auto d = databases_.find(db);
  if (d == databases_.end()) return out;
  for (const auto& [name, rows] : d->second) out.push_back(name);
  return out;
}

size_t MemoryStore::ExpireRecords() {
  const int64_t now = clock_.UnixMillis();
  size_t removed = 0;
  std::lock_guard lock(mu_);
  for (auto d = databases_.begin(); d != databases_.end();) {
    for (auto t = d->second.begin(); t != d->second.end();) {
      for (auto e = t->second.begin(); e != t->second.end();) {
        if (Live(e->second, now)) {
          ++e;
        } else {
          e = t->second.erase(e);
          ++removed;
        }
      }
      t = t->second.empty() ? d->second.erase(t) : std::next(t);
    }
    d = d->second.empty() ? databases_.erase(d) : std::next(d);
  }
  return removed;
}

std::string MemoryStore::Alarm() { return ""; }

StoreStats MemoryStore::Stats() {
  StoreStats stats;
  std::lock_guard lock(mu_);
  for (const auto& [db, tables] : databases_) {
    for (const auto& [table, rows] : tables) {
      stats.records += rows.size();
      for (const auto& [key, entry] : rows) {
        stats.bytes += db.size() + table.size() + 2 + RecordBytes(key, entry.value, entry.metadata);
      }
    }
  }
  return stats;
}

Result<SnapshotInfo> MemoryStore::Snapshot(const std::string&) {
  return absl::UnimplementedError(
      "the memory store keeps nothing on disk to snapshot; use store.backend: rocksdb");
}

}  // namespace micro::store
