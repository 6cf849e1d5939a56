// The contract every Store backend must pass.
#include <catch2/catch.hpp>
#include <future>

#include "core/fake_clock.h"
#include "services/store/memory_store.h"
#include "services/store/rocksdb_store.h"
#include "tests/support/temp_dir.h"

namespace micro::store {
namespace {

using namespace std::chrono_literals;

template <typename T>
struct Backend;

template <>
struct Backend<MemoryStore> {
  explicit Backend(Clock& clock, Limits limits)
      : store(std::make_unique<MemoryStore>(clock, limits)) {}
  std::unique_ptr<Store> store;
};

template <>
struct Backend<RocksDbStore> {
  Backend(Clock& clock, Limits limits) {
    auto opened = storage::RocksDb::Open(
        {dir.path() + "/db", {RocksDbStore::kRecordsFamily, RocksDbStore::kExpiryFamily}});
    REQUIRE(opened.ok());
    db = std::move(*opened);
    auto made = RocksDbStore::Open(*db, clock, limits);
    REQUIRE(made.ok());
    store = std::move(*made);
  }
  testing::TempDir dir;
  std::unique_ptr<storage::RocksDb> db;
  std::unique_ptr<Store> store;
};

template <typename T>
struct Fixture {
  explicit Fixture(Limits limits = {}) : backend(clock, limits), store(*backend.store) {}

  Result<uint64_t> Write(const std::string& key, const std::string& value, int64_t ttl = 0,
                         Condition condition = {}, const std::string& table = "t") {
    std::promise<Result<uint64_t>> done;
    store.Write("db", table, Record{key, value, ttl, {{"kind", "test"}}, 0}, condition,
                [&](Result<uint64_t> r) { done.set_value(std::move(r)); });
    return done.get_future().get();
  }

  Status Delete(const std::string& key, const std::string& table = "t") {
    std::promise<Status> done;
    store.Delete("db", table, key, [&](Status s) { done.set_value(s); });
    return done.get_future().get();
  }

  std::vector<std::string> Keys(Scan scan, const std::string& table = "t") {
    auto page = store.Read("db", table, scan);
    REQUIRE(page.ok());
    std::vector<std::string> keys;
    for (const auto& r : page->records) keys.push_back(r.key);
    return keys;
  }

  std::vector<std::string> Listed(Scan scan, size_t chunk = 2) {
    auto cursor = store.List("db", "t", scan);
    REQUIRE(cursor.ok());
    std::vector<std::string> keys;
    while (!(*cursor)->AtEnd()) {
      auto next = (*cursor)->Next(chunk);
      REQUIRE(next.ok());
      REQUIRE(next->size() <= chunk);
      keys.insert(keys.end(), next->begin(), next->end());
    }
    return keys;
  }

