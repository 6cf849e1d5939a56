#pragma once

#include <rocksdb/db.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace micro::storage {

// The one translation point from RocksDB's status to ours.
[[nodiscard]] Status FromRocks(const rocksdb::Status& status, const std::string& what);

// The daemon's single RocksDB instance: write-ahead log on, one column family per service that
// keeps state, shared by all of them. Thread-safe (RocksDB's own guarantees).
class RocksDb {
 public:
  struct Options {
    std::string path;                   // the database directory, created if missing
    std::vector<std::string> families;  // column families the services need
    size_t block_cache_bytes = 32 << 20;
    size_t write_buffer_bytes = 8 << 20;
    // A file written once the database exists. While it exists, a missing database is an error
    // rather than a new empty one: something lost it. Empty: no such check.
    std::string created_marker = {};
    // The file system RocksDB uses; null: the real one. An in-memory Env (rocksdb::NewMemEnv)
    // gives a database that lives as long as the Env, for the memory backends.
    rocksdb::Env* env = nullptr;
  };

  // Opens (creating if needed) the database with every family it already has plus `families`.
  // Errors: UNAVAILABLE if the files are locked or unreadable, INTERNAL on corruption,
  // FAILED_PRECONDITION if the database is missing but `created_marker` says there was one
  // (the message says how to recover).
  [[nodiscard]] static Result<std::unique_ptr<RocksDb>> Open(const Options& options);
  ~RocksDb();

  rocksdb::DB& db() { return *db_; }

  // Free and total bytes of the file system the database is on (statvfs; 0 and 0 if it fails).
  struct DiskSpace {
    uint64_t free_bytes = 0;
    uint64_t total_bytes = 0;
  };
  DiskSpace Space() const;

  // The handle of a family named at Open. Aborts on an unknown name: that is a wiring bug.
  rocksdb::ColumnFamilyHandle* family(const std::string& name) const;

  // Writes a consistent copy of the whole database into `dir`, which must not exist yet
  // (hard links where the file system allows). Errors: INVALID_ARGUMENT (dir exists or is not
  // absolute), INTERNAL.
  [[nodiscard]] Status Checkpoint(const std::string& dir);

  // The points Restore passes, in order; a crash between two of them is recoverable.
  enum class RestoreStep {
    kCopied,      // the snapshot is copied and synced into `<db_path>.restoring`
    kJournaled,   // `<db_path>.restore-journal` names where the old database goes
    kMovedAside,  // the old database is at `<db_path>.before-restore-<unix ns>`
    kSwapped,     // the copy is at `db_path`; the journal is removed next
  };
  // For tests: called at each step; returning false stops Restore there, as a crash would
  // (ABORTED), leaving the files as they are.
  using RestoreHook = std::function<bool(RestoreStep)>;

  // Replaces the database at `db_path` with the checkpoint in `checkpoint_dir`. The database
  // must not be open. The previous files are kept at `<db_path>.before-restore-<unix ns>`. Safe
  // to interrupt at any point: RecoverRestore (which Restore itself runs first) completes a
  // swap whose copy was finished, and otherwise leaves the old database in place.
  [[nodiscard]] static Status Restore(const std::string& checkpoint_dir, const std::string& db_path,
                                      const RestoreHook& hook = nullptr);

  // Completes or cleans up a Restore of `db_path` that was interrupted; run before opening the
  // database. Returns what it did, empty if there was nothing to do. Errors: INTERNAL when a
  // rename fails (the message names the paths).
  [[nodiscard]] static Result<std::string> RecoverRestore(const std::string& db_path);

 private:
  RocksDb() = default;

  std::string path_;
  std::unique_ptr<rocksdb::DB> db_;
  std::map<std::string, rocksdb::ColumnFamilyHandle*> families_;
};

}  // namespace micro::storage
