#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/limits.h"
#include "core/status.h"

namespace micro::store {

using Metadata = std::map<std::string, std::string>;

struct Record {
  std::string key;
  std::string value;
  int64_t ttl_seconds = 0;  // on write: expire after this long (0: never); on read: seconds left
  Metadata metadata;
  uint64_t revision = 0;  // set by the store; strictly increasing across the whole store
};

enum class Order { kAsc, kDesc };

// Which records of a table a scan visits, in key order.
struct Scan {
  std::string prefix;  // keys starting with this
  std::string suffix;  // keys ending with this (scans the whole table, or the prefix)
  uint32_t limit = 0;  // 0: up to Limits::max_scan_records
  uint32_t offset = 0;
  Order order = Order::kAsc;
};

// A write that happens only if the record is as expected.
struct Condition {
  uint64_t if_revision = 0;  // 0: any; else the live record must have this revision
  bool if_absent = false;    // no live record may have this key
};

// Explicit limits; beyond them INVALID_ARGUMENT and nothing is written. docs/store.md lists them.
struct Limits {
  size_t max_name_bytes = limits::kStoreNameBytes;  // databases and tables: [A-Za-z0-9._-]
  size_t max_key_bytes = 1024;                      // UTF-8, not empty
  size_t max_value_bytes = 1 << 20;                 // 1 MiB
  size_t max_metadata_entries = limits::kMetadataEntries;
  // Keys and values together rather than per entry: records carry metadata on every read, so
  // what bounds them is the record's total; 16 KiB holds 64 entries of short labels.
  size_t max_metadata_bytes = 16 << 10;
  int64_t max_ttl_seconds = 10LL * 365 * 86400;
  uint32_t max_scan_records = 1000;  // records one Read scan returns at most
  uint32_t list_chunk_keys = 1000;   // keys per List message
  // Bytes of records (keys, values, metadata: RecordBytes) one Read returns at most, so a
  // response always fits gRPC's default 4 MiB client receive limit. A page is cut short before
  // it, never empty: one record of the largest size always fits.
  size_t max_read_bytes = 3 << 20;
  // Keys one Read scan, or one List message, may step over (dead, filtered out by the suffix,
  // skipped by the offset, or returned): the work one call can ask of the daemon.
  uint32_t max_scan_visits = 100000;
};

// What a record weighs against Limits::max_read_bytes and the quota: key, value and metadata.
inline size_t RecordBytes(const std::string& key, const std::string& value,
                          const Metadata& metadata) {
  size_t bytes = key.size() + value.size();
  for (const auto& [k, v] : metadata) bytes += k.size() + v.size();
  return bytes;
}

// One Read's answer: the records, and whether the scan has more past them (the page was cut by
// Limits::max_read_bytes or max_scan_records); the next page starts at offset + records.size().
struct ReadPage {
  std::vector<Record> records;
  bool more = false;
};

// Where a snapshot went.
struct SnapshotInfo {
  std::string dir;  // absolute
  uint64_t revision = 0;
};

// How much a store holds, for the daemon's metrics.
struct StoreStats {
  uint64_t records = 0;     // stored records, expired ones until swept (RocksDB: an estimate)
  uint64_t bytes = 0;       // what the quota counts: each record's RecordBytes, plus the
                            // names of its database and table and 2
  uint64_t disk_bytes = 0;  // SST files of the store's column families; 0 in memory
};

// Keys of a table, read in chunks; returned by Store::List. Not thread-safe.
class KeyCursor {
 public:
  virtual ~KeyCursor() = default;
  // Up to `max` next keys. Empty at the end, or when Limits::max_scan_visits keys were stepped
  // over without a match (then AtEnd() is false: call again).
  [[nodiscard]] virtual Result<std::vector<std::string>> Next(size_t max) = 0;
  // True once every key was returned.
  virtual bool AtEnd() const = 0;
};

// Durable records in databases and tables. Every method is thread-safe. A call that fails
// changes nothing. An expired record is never returned by any call.
class Store {
 public:
  using WriteDone = std::function<void(Result<uint64_t> revision)>;
  using DeleteDone = std::function<void(Status)>;

  virtual ~Store() = default;

  // One live record, with its seconds left. Errors: INVALID_ARGUMENT, NOT_FOUND.
  [[nodiscard]] virtual Result<Record> Get(const std::string& db, const std::string& table,
                                           const std::string& key) = 0;

  // Live records matching `scan`, values included, at most Limits::max_scan_records and
  // Limits::max_read_bytes of them. Errors: INVALID_ARGUMENT; RESOURCE_EXHAUSTED when the scan
  // steps over Limits::max_scan_visits keys (a suffix scan of a big table, a big offset).
  [[nodiscard]] virtual Result<ReadPage> Read(const std::string& db, const std::string& table,
                                              const Scan& scan) = 0;

  // Writes `record` if `condition` holds and calls `done` with its new revision once it is
  // durable (survives a crash of the process). `done` may run on any thread, or inline.
  // Errors: INVALID_ARGUMENT (names, sizes), FAILED_PRECONDITION (condition false),
  // RESOURCE_EXHAUSTED (over the quota, or the disk is full), UNAVAILABLE (I/O error).
  virtual void Write(const std::string& db, const std::string& table, Record record,
                     Condition condition, WriteDone done) = 0;

  // Deletes the record if there is one, durably, then calls `done`.
  virtual void Delete(const std::string& db, const std::string& table, const std::string& key,
                      DeleteDone done) = 0;

  // The keys matching `scan`, to read in chunks (limit and offset apply; 0 limit: all).
  [[nodiscard]] virtual Result<std::unique_ptr<KeyCursor>> List(const std::string& db,
                                                                const std::string& table,
                                                                const Scan& scan) = 0;

  // Databases, and tables of a database, that hold at least one record, in order.
  [[nodiscard]] virtual Result<std::vector<std::string>> Databases() = 0;
  [[nodiscard]] virtual Result<std::vector<std::string>> Tables(const std::string& db) = 0;

  // Removes expired records from storage; returns how many. Reads filter them regardless.
  virtual size_t ExpireRecords() = 0;

  // Writes a consistent copy of everything into `dir`, a new directory inside the store's
  // snapshot folder (a path relative to it, or an absolute one inside it), and returns where it
  // went and the revision it holds. Blocks for the flush: not for a reactor thread.
  // Errors: INVALID_ARGUMENT (bad or existing name), PERMISSION_DENIED (outside the folder,
  // through a symlink included), UNIMPLEMENTED for a backend with nothing on disk.
  [[nodiscard]] virtual Result<SnapshotInfo> Snapshot(const std::string& dir) = 0;

  // Why writes are refused right now (over the quota, disk full), for `micro health`; empty
  // when they are accepted. Thread-safe.
  virtual std::string Alarm() = 0;

  // The figures above. Thread-safe and never blocks on I/O: RocksDB answers from its
  // properties, the memory store walks its maps under its lock.
  virtual StoreStats Stats() = 0;
};

}  // namespace micro::store
