// The contract of Config over every document backend, and the secret box under it.
#include <fmt/format.h>
#include <sys/stat.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <fstream>
#include <future>
#include <thread>

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

// Documents kept in a MemoryDocuments the test also holds, to read and change what is stored.
class SharedDocuments final : public Documents {
 public:
  explicit SharedDocuments(std::shared_ptr<Documents> inner) : inner_(std::move(inner)) {}
  Result<std::optional<std::string>> Load(const std::string& ns) override {
    return inner_->Load(ns);
  }
  Status Save(const std::string& ns, const std::string& text) override {
    return inner_->Save(ns, text);
  }

 private:
  std::shared_ptr<Documents> inner_;
};

// Memory documents whose saves of namespace `held` wait until Release(): a write that is
// slow to reach the disk, held as long as a test needs.
class HeldDocuments final : public Documents {
 public:
  explicit HeldDocuments(std::string held) : held_(std::move(held)) {}
  Result<std::optional<std::string>> Load(const std::string& ns) override {
    return inner_.Load(ns);
  }
  Status Save(const std::string& ns, const std::string& text) override {
    if (ns == held_) {
      std::unique_lock lock(mu_);
      waiting_ = true;
      cv_.notify_all();
      cv_.wait(lock, [&] { return released_; });
    }
    return inner_.Save(ns, text);
  }
  // Waits until a save of the held namespace is in progress.
  bool WaitUntilHolding() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(30), [&] { return waiting_; });
  }
  void Release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }

 private:
  const std::string held_;
  MemoryDocuments inner_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool waiting_ = false;
  bool released_ = false;
};

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

TEMPLATE_TEST_CASE("JSON the library refuses is INVALID_ARGUMENT naming the problem",
                   "[config][contract]", BACKENDS) {
  Fixture<TestType> f;
  REQUIRE(f.config.Set("micro", "a", "1", false).ok());
  const auto message = [&](const std::string& path, const std::string& value) {
    Status s = f.config.Set("micro", path, value, false);
    CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    return std::string(s.message());
  };
  CHECK(message("a", "1e999").find("out of range") != std::string::npos);
  CHECK(message("a", "[-1e999]").find("out of range") != std::string::npos);
  CHECK(message("a", "\"\xff\xfe\"").find("not valid JSON") != std::string::npos);
  CHECK(message("a\xff", "1").find("UTF-8") != std::string::npos);
  CHECK(message("a", std::string(65, '[') + std::string(65, ']')).find("the limit is 64") !=
        std::string::npos);
  CHECK(message("a", std::string(100000 / 2, '[')).find("limit") != std::string::npos);
  // Brackets inside strings are text, not nesting.
  CHECK(f.config.Set("micro", "b", "\"" + std::string(100, '[') + "\"", false).ok());
  CHECK(f.config.Set("micro", "c", std::string(64, '[') + std::string(64, ']'), false).ok());
  CHECK(f.Get("a") == "1");
}

TEST_CASE("a config write in one namespace does not hold up calls in another", "[config]") {
  auto documents = std::make_unique<HeldDocuments>("slow");
  HeldDocuments& held = *documents;
  JsonConfig config(std::move(documents), *SecretBox::FromKey(kKey));
  REQUIRE(config.Set("fast", "a", "1", false).ok());
  auto slow_write =
      std::async(std::launch::async, [&] { return config.Set("slow", "a", "1", false); });
  REQUIRE(held.WaitUntilHolding());
  // The write in "slow" is stuck in its save; "fast" must answer meanwhile.
  auto fast = std::async(std::launch::async, [&] {
    return config.Set("fast", "b", "2", false).ok() && config.Get("fast", "a", false).ok() &&
           config.Get("fast", "b", false).ok();
  });
  const bool answered = fast.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
  held.Release();
  CHECK(answered);
  CHECK(fast.get());
  CHECK(slow_write.get().ok());
  CHECK(*config.Get("slow", "a", false) == "1");
}

