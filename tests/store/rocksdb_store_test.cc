// RocksDbStore and its database on disk: the TTL index, the quota, snapshot confinement and
// a restore interrupted at every step.
#include "services/store/rocksdb_store.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <future>

#include "core/fake_clock.h"
#include "services/store/snapshot_path.h"
#include "tests/support/temp_dir.h"

namespace micro::store {
namespace {

namespace fs = std::filesystem;
using Code = absl::StatusCode;

// A RocksDbStore in a temp dir, reopened at will.
struct Harness {
  explicit Harness(RocksDbStore::Options options = {}) : options(std::move(options)) { Open(); }

  void Open() {
    store.reset();
    db.reset();
    auto opened = storage::RocksDb::Open(DbOptions());
    REQUIRE(opened.ok());
    db = std::move(*opened);
    auto made = RocksDbStore::Open(*db, clock, Limits{}, options);
    REQUIRE(made.ok());
    store = std::move(*made);
  }

  storage::RocksDb::Options DbOptions() const {
    storage::RocksDb::Options db_options{
        dir.path() + "/db", {RocksDbStore::kRecordsFamily, RocksDbStore::kExpiryFamily}};
    db_options.created_marker = dir.path() + "/db.created";
    return db_options;
  }

  Result<uint64_t> Write(const std::string& key, const std::string& value, int64_t ttl = 0) {
    std::promise<Result<uint64_t>> done;
    store->Write("db", "t", Record{key, value, ttl, {}, 0}, {},
                 [&](Result<uint64_t> r) { done.set_value(std::move(r)); });
    return done.get_future().get();
  }

  Status Delete(const std::string& key) {
    std::promise<Status> done;
    store->Delete("db", "t", key, [&](Status s) { done.set_value(s); });
    return done.get_future().get();
  }

  size_t Count(const char* family) {
    std::unique_ptr<rocksdb::Iterator> it(
        db->db().NewIterator(rocksdb::ReadOptions(), db->family(family)));
    size_t n = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next()) ++n;
    return n;
  }

