#include "storage/rocks_db.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <rocksdb/cache.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace micro::storage {

namespace fs = std::filesystem;

namespace {

// fsync of a file or directory: a rename is durable once its directory is synced.
void SyncPath(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fsync(fd);
  ::close(fd);
}

void SyncTree(const fs::path& dir) {
  std::error_code ec;
  for (const auto& entry : fs::recursive_directory_iterator(dir, ec)) SyncPath(entry.path());
  SyncPath(dir);
}

// Writes `contents` to `path` durably and atomically (a temp file, fsync, rename, fsync dir).
Status WriteDurably(const fs::path& path, const std::string& contents) {
  const fs::path temp = path.string() + ".tmp";
  {
    std::ofstream out(temp, std::ios::trunc);
    out << contents;
    if (!out.flush()) return absl::InternalError(fmt::format("cannot write {}", temp.string()));
  }
  SyncPath(temp);
  std::error_code ec;
  fs::rename(temp, path, ec);
  if (ec) {
    return absl::InternalError(fmt::format("cannot rename {}: {}", temp.string(), ec.message()));
  }
  SyncPath(path.parent_path());
  return absl::OkStatus();
}

Status Rename(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::rename(from, to, ec);
  if (ec) {
    return absl::InternalError(
        fmt::format("cannot rename {} to {}: {}", from.string(), to.string(), ec.message()));
  }
  SyncPath(to.parent_path());
  return absl::OkStatus();
}

std::string BackupPath(const std::string& db_path) {
  const auto stamp = std::chrono::duration_cast<std::chrono::nanoseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  return fmt::format("{}.before-restore-{}", db_path, stamp);
}

Status CheckNotLost(const RocksDb::Options& options) {
  std::error_code ec;
  if (options.created_marker.empty() || fs::exists(fs::path(options.path) / "CURRENT", ec) ||
      !fs::exists(options.created_marker, ec)) {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(fmt::format(
      "the database {0} is missing, but this data dir had one ({1} says so); nothing was started "
      "so nothing was overwritten. To recover: move the database back to {0} (one that 'micro "
      "store restore' replaced is at {0}.before-restore-*), or restore a snapshot with 'micro "
      "store restore DIR'. To start over with an empty store instead, delete {1}",
      options.path, options.created_marker));
}

}  // namespace

Status FromRocks(const rocksdb::Status& status, const std::string& what) {
  if (status.ok()) return absl::OkStatus();
  std::string message = fmt::format("{}: {}", what, status.ToString());
  if (status.IsNotFound()) return absl::NotFoundError(message);
  if (status.IsNoSpace() || status.ToString().find("No space left") != std::string::npos) {
    return absl::ResourceExhaustedError(
        message + "; the data dir's disk is full: free space there (writes resume by themselves)");
  }
  if (status.IsInvalidArgument()) return absl::InvalidArgumentError(message);
  if (status.IsBusy() || status.IsTimedOut() || status.IsTryAgain() || status.IsIOError()) {
    return absl::UnavailableError(message);
  }
  return absl::InternalError(message);
}

Result<std::unique_ptr<RocksDb>> RocksDb::Open(const Options& options) {
  if (Status s = CheckNotLost(options); !s.ok()) return s;
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
  if (options.env != nullptr) db_options.env = options.env;

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
  out->path_ = options.path;
  for (size_t i = 0; i < names.size(); ++i) out->families_[names[i]] = handles[i];
  std::error_code ec;
  if (!options.created_marker.empty() && !fs::exists(options.created_marker, ec)) {
    const std::string note = fmt::format(
        "the database {} exists; while this file does, the daemon refuses to start without it\n",
        options.path);
    if (Status s = WriteDurably(options.created_marker, note); !s.ok()) return s;
  }
  return out;
}

RocksDb::~RocksDb() {
  if (!db_) return;
  for (auto& [name, handle] : families_) (void)db_->DestroyColumnFamilyHandle(handle);
  (void)db_->Close();
}

RocksDb::DiskSpace RocksDb::Space() const {
  struct statvfs stats {};
  if (::statvfs(path_.c_str(), &stats) != 0) return {};
  return {static_cast<uint64_t>(stats.f_bavail) * stats.f_frsize,
          static_cast<uint64_t>(stats.f_blocks) * stats.f_frsize};
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

Status RocksDb::Restore(const std::string& checkpoint_dir, const std::string& db_path,
                        const RestoreHook& hook) {
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
  if (auto recovered = RecoverRestore(db_path); !recovered.ok()) return recovered.status();
  const auto stop = [&](RestoreStep step) { return hook && !hook(step); };
  const auto aborted = [] { return absl::AbortedError("restore stopped by its test hook"); };
  // 1. Copy: until the journal exists, a crash leaves the old database untouched and the
  //    partial copy is removed by the next RecoverRestore.
  const std::string staging = db_path + ".restoring";
  fs::remove_all(staging, ec);
  fs::copy(checkpoint_dir, staging, fs::copy_options::recursive, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove_all(staging, ignored);
    return absl::InternalError(
        fmt::format("cannot copy {} to {}: {}", checkpoint_dir, staging, ec.message()));
  }
  SyncTree(staging);
  if (stop(RestoreStep::kCopied)) return aborted();
  // 2. Journal: from here on the swap is completed (rolled forward) by RecoverRestore.
  const std::string backup = fs::exists(db_path, ec) ? BackupPath(db_path) : "";
  if (Status s = WriteDurably(db_path + ".restore-journal", backup + "\n"); !s.ok()) return s;
  if (stop(RestoreStep::kJournaled)) return aborted();
  // 3. and 4. The two renames; 5. the journal goes.
  if (!backup.empty()) {
    if (Status s = Rename(db_path, backup); !s.ok()) return s;
  }
  if (stop(RestoreStep::kMovedAside)) return aborted();
  if (Status s = Rename(staging, db_path); !s.ok()) return s;
  if (stop(RestoreStep::kSwapped)) return aborted();
  fs::remove(db_path + ".restore-journal", ec);
  SyncPath(fs::path(db_path).parent_path());
  return absl::OkStatus();
}

Result<std::string> RocksDb::RecoverRestore(const std::string& db_path) {
  const std::string staging = db_path + ".restoring";
  const std::string journal = db_path + ".restore-journal";
  std::error_code ec;
  if (!fs::exists(journal, ec)) {
    if (!fs::exists(staging, ec)) return std::string();
    fs::remove_all(staging, ec);  // a copy that never finished; the database was not touched
    return fmt::format("removed {}, the partial copy of an interrupted restore", staging);
  }
  std::string backup;
  std::getline(std::ifstream(journal), backup);
  std::string done;
  if (fs::exists(staging, ec)) {
    // The copy is complete (the journal is written after it): finish the swap.
    if (fs::exists(db_path, ec)) {
      if (backup.empty() || fs::exists(backup, ec)) backup = BackupPath(db_path);
      if (Status s = Rename(db_path, backup); !s.ok()) return s;
    }
    if (Status s = Rename(staging, db_path); !s.ok()) return s;
    done = fmt::format("completed an interrupted restore: {} is the restored snapshot", db_path);
    if (!backup.empty()) done += fmt::format("; the previous database is at {}", backup);
  } else if (!fs::exists(db_path, ec) && !backup.empty() && fs::exists(backup, ec)) {
    if (Status s = Rename(backup, db_path); !s.ok()) return s;
    done = fmt::format("rolled back an interrupted restore: {} is back in place", db_path);
  } else {
    done = fmt::format("finished an interrupted restore of {}", db_path);
  }
  fs::remove(journal, ec);
  SyncPath(fs::path(db_path).parent_path());
  return done;
}

}  // namespace micro::storage
