#include "storage/rocks_db.h"

#include <fmt/format.h>
#include <rocksdb/cache.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>

namespace micro::storage {

Status FromRocks(const rocksdb::Status& status, const std::string& what) {
  if (status.ok()) return absl::OkStatus();
  std::string message = fmt::format("{}: {}", what, status.ToString());
  if (status.IsNotFound()) return absl::NotFoundError(message);
  if (status.IsInvalidArgument()) return absl::InvalidArgumentError(message);
  if (status.IsBusy() || status.IsTimedOut() || status.IsTryAgain() || status.IsIOError()) {
    return absl::UnavailableError(message);
  }
  return absl::InternalError(message);
}

Result<std::unique_ptr<RocksDb>> RocksDb::Open(const Options& options) {
  rocksdb::Options db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.max_total_wal_size = 64 << 20;
  db_options.keep_log_file_num = 5;
  // Reused WAL files are overwritten in place, so a synced append changes no file size and the
  // fdatasync behind every acknowledged write skips a journal commit.
  db_options.recycle_log_file_num = 4;
  db_options.max_background_jobs = 2;
  db_options.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;

  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  rocksdb::ColumnFamilyOptions family_options;
  family_options.write_buffer_size = options.write_buffer_bytes;
  family_options.max_write_buffer_number = 2;
  family_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));

  std::vector<std::string> names = {rocksdb::kDefaultColumnFamilyName};
  std::vector<std::string> existing;
  if (rocksdb::DB::ListColumnFamilies(db_options, options.path, &existing).ok()) {
    for (const auto& name : existing) {
      if (name != rocksdb::kDefaultColumnFamilyName) names.push_back(name);
    }
  }
  for (const auto& name : options.families) {
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const auto& name : names) descriptors.emplace_back(name, family_options);

  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, options.path, descriptors, &handles, &raw);
  if (!s.ok()) return FromRocks(s, fmt::format("cannot open the database in {}", options.path));
  std::unique_ptr<RocksDb> out(new RocksDb());
  out->db_.reset(raw);
  for (size_t i = 0; i < names.size(); ++i) out->families_[names[i]] = handles[i];
  return out;
}

RocksDb::~RocksDb() {
  if (!db_) return;
  for (auto& [name, handle] : families_) (void)db_->DestroyColumnFamilyHandle(handle);
  (void)db_->Close();
}

rocksdb::ColumnFamilyHandle* RocksDb::family(const std::string& name) const {
  auto it = families_.find(name);
  if (it == families_.end()) std::abort();
  return it->second;
}

Status RocksDb::Checkpoint(const std::string& dir) {
  if (dir.empty() || dir[0] != '/') {
    return absl::InvalidArgumentError(
        fmt::format("snapshot dir '{}' must be an absolute path on the daemon's machine", dir));
  }
  std::error_code ec;
  if (std::filesystem::exists(dir, ec)) {
    return absl::InvalidArgumentError(
        fmt::format("snapshot dir {} already exists; give a new directory", dir));
  }
  rocksdb::Checkpoint* raw = nullptr;
  if (auto s = rocksdb::Checkpoint::Create(db_.get(), &raw); !s.ok()) {
    return FromRocks(s, "cannot start a checkpoint");
  }
  std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
  // Flush first so the copy holds table files, not only a log to replay.
  return FromRocks(checkpoint->CreateCheckpoint(dir, /*log_size_for_flush=*/0),
                   fmt::format("cannot write a snapshot into {}", dir));
}

Status RocksDb::Restore(const std::string& checkpoint_dir, const std::string& db_path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(fs::path(checkpoint_dir) / "CURRENT", ec)) {
    return absl::InvalidArgumentError(
        fmt::format("{} is not a snapshot (it has no CURRENT file)", checkpoint_dir));
  }
  // Check the snapshot opens before touching the live files.
  {
    rocksdb::Options probe_options;
    std::vector<std::string> families;
    auto s = rocksdb::DB::ListColumnFamilies(probe_options, checkpoint_dir, &families);
    if (!s.ok()) return FromRocks(s, fmt::format("{} is not a readable snapshot", checkpoint_dir));
  }
  const std::string staging = db_path + ".restoring";
  fs::remove_all(staging, ec);
  fs::copy(checkpoint_dir, staging, fs::copy_options::recursive, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove_all(staging, ignored);
    return absl::InternalError(
        fmt::format("cannot copy {} to {}: {}", checkpoint_dir, staging, ec.message()));
  }
  if (fs::exists(db_path, ec)) {
    const auto stamp = std::chrono::duration_cast<std::chrono::nanoseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
    fs::rename(db_path, fmt::format("{}.before-restore-{}", db_path, stamp), ec);
    if (ec) {
      fs::remove_all(staging, ec);
      return absl::InternalError(fmt::format("cannot move {} aside: {}", db_path, ec.message()));
    }
  }
  fs::rename(staging, db_path, ec);
  if (ec) {
    return absl::InternalError(fmt::format("cannot move {} into place: {}", staging, ec.message()));
  }
  return absl::OkStatus();
}

}  // namespace micro::storage