  RocksDbStore::Options options;
  testing::TempDir dir;
  FakeClock clock;
  std::unique_ptr<storage::RocksDb> db;
  std::unique_ptr<RocksDbStore> store;
};

TEST_CASE("the TTL index holds one entry per stored key with a TTL after overwrites and deletes",
          "[store][rocksdb][ttl]") {
  Harness h;
  for (int i = 0; i < 5; ++i) {
    REQUIRE(h.Write("renewed", "v", 10 + i).ok());  // a session renewed again and again
    h.clock.Advance(std::chrono::milliseconds(10));
  }
  REQUIRE(h.Write("made-permanent", "v", 10).ok());
  REQUIRE(h.Write("made-permanent", "v", 0).ok());
  REQUIRE(h.Write("deleted", "v", 10).ok());
  REQUIRE(h.Delete("deleted").ok());
  REQUIRE(h.Write("kept", "v", 10).ok());
  CHECK(h.Count(RocksDbStore::kExpiryFamily) == 2);  // renewed, kept
  CHECK(h.Count(RocksDbStore::kRecordsFamily) == 3);

  h.clock.Advance(std::chrono::seconds(60));
  CHECK(h.store->ExpireRecords() == 2);
  REQUIRE(h.Write("barrier", "v").ok());  // the sweep has committed before this write
  CHECK(h.Count(RocksDbStore::kExpiryFamily) == 0);
  CHECK(h.Count(RocksDbStore::kRecordsFamily) == 2);  // made-permanent, barrier
}

TEST_CASE("writes past the quota are RESOURCE_EXHAUSTED while deletes free room at once",
          "[store][rocksdb][quota]") {
  RocksDbStore::Options options;
  options.quota_bytes = 1000;
  Harness h(options);
  int written = 0;
  Result<uint64_t> last = uint64_t{0};
  while ((last = h.Write("k" + std::to_string(written), std::string(300, 'v'))).ok()) ++written;
  CHECK(written == 3);  // each weighs 300 bytes plus its key with database and table
  CHECK(last.status().code() == Code::kResourceExhausted);
  CHECK(last.status().message().find("store.quota_bytes") != std::string::npos);
  CHECK(h.store->Alarm().find("quota") != std::string::npos);
  CHECK(h.Write("k0", "small").ok());  // a write that shrinks a record is never refused

  REQUIRE(h.Delete("k1").ok());
  REQUIRE(h.Write("again", std::string(300, 'v')).ok());
  CHECK(h.store->Alarm().empty());

  // The count is kept on disk with the records: the quota holds across a restart.
  const uint64_t stored = h.store->stored_bytes();
  h.Open();
  CHECK(h.store->stored_bytes() == stored);
  CHECK(h.Write("one-more", std::string(300, 'v')).ok());  // 940 bytes of 1000
  CHECK(h.Write("two-more", std::string(300, 'v')).status().code() == Code::kResourceExhausted);
}

TEST_CASE("snapshots are confined to the snapshot folder", "[store][rocksdb][snapshot]") {
  testing::TempDir dir;
  const std::string root = dir.path() + "/snapshots";
  auto named = SnapshotPath(root, "nightly");
  REQUIRE(named.ok());
  CHECK(*named == fs::canonical(dir.path()).string() + "/snapshots/nightly");
  CHECK(fs::is_directory(root));  // created on first use
  CHECK(SnapshotPath(root, root + "/inside").ok());

  CHECK(SnapshotPath(root, dir.path() + "/outside").status().code() == Code::kPermissionDenied);
  CHECK(SnapshotPath(root, "/etc/cron.d/x").status().code() == Code::kPermissionDenied);
  CHECK(SnapshotPath(root, root).status().code() == Code::kPermissionDenied);
  auto dotted = SnapshotPath(root, "../escape");
  CHECK(dotted.status().code() == Code::kInvalidArgument);
  CHECK(dotted.status().message().find(root) != std::string::npos);
  CHECK(SnapshotPath(root, "a/../../escape").status().code() == Code::kInvalidArgument);
  CHECK(SnapshotPath(root, "").status().code() == Code::kInvalidArgument);
  CHECK(SnapshotPath(root, "missing-folder/x").status().code() == Code::kInvalidArgument);

  fs::create_directory(dir.path() + "/elsewhere");
  fs::create_directory_symlink(dir.path() + "/elsewhere", root + "/link");
  auto through_link = SnapshotPath(root, "link/x");
  CHECK(through_link.status().code() == Code::kPermissionDenied);
  CHECK(through_link.status().message().find("outside the snapshot folder") != std::string::npos);
  fs::create_symlink(dir.path() + "/dangling-target", root + "/dangling");
  CHECK(SnapshotPath(root, "dangling").status().code() == Code::kInvalidArgument);

  RocksDbStore::Options options;
  options.snapshot_dir = root;
  Harness h(options);
  REQUIRE(h.Write("k", "v").ok());
  auto snapshot = h.store->Snapshot("nightly");
  REQUIRE(snapshot.ok());
  CHECK(snapshot->dir == *named);
  CHECK(fs::exists(*named + "/CURRENT"));
  CHECK(h.store->Snapshot("nightly").status().code() == Code::kInvalidArgument);
  CHECK(h.store->Snapshot(dir.path() + "/outside").status().code() == Code::kPermissionDenied);
  CHECK_FALSE(fs::exists(dir.path() + "/outside"));
}

TEST_CASE("a missing database is refused, not silently recreated, once there was one",
          "[store][rocksdb][restore]") {
  Harness h;
  REQUIRE(h.Write("k", "v").ok());
  h.store.reset();
  h.db.reset();
  CHECK(fs::exists(h.dir.path() + "/db.created"));
  fs::rename(h.dir.path() + "/db", h.dir.path() + "/db.lost");
  auto reopened = storage::RocksDb::Open(h.DbOptions());
  CHECK(reopened.status().code() == Code::kFailedPrecondition);
  CHECK(reopened.status().message().find("micro store restore") != std::string::npos);
  CHECK(reopened.status().message().find("db.created") != std::string::npos);
  CHECK_FALSE(fs::exists(h.dir.path() + "/db"));
}

// A database holding "state" = `value`, closed, at `path`.
void MakeDatabase(const std::string& path, const std::string& value) {
  FakeClock clock;
  auto db =
      storage::RocksDb::Open({path, {RocksDbStore::kRecordsFamily, RocksDbStore::kExpiryFamily}});
  REQUIRE(db.ok());
  auto store = RocksDbStore::Open(**db, clock);
  REQUIRE(store.ok());
  std::promise<Result<uint64_t>> done;
  (*store)->Write("db", "t", Record{"state", value, 0, {}, 0}, {},
                  [&](Result<uint64_t> r) { done.set_value(std::move(r)); });
  REQUIRE(done.get_future().get().ok());
}

std::string StateIn(const std::string& path) {
  FakeClock clock;
  auto db =
      storage::RocksDb::Open({path, {RocksDbStore::kRecordsFamily, RocksDbStore::kExpiryFamily}});
  REQUIRE(db.ok());
  auto store = RocksDbStore::Open(**db, clock);
  REQUIRE(store.ok());
  auto record = (*store)->Get("db", "t", "state");
  return record.ok() ? record->value : "<" + std::string(record.status().message()) + ">";
}

size_t Backups(const std::string& dir) {
  size_t n = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    n += entry.path().filename().string().rfind("db.before-restore-", 0) == 0 ? 1 : 0;
  }
  return n;
}

