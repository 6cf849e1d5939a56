// The contract of Config over every document backend, and the secret box under it.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "services/config/documents.h"
#include "services/config/json_config.h"
#include "services/config/secret_box.h"
#include "tests/support/temp_dir.h"

namespace micro::config {
namespace {

const std::string kKey(32, 'k');

template <typename T>
struct Backend;

template <>
struct Backend<MemoryDocuments> {
  std::unique_ptr<Documents> Make() { return std::make_unique<MemoryDocuments>(); }
};

template <>
struct Backend<RocksDbDocuments> {
  Backend() {
    auto opened = storage::RocksDb::Open({dir.path() + "/db", {RocksDbDocuments::kFamily}});
    REQUIRE(opened.ok());
    db = std::move(*opened);
  }
  std::unique_ptr<Documents> Make() { return std::make_unique<RocksDbDocuments>(*db); }
  testing::TempDir dir;
  std::unique_ptr<storage::RocksDb> db;
};

template <typename T>
struct Fixture {
  Fixture() : config(backend.Make(), *SecretBox::FromKey(kKey)) {}

  std::string Get(const std::string& path, bool reveal = false) {
    auto value = config.Get("micro", path, reveal);
    REQUIRE(value.ok());
    return *value;
  }

  Backend<T> backend;
  JsonConfig config;
};

std::vector<Change> Drain(ConfigWatcher& watcher) {
  std::vector<Change> out;
  while (auto c = watcher.Next()) out.push_back(*c);
  return out;
}

#define BACKENDS MemoryDocuments, RocksDbDocuments

TEMPLATE_TEST_CASE("values are set and read by dotted path", "[config][contract]", BACKENDS) {
  Fixture<TestType> f;
  REQUIRE(f.config.Set("micro", "db.host", R"("localhost")", false).ok());
  REQUIRE(f.config.Set("micro", "db.port", "5432", false).ok());
  CHECK(f.Get("db.host") == R"("localhost")");
  CHECK(f.Get("db") == R"({"host":"localhost","port":5432})");
  CHECK(f.Get("") == R"({"db":{"host":"localhost","port":5432}})");
  CHECK(f.config.Get("micro", "db.user", false).status().code() == absl::StatusCode::kNotFound);
  CHECK(f.config.Get("micro", "db.host.deeper", false).status().code() ==
        absl::StatusCode::kNotFound);
  CHECK(f.config.Get("other", "db", false).status().code() == absl::StatusCode::kNotFound);
}

TEMPLATE_TEST_CASE("setting an object merges it leaf by leaf", "[config][contract]", BACKENDS) {
  Fixture<TestType> f;
  REQUIRE(f.config.Set("micro", "db", R"({"host":"a","pool":{"min":1,"max":5}})", false).ok());
  REQUIRE(f.config.Set("micro", "db", R"({"pool":{"max":10},"user":"app"})", false).ok());
  CHECK(f.Get("db") == R"({"host":"a","pool":{"max":10,"min":1},"user":"app"})");
  REQUIRE(f.config.Set("micro", "db.pool", "[1,2]", false).ok());  // not an object: replaces
  CHECK(f.Get("db.pool") == "[1,2]");
  REQUIRE(f.config.Set("micro", "", R"({"feature":{"on":true}})", false).ok());
  CHECK(f.Get("feature.on") == "true");
  CHECK(f.Get("db.host") == R"("a")");
}

TEMPLATE_TEST_CASE("delete removes a path, and a missing path is fine", "[config][contract]",
                   BACKENDS) {
  Fixture<TestType> f;
  REQUIRE(f.config.Set("micro", "a", R"({"b":1,"c":2})", false).ok());
  REQUIRE(f.config.Delete("micro", "a.b").ok());
  CHECK(f.Get("a") == R"({"c":2})");
  CHECK(f.config.Delete("micro", "a.zzz").ok());
  CHECK(f.config.Delete("micro", "nothing.here").ok());
  REQUIRE(f.config.Delete("micro", "").ok());
  CHECK(f.config.Get("micro", "", false).status().code() == absl::StatusCode::kNotFound);
}

TEMPLATE_TEST_CASE("bad JSON, paths and sizes are INVALID_ARGUMENT and change nothing",
                   "[config][contract]", BACKENDS) {
  Fixture<TestType> f;
  REQUIRE(f.config.Set("micro", "a", "1", false).ok());
  for (const auto& [path, value] : std::vector<std::pair<std::string, std::string>>{
           {"a", "{not json"},
           {"a", ""},
           {"a..b", "1"},
           {".a", "1"},
           {"a.", "1"},
           {"$secret", "1"},
           {"", "5"},
           {std::string(1025, 'p'), "1"},
           {"a", "\"" + std::string(70000, 'x') + "\""},
           {"a", R"({"$secret":"AAAA"})"},
           {"a", R"({"x.y":1})"},
           {"a", R"({"ok":{"":2}})"}}) {
    INFO(path.substr(0, 20) << " = " << value.substr(0, 20));
    CHECK(f.config.Set("micro", path, value, false).code() == absl::StatusCode::kInvalidArgument);
  }
  CHECK(f.Get("") == R"({"a":1})");
}

TEMPLATE_TEST_CASE("secret leaves are encrypted at rest and masked unless asked for",
                   "[config][contract][secret]", BACKENDS) {
  Fixture<TestType> f;
  REQUIRE(f.config.Set("micro", "db.password", R"("hunter2")", true).ok());
  REQUIRE(f.config.Set("micro", "db.user", R"("app")", false).ok());
  REQUIRE(f.config.Set("micro", "api", R"({"token":"t0k","limits":[1,2]})", true).ok());
  CHECK(f.Get("db.password") == R"("[secret]")");
  CHECK(f.Get("db") == R"({"password":"[secret]","user":"app"})");
  CHECK(f.Get("db.password", true) == R"("hunter2")");
  CHECK(f.Get("api", true) == R"({"limits":[1,2],"token":"t0k"})");
  CHECK(f.Get("api") == R"({"limits":"[secret]","token":"[secret]"})");
  // Overwriting a secret with a plain value makes it plain again.
  REQUIRE(f.config.Set("micro", "api.token", R"("public")", false).ok());
  CHECK(f.Get("api.token") == R"("public")");
}

TEMPLATE_TEST_CASE("watchers see changes at, under and above their path",
                   "[config][contract][watch]", BACKENDS) {
  Fixture<TestType> f;
  auto db = f.config.Watch("micro", "db", [] {});
  auto all = f.config.Watch("micro", "", [] {});
  auto other = f.config.Watch("other", "", [] {});
  REQUIRE((db.ok() && all.ok() && other.ok()));
  REQUIRE(f.config.Set("micro", "db.host", R"("a")", false).ok());
  REQUIRE(f.config.Set("micro", "cache.ttl", "5", false).ok());
  REQUIRE(f.config.Set("micro", "db.password", R"("s3cret")", true).ok());
  REQUIRE(f.config.Delete("micro", "db").ok());

  auto seen = Drain(**db);
  REQUIRE(seen.size() == 3);
  CHECK((seen[0].path == "db.host" && seen[0].value == R"("a")"));
  CHECK(seen[1].value == R"("[secret]")");  // never the secret itself
  CHECK((seen[2].path == "db" && seen[2].value == "null"));
  CHECK(Drain(**all).size() == 4);
  CHECK(Drain(**other).empty());
  f.config.CloseWatchers();
  CHECK((**db).status().code() == absl::StatusCode::kUnavailable);
}

TEST_CASE("RocksDB config keeps secrets encrypted on disk and survives a reopen",
          "[config][secret]") {
  testing::TempDir dir;
  const storage::RocksDb::Options options{dir.path() + "/db", {RocksDbDocuments::kFamily}};
  {
    auto db = storage::RocksDb::Open(options);
    REQUIRE(db.ok());
    JsonConfig config(std::make_unique<RocksDbDocuments>(**db), *SecretBox::FromKey(kKey));
    REQUIRE(config.Set("micro", "db.password", R"("hunter2-very-secret")", true).ok());
    auto raw = RocksDbDocuments(**db).Load("micro");
    REQUIRE(raw.ok());
    REQUIRE(raw->has_value());
    CHECK((*raw)->find("hunter2") == std::string::npos);
    CHECK((*raw)->find("$secret") != std::string::npos);
  }
  auto db = storage::RocksDb::Open(options);
  REQUIRE(db.ok());
  JsonConfig config(std::make_unique<RocksDbDocuments>(**db), *SecretBox::FromKey(kKey));
  CHECK(*config.Get("micro", "db.password", true) == R"("hunter2-very-secret")");
  JsonConfig wrong_key(std::make_unique<RocksDbDocuments>(**db),
                       *SecretBox::FromKey(std::string(32, 'x')));
  CHECK(wrong_key.Get("micro", "db.password", true).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(*wrong_key.Get("micro", "db.password", false) == R"("[secret]")");
}

TEST_CASE("the secret box seals, opens and refuses tampering and bad keys", "[config][secret]") {
  auto box = SecretBox::FromKey(kKey);
  REQUIRE(box.ok());
  auto sealed = box->Seal("plain text");
  REQUIRE(sealed.ok());
  CHECK(*sealed != *box->Seal("plain text"));  // a fresh nonce every time
  CHECK(*box->Open(*sealed) == "plain text");
  std::string tampered = *sealed;
  tampered[20] = tampered[20] == 'A' ? 'B' : 'A';
  CHECK(box->Open(tampered).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(SecretBox::FromKey("short").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(SecretBox::FromBase64Key("not base64!").status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(SecretBox::FromBase64Key(Base64Encode(kKey)).ok());
}

TEST_CASE("a missing key file is created with mode 0600 and reused", "[config][secret]") {
  testing::TempDir dir;
  const std::string path = dir.path() + "/config.key";
  auto first = SecretBox::FromKeyFile(path);
  REQUIRE(first.ok());
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  auto sealed = first->Seal("x");
  auto again = SecretBox::FromKeyFile(path);
  REQUIRE(again.ok());
  CHECK(*again->Open(*sealed) == "x");
  std::ofstream(path) << "garbage\n";
  CHECK(SecretBox::FromKeyFile(path).status().code() == absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace micro::config