  FakeClock clock;
  Backend<T> backend;
  Store& store;
};

using Strings = std::vector<std::string>;

#define BACKENDS MemoryStore, RocksDbStore

TEMPLATE_TEST_CASE("a written record reads back with its metadata and revision",
                   "[store][contract]", BACKENDS) {
  Fixture<TestType> f;
  auto revision = f.Write("k", std::string("v\0binary", 8));
  REQUIRE(revision.ok());
  auto record = f.store.Get("db", "t", "k");
  REQUIRE(record.ok());
  CHECK(record->value == std::string("v\0binary", 8));
  CHECK(record->metadata.at("kind") == "test");
  CHECK(record->revision == *revision);
  CHECK(record->ttl_seconds == 0);
}

TEMPLATE_TEST_CASE("Stats counts the records and the bytes the quota counts", "[store][contract]",
                   BACKENDS) {
  Fixture<TestType> f;
  CHECK(f.store.Stats().records == 0);
  CHECK(f.store.Stats().bytes == 0);
  REQUIRE(f.Write("k1", "value").ok());
  REQUIRE(f.Write("k2", "value", 0, {}, "other").ok());
  // Each record with its database and table names: "db" "t" and "db" "other", and 2.
  const uint64_t record = RecordBytes("k1", "value", {{"kind", "test"}});
  const StoreStats stats = f.store.Stats();
  CHECK(stats.records == 2);
  CHECK(stats.bytes == (record + 5) + (record + 9));
  REQUIRE(f.Delete("k1").ok());
  CHECK(f.store.Stats().bytes == record + 9);
}

TEMPLATE_TEST_CASE("revisions strictly increase across keys and overwrites", "[store][contract]",
                   BACKENDS) {
  Fixture<TestType> f;
  uint64_t last = 0;
  for (const char* key : {"a", "b", "a", "c", "a"}) {
    auto revision = f.Write(key, "v");
    REQUIRE(revision.ok());
    CHECK(*revision > last);
    last = *revision;
  }
  CHECK(f.store.Get("db", "t", "a")->revision == last);
}

TEMPLATE_TEST_CASE("a missing key is NOT_FOUND and a deleted one too", "[store][contract]",
                   BACKENDS) {
  Fixture<TestType> f;
  CHECK(f.store.Get("db", "t", "nope").status().code() == absl::StatusCode::kNotFound);
  REQUIRE(f.Write("k", "v").ok());
  REQUIRE(f.Delete("k").ok());
  CHECK(f.store.Get("db", "t", "k").status().code() == absl::StatusCode::kNotFound);
  CHECK(f.Delete("k").ok());  // deleting again is fine
}

TEMPLATE_TEST_CASE("databases and tables keep records apart and are listed", "[store][contract]",
                   BACKENDS) {
  Fixture<TestType> f;
  REQUIRE(f.Write("k", "in t").ok());
  REQUIRE(f.Write("k", "in u", 0, {}, "u").ok());
  CHECK(f.store.Get("db", "t", "k")->value == "in t");
  CHECK(f.store.Get("db", "u", "k")->value == "in u");
  CHECK(f.store.Get("other", "t", "k").status().code() == absl::StatusCode::kNotFound);
  CHECK(*f.store.Databases() == Strings{"db"});
  CHECK(*f.store.Tables("db") == Strings{"t", "u"});
  CHECK(f.store.Tables("other")->empty());
  REQUIRE(f.Delete("k", "u").ok());
  CHECK(*f.store.Tables("db") == Strings{"t"});
}

TEMPLATE_TEST_CASE("prefix and suffix scans honour limit, offset and order", "[store][contract]",
                   BACKENDS) {
  Fixture<TestType> f;
  for (const char* key :
       {"user/1/name", "user/1/mail", "user/2/name", "user/10/name", "users", "zeta/name"}) {
    REQUIRE(f.Write(key, "v").ok());
  }
  CHECK(f.Keys({"user/", "", 0, 0, Order::kAsc}) ==
        Strings{"user/1/mail", "user/1/name", "user/10/name", "user/2/name"});
  CHECK(f.Keys({"user/", "", 0, 0, Order::kDesc}) ==
        Strings{"user/2/name", "user/10/name", "user/1/name", "user/1/mail"});
  CHECK(f.Keys({"user/", "", 2, 1, Order::kAsc}) == Strings{"user/1/name", "user/10/name"});
  CHECK(f.Keys({"", "/name", 0, 0, Order::kAsc}) ==
        Strings{"user/1/name", "user/10/name", "user/2/name", "zeta/name"});
  CHECK(f.Keys({"user/1", "/name", 0, 0, Order::kDesc}) == Strings{"user/10/name", "user/1/name"});
  CHECK(f.Keys({"nothing", "", 0, 0, Order::kAsc}).empty());
  CHECK(f.Keys({"", "", 0, 4, Order::kAsc}) == Strings{"users", "zeta/name"});
}

TEMPLATE_TEST_CASE("List streams every key in bounded chunks", "[store][contract]", BACKENDS) {
  Fixture<TestType> f;
  Strings expected;
  for (int i = 0; i < 25; ++i) {
    char key[16];
    std::snprintf(key, sizeof key, "k%02d", i);
    REQUIRE(f.Write(key, "v").ok());
    expected.push_back(key);
  }
  CHECK(f.Listed({}, 4) == expected);
  CHECK(f.Listed({"k1", "", 0, 0, Order::kDesc}, 3) ==
        Strings{"k19", "k18", "k17", "k16", "k15", "k14", "k13", "k12", "k11", "k10"});
  CHECK(f.Listed({"", "5", 2, 0, Order::kAsc}) == Strings{"k05", "k15"});
}

TEMPLATE_TEST_CASE("if_absent and if_revision write only when they hold", "[store][contract]",
                   BACKENDS) {
  Fixture<TestType> f;
  auto first = f.Write("k", "one", 0, {0, true});
  REQUIRE(first.ok());
  auto refused = f.Write("k", "two", 0, {0, true});
  CHECK(refused.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(f.store.Get("db", "t", "k")->value == "one");

  CHECK(f.Write("k", "stale", 0, {*first + 100, false}).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  auto second = f.Write("k", "two", 0, {*first, false});
  REQUIRE(second.ok());
  CHECK(f.Write("k", "again", 0, {*first, false}).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(f.store.Get("db", "t", "k")->value == "two");
  CHECK(f.Write("missing", "v", 0, {5, false}).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(f.store.Get("db", "t", "missing").status().code() == absl::StatusCode::kNotFound);
}

TEMPLATE_TEST_CASE("concurrent compare-and-set lets exactly one writer win each round",
                   "[store][contract]", BACKENDS) {
  Fixture<TestType> f;
  auto base = f.Write("counter", "0");
  REQUIRE(base.ok());
  std::vector<std::promise<Result<uint64_t>>> results(8);
  for (auto& r : results) {
    f.store.Write("db", "t", Record{"counter", "x", 0, {}, 0}, Condition{*base, false},
                  [&r](Result<uint64_t> out) { r.set_value(std::move(out)); });
  }
  int won = 0;
  for (auto& r : results) won += r.get_future().get().ok() ? 1 : 0;
  CHECK(won == 1);
}

TEMPLATE_TEST_CASE("an expired record is never returned and is removed in the background",
                   "[store][contract][ttl]", BACKENDS) {
  Fixture<TestType> f;
  REQUIRE(f.Write("short", "v", 10).ok());
  REQUIRE(f.Write("long", "v", 100).ok());
  f.clock.Advance(4s);
  auto record = f.store.Get("db", "t", "short");
  REQUIRE(record.ok());
  CHECK(record->ttl_seconds == 6);

  f.clock.Advance(7s);
  CHECK(f.store.Get("db", "t", "short").status().code() == absl::StatusCode::kNotFound);
  CHECK(f.Keys({}) == Strings{"long"});
  CHECK(f.Listed({}) == Strings{"long"});
  CHECK(f.Write("short", "new", 0, {0, true}).ok());  // if_absent: the expired one is absent

  f.clock.Advance(100s);
  f.store.ExpireRecords();
  REQUIRE(f.Write("flush", "v").ok());  // the sweep's deletes commit before this write
  CHECK(f.Keys({}) == Strings{"flush", "short"});
  REQUIRE(f.Delete("flush").ok());
  REQUIRE(f.Delete("short").ok());
  CHECK(f.store.Databases()->empty());
}

TEMPLATE_TEST_CASE("bad input is INVALID_ARGUMENT and writes nothing", "[store][contract][limits]",
                   BACKENDS) {
  Limits limits;
  limits.max_value_bytes = 100;
  Fixture<TestType> f(limits);
  CHECK(f.Write("", "v").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(f.Write(std::string(1025, 'k'), "v").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(f.Write("k", std::string(101, 'v')).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(f.Write("k", "v", -1).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(f.Write("\xff\xfe", "v").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(f.Write("k", "v", 0, {}, "bad table").status().code() ==
        absl::StatusCode::kInvalidArgument);
  Record big_meta{"k", "v", 0, {}, 0};
  for (int i = 0; i < 65; ++i) big_meta.metadata["m" + std::to_string(i)] = "x";
  std::promise<Result<uint64_t>> done;
  f.store.Write("db", "t", big_meta, {}, [&](Result<uint64_t> r) { done.set_value(r); });
  CHECK(done.get_future().get().status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(f.store.Get("db", "t", "").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(f.store.Get("", "t", "k").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(f.store.Databases()->empty());
}

TEMPLATE_TEST_CASE("a scan returns at most the documented maximum", "[store][contract][limits]",
                   BACKENDS) {
  Limits limits;
  limits.max_scan_records = 5;
  Fixture<TestType> f(limits);
  for (int i = 0; i < 8; ++i) REQUIRE(f.Write("k" + std::to_string(i), "v").ok());
  CHECK(f.Keys({}).size() == 5);
  CHECK(f.Keys({"", "", 3, 0, Order::kAsc}).size() == 3);
  CHECK(f.Listed({}).size() == 8);  // List is not capped: it streams
}

TEMPLATE_TEST_CASE("a Read page stops at the byte budget and says where the next one starts",
                   "[store][contract][limits]", BACKENDS) {
  Limits limits;
  limits.max_read_bytes = 100;
  Fixture<TestType> f(limits);
  // Each record weighs 2 (key) + 40 (value) + 8 (metadata "kind=test") = 50 bytes.
  for (int i = 0; i < 5; ++i) REQUIRE(f.Write("k" + std::to_string(i), std::string(40, 'v')).ok());
  auto first = f.store.Read("db", "t", Scan{});
  REQUIRE(first.ok());
  CHECK(first->records.size() == 2);
  CHECK(first->more);
  auto last = f.store.Read("db", "t", Scan{"", "", 0, 4, Order::kAsc});
  REQUIRE(last.ok());
  CHECK(last->records.size() == 1);
  CHECK_FALSE(last->more);
  // A record bigger than the budget still comes, alone: a page is never empty.
  REQUIRE(f.Write("k0", std::string(500, 'v')).ok());
  auto big = f.store.Read("db", "t", Scan{});
  REQUIRE(big.ok());
  CHECK(big->records.size() == 1);
  CHECK(big->more);
  // The record cap sets `more` only when another record matches.
  auto capped = f.store.Read("db", "t", Scan{"k4", "", 1, 0, Order::kAsc});
  REQUIRE(capped.ok());
  CHECK(capped->records.size() == 1);
  CHECK_FALSE(capped->more);
}

TEMPLATE_TEST_CASE("a scan that steps over too many keys is RESOURCE_EXHAUSTED",
                   "[store][contract][limits]", BACKENDS) {
  Limits limits;
  limits.max_scan_visits = 10;
  Fixture<TestType> f(limits);
  for (int i = 0; i < 30; ++i) REQUIRE(f.Write("k" + std::to_string(100 + i), "v").ok());
  auto sparse = f.store.Read("db", "t", Scan{"", "nothing", 0, 0, Order::kAsc});
  CHECK(sparse.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK(sparse.status().message().find("10 keys") != std::string::npos);
  auto far = f.store.Read("db", "t", Scan{"", "", 0, 20, Order::kAsc});
  CHECK(far.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK(f.Keys({"k10", "", 0, 0, Order::kAsc}).size() == 10);  // a prefix scan visits its own
  CHECK(f.Keys({"k12", "", 0, 0, Order::kDesc}).size() == 10);
  // List goes on past the bound, a bounded number of keys per chunk.
  CHECK(f.Listed({"", "9", 0, 0, Order::kAsc}) == Strings{"k109", "k119", "k129"});
}

TEST_CASE("RocksDbStore keeps records and revisions across a reopen", "[store][rocksdb]") {
  testing::TempDir dir;
  FakeClock clock;
  const storage::RocksDb::Options options{
      dir.path() + "/db", {RocksDbStore::kRecordsFamily, RocksDbStore::kExpiryFamily}};
  uint64_t last = 0;
  {
    auto db = storage::RocksDb::Open(options);
    REQUIRE(db.ok());
    auto store = RocksDbStore::Open(**db, clock);
    REQUIRE(store.ok());
    std::promise<Result<uint64_t>> done;
    (*store)->Write("db", "t", Record{"k", "kept", 0, {}, 0}, {},
                    [&](Result<uint64_t> r) { done.set_value(r); });
    last = *done.get_future().get();
  }
  auto db = storage::RocksDb::Open(options);
  REQUIRE(db.ok());
  auto store = RocksDbStore::Open(**db, clock);
  REQUIRE(store.ok());
  CHECK((*store)->Get("db", "t", "k")->value == "kept");
  std::promise<Result<uint64_t>> done;
  (*store)->Write("db", "t", Record{"k2", "v", 0, {}, 0}, {},
                  [&](Result<uint64_t> r) { done.set_value(r); });
  CHECK(*done.get_future().get() > last);
}

TEST_CASE("a snapshot restores to the state it was taken in", "[store][rocksdb]") {
  testing::TempDir dir;
  FakeClock clock;
  const storage::RocksDb::Options options{
      dir.path() + "/db", {RocksDbStore::kRecordsFamily, RocksDbStore::kExpiryFamily}};
  const auto write = [](Store& store, const std::string& key, const std::string& value) {
    std::promise<Result<uint64_t>> done;
    store.Write("db", "t", Record{key, value, 0, {}, 0}, {},
                [&](Result<uint64_t> r) { done.set_value(r); });
    REQUIRE(done.get_future().get().ok());
  };
  {
    auto db = storage::RocksDb::Open(options);
    REQUIRE(db.ok());
    auto store = RocksDbStore::Open(**db, clock, Limits{}, RocksDbStore::Options{dir.path(), 0});
    REQUIRE(store.ok());
    write(**store, "before", "1");
    CHECK((*store)->Snapshot("relative/dir").status().code() == absl::StatusCode::kInvalidArgument);
    REQUIRE((*store)->Snapshot(dir.path() + "/snap").ok());
    CHECK((*store)->Snapshot(dir.path() + "/snap").status().code() ==
          absl::StatusCode::kInvalidArgument);
    write(**store, "before", "changed");
    write(**store, "after", "2");
  }
  CHECK(storage::RocksDb::Restore(dir.path() + "/nothing", options.path).code() ==
        absl::StatusCode::kInvalidArgument);
  REQUIRE(storage::RocksDb::Restore(dir.path() + "/snap", options.path).ok());
  auto db = storage::RocksDb::Open(options);
  REQUIRE(db.ok());
  auto store = RocksDbStore::Open(**db, clock);
  REQUIRE(store.ok());
  CHECK((*store)->Get("db", "t", "before")->value == "1");
  CHECK((*store)->Get("db", "t", "after").status().code() == absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace micro::store

namespace micro::store {
namespace {

TEST_CASE("RocksDbStore removes expired records and their index entries from disk",
          "[store][rocksdb][ttl]") {
  testing::TempDir dir;
  FakeClock clock;
  auto db = storage::RocksDb::Open(
      {dir.path() + "/db", {RocksDbStore::kRecordsFamily, RocksDbStore::kExpiryFamily}});
  REQUIRE(db.ok());
  auto store = RocksDbStore::Open(**db, clock);
  REQUIRE(store.ok());
  const auto write = [&](const std::string& key, int64_t ttl) {
    std::promise<Result<uint64_t>> done;
    (*store)->Write("db", "t", Record{key, "v", ttl, {}, 0}, {},
                    [&](Result<uint64_t> r) { done.set_value(r); });
    REQUIRE(done.get_future().get().ok());
  };
  const auto count = [&](const char* family) {
    std::unique_ptr<rocksdb::Iterator> it(
        (*db)->db().NewIterator(rocksdb::ReadOptions(), (*db)->family(family)));
    size_t n = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next()) ++n;
    return n;
  };
  write("gone", 1);
  write("rewritten", 1);
  write("kept", 0);
  write("rewritten", 0);  // its index entry goes with the overwrite
  CHECK(count(RocksDbStore::kExpiryFamily) == 1);

  CHECK((*store)->ExpireRecords() == 0);  // nothing due yet
  clock.Advance(std::chrono::seconds(2));
  CHECK((*store)->ExpireRecords() == 1);
  write("barrier", 0);  // the committer has applied the sweep before this write
  CHECK(count(RocksDbStore::kExpiryFamily) == 0);
  CHECK(count(RocksDbStore::kRecordsFamily) == 3);  // kept, rewritten, barrier
  std::string raw;
  CHECK((*db)
            ->db()
            .Get(rocksdb::ReadOptions(), (*db)->family(RocksDbStore::kRecordsFamily),
                 std::string("db\0t\0gone", 9), &raw)
            .IsNotFound());
}

}  // namespace
}  // namespace micro::store
