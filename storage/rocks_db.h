#pragma once

#include <rocksdb/db.h>

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
  };

  // Opens (creating if needed) the database with every family it already has plus `families`.
  // Errors: UNAVAILABLE if the files are locked or unreadable, INTERNAL on corruption.
  [[nodiscard]] static Result<std::unique_ptr<RocksDb>> Open(const Options& options);
  ~RocksDb();

  rocksdb::DB& db() { return *db_; }

  // The handle of a family named at Open. Aborts on an unknown name: that is a wiring bug.
  rocksdb::ColumnFamilyHandle* family(const std::string& name) const;

  // Writes a consistent copy of the whole database into `dir`, which must not exist yet
  // (hard links where the file system allows). Errors: INVALID_ARGUMENT (dir exists or is not
  // absolute), INTERNAL.
  [[nodiscard]] Status Checkpoint(const std::string& dir);

  // Replaces the database at `db_path` with the checkpoint in `checkpoint_dir`. The database
  // must not be open. The previous files are kept at `<db_path>.before-restore-<unix ns>`.
  [[nodiscard]] static Status Restore(const std::string& checkpoint_dir,
                                      const std::string& db_path);

 private:
  RocksDb() = default;

  std::unique_ptr<rocksdb::DB> db_;
  std::map<std::string, rocksdb::ColumnFamilyHandle*> families_;
};

}  // namespace micro::storage