TEST_CASE("a restore interrupted at any step is completed or rolled back by the next start",
          "[store][rocksdb][restore]") {
  using Step = storage::RocksDb::RestoreStep;
  const auto [step, restored] = GENERATE(table<Step, bool>({{Step::kCopied, false},
                                                            {Step::kJournaled, true},
                                                            {Step::kMovedAside, true},
                                                            {Step::kSwapped, true}}));
  testing::TempDir dir;
  const std::string db = dir.path() + "/db";
  MakeDatabase(db, "old");
  MakeDatabase(dir.path() + "/snap", "snapshot");

  const Status crashed = storage::RocksDb::Restore(dir.path() + "/snap", db,
                                                   [step = step](Step at) { return at != step; });
  REQUIRE(crashed.code() == Code::kAborted);
  if (step == Step::kMovedAside) CHECK_FALSE(fs::exists(db));  // the window of the old bug

  auto recovered = storage::RocksDb::RecoverRestore(db);
  REQUIRE(recovered.ok());
  CHECK_FALSE(recovered->empty());
  CHECK_FALSE(fs::exists(db + ".restoring"));
  CHECK_FALSE(fs::exists(db + ".restore-journal"));
  CHECK(StateIn(db) == (restored ? "snapshot" : "old"));
  CHECK(Backups(dir.path()) == (restored ? 1u : 0u));

  auto again = storage::RocksDb::RecoverRestore(db);
  REQUIRE(again.ok());
  CHECK(again->empty());  // nothing left to do
}

TEST_CASE("a journaled restore whose copy vanished rolls the old database back",
          "[store][rocksdb][restore]") {
  testing::TempDir dir;
  const std::string db = dir.path() + "/db";
  MakeDatabase(db, "old");
  MakeDatabase(dir.path() + "/snap", "snapshot");
  REQUIRE(storage::RocksDb::Restore(dir.path() + "/snap", db, [](auto at) {
            return at != storage::RocksDb::RestoreStep::kMovedAside;
          }).code() == Code::kAborted);
  fs::remove_all(db + ".restoring");
  auto recovered = storage::RocksDb::RecoverRestore(db);
  REQUIRE(recovered.ok());
  CHECK(recovered->find("rolled back") != std::string::npos);
  CHECK(StateIn(db) == "old");
}

}  // namespace
}  // namespace micro::store