TEMPLATE_TEST_CASE("concurrent writes in many namespaces all land, each in watch order",
                   "[config][contract][watch]", BACKENDS) {
  Fixture<TestType> f;
  constexpr int kNamespaces = 4;
  constexpr int kWrites = 50;
  std::vector<std::unique_ptr<ConfigWatcher>> watchers;
  for (int n = 0; n < kNamespaces; ++n) {
    auto watcher = f.config.Watch("ns" + std::to_string(n), "", [] {});
    REQUIRE(watcher.ok());
    watchers.push_back(std::move(*watcher));
  }
  std::atomic<int> failed{0};  // Catch2 assertions are not thread-safe
  std::vector<std::thread> writers;
  for (int n = 0; n < kNamespaces; ++n) {
    // Two writers per namespace: saves of one namespace interleave, yet watchers see them in
    // the order the document changed.
    for (int w = 0; w < 2; ++w) {
      writers.emplace_back([&, n, w] {
        for (int i = 0; i < kWrites; ++i) {
          const std::string path = "w" + std::to_string(w) + ".v";
          if (!f.config.Set("ns" + std::to_string(n), path, std::to_string(i), false).ok()) {
            ++failed;
          }
        }
      });
    }
  }
  for (auto& t : writers) t.join();
  CHECK(failed == 0);
  for (int n = 0; n < kNamespaces; ++n) {
    const std::string ns = "ns" + std::to_string(n);
    CHECK(*f.config.Get(ns, "", false) ==
          fmt::format(R"({{"w0":{{"v":{}}},"w1":{{"v":{}}}}})", kWrites - 1, kWrites - 1));
    auto seen = Drain(*watchers[n]);
    REQUIRE(seen.size() == 2 * kWrites);
    int next[2] = {0, 0};
    for (const Change& c : seen) {
      const int w = c.path == "w0.v" ? 0 : 1;
      CHECK(c.value == std::to_string(next[w]));
      ++next[w];
    }
  }
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
  auto sealed = box->Seal("plain text", "ctx");
  REQUIRE(sealed.ok());
  CHECK(*sealed != *box->Seal("plain text", "ctx"));  // a fresh nonce every time
  CHECK(*box->Open(*sealed, "ctx") == "plain text");
  std::string tampered = *sealed;
  tampered[20] = tampered[20] == 'A' ? 'B' : 'A';
  CHECK(box->Open(tampered, "ctx").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(SecretBox::FromKey("short").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(SecretBox::FromKeyText("not base64!").status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(SecretBox::FromKeyText(Base64Encode(kKey)).ok());
}

TEST_CASE("a sealed secret opens only for the context it was sealed for", "[config][secret]") {
  auto box = SecretBox::FromKey(kKey);
  REQUIRE(box.ok());
  auto sealed = box->Seal("x", std::string("micro\0db.password", 17));
  REQUIRE(sealed.ok());
  CHECK(box->Open(*sealed, std::string("micro\0db.password", 17)).ok());
  CHECK(box->Open(*sealed, std::string("micro\0db.other", 14)).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(box->Open(*sealed, std::string("other\0db.password", 17)).status().code() ==
        absl::StatusCode::kInvalidArgument);
}

TEST_CASE("keys rotate: the newest version seals, every version in the ring opens",
          "[config][secret]") {
  const std::string old_key(32, 'k');
  const std::string new_key(32, 'n');
  auto v1 = SecretBox::FromKeyText(Base64Encode(old_key));
  auto ring = SecretBox::FromKeyText("1:" + Base64Encode(old_key) + ",2:" + Base64Encode(new_key));
  auto v2 = SecretBox::FromKeyText("2:" + Base64Encode(new_key) + "\n");
  REQUIRE((v1.ok() && ring.ok() && v2.ok()));
  CHECK(ring->newest_version() == 2);
  auto sealed_v1 = v1->Seal("old", "c");
  auto sealed_v2 = ring->Seal("new", "c");
  REQUIRE((sealed_v1.ok() && sealed_v2.ok()));
  CHECK(*ring->Open(*sealed_v1, "c") == "old");
  CHECK(*ring->Open(*sealed_v2, "c") == "new");
  CHECK(*v2->Open(*sealed_v2, "c") == "new");
  CHECK(v2->Open(*sealed_v1, "c").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(v1->Open(*sealed_v2, "c").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(*Base64Decode(*sealed_v2)->begin() == 2);  // the key-version byte leads
  CHECK(SecretBox::FromKeyText("0:" + Base64Encode(new_key)).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(SecretBox::FromKeyText("1:" + Base64Encode(old_key) + ",1:" + Base64Encode(new_key))
            .status()
            .code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("secrets sealed before key versions and paths existed still open", "[config][secret]") {
  // base64(nonce | AES-256-GCM of "\"legacy-s3cret\"" | tag) under kKey, no associated data:
  // the format sealed secrets had before the key-version byte.
  const std::string legacy = "AAECAwQFBgcICQoLSLGRSWWz/1gwqDD4AbEqhcV7206V+ZuWZU5E6orrKQ==";
  auto box = SecretBox::FromKey(kKey);
  REQUIRE(box.ok());
  CHECK(*box->Open(legacy, "any context") == R"("legacy-s3cret")");
  auto documents = std::make_unique<MemoryDocuments>();
  REQUIRE(documents->Save("micro", R"({"db":{"password":{"$secret":")" + legacy + R"("}}})").ok());
  JsonConfig config(std::move(documents), *box);
  CHECK(*config.Get("micro", "db.password", true) == R"("legacy-s3cret")");
}

TEST_CASE("a secret moved to another path or namespace does not open", "[config][secret]") {
  auto shared = std::make_shared<MemoryDocuments>();
  JsonConfig config(std::make_unique<SharedDocuments>(shared), *SecretBox::FromKey(kKey));
  REQUIRE(config.Set("micro", "db.password", R"("hunter2")", true).ok());
  auto raw = shared->Load("micro");
  REQUIRE((raw.ok() && raw->has_value()));
  // The same sealed leaf, copied to db.copy and to namespace "other".
  const std::string text = **raw;
  const size_t at = text.find(R"("password")");
  REQUIRE(at != std::string::npos);
  std::string moved = text;
  moved.replace(at, 10, R"("copy")");
  REQUIRE(shared->Save("micro", moved).ok());
  REQUIRE(shared->Save("other", text).ok());
  CHECK(config.Get("micro", "db.copy", true).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(config.Get("other", "db.password", true).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(*config.Get("other", "db.password", false) == R"("[secret]")");
}

TEST_CASE("a missing key file is created with mode 0600 and reused", "[config][secret]") {
  testing::TempDir dir;
  const std::string path = dir.path() + "/config.key";
  auto first = SecretBox::FromKeyFile(path);
  REQUIRE(first.ok());
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  auto sealed = first->Seal("x", "c");
  auto again = SecretBox::FromKeyFile(path);
  REQUIRE(again.ok());
  CHECK(*again->Open(*sealed, "c") == "x");
  std::ofstream(path) << "garbage\n";
  CHECK(SecretBox::FromKeyFile(path).status().code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("a key file readable by others is refused with a clear error", "[config][secret]") {
  testing::TempDir dir;
  const std::string path = dir.path() + "/config.key";
  REQUIRE(SecretBox::FromKeyFile(path).ok());
  REQUIRE(::chmod(path.c_str(), 0644) == 0);
  auto refused = SecretBox::FromKeyFile(path);
  CHECK(refused.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(std::string(refused.status().message()).find("chmod 600") != std::string::npos);
  REQUIRE(::chmod(path.c_str(), 0640) == 0);
  CHECK(SecretBox::FromKeyFile(path).status().code() == absl::StatusCode::kFailedPrecondition);
  REQUIRE(::chmod(path.c_str(), 0400) == 0);
  CHECK(SecretBox::FromKeyFile(path).ok());
}

}  // namespace
}  // namespace micro::config
