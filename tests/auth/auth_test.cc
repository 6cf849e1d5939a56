// The auth engine and its guard: accounts, tokens, revocation, rules, and the attacks a client
// can try against the per-call check.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "core/fake_clock.h"
#include "services/auth/auth_guard.h"
#include "services/auth/crypto.h"
#include "services/auth/rocksdb_auth.h"
#include "tests/support/temp_dir.h"

namespace micro::auth {
namespace {

using namespace std::chrono_literals;

struct Harness {
  Harness() { Open(); }
  void Open() {
    auth.reset();
    db.reset();
    auto opened = storage::RocksDb::Open({dir.path() + "/db", {RocksDbAuth::kFamily}});
    REQUIRE(opened.ok());
    db = std::move(*opened);
    RocksDbAuth::Options options;
    options.keys_dir = dir.path() + "/auth";
    auto made = RocksDbAuth::Open(*db, clock, options);
    REQUIRE(made.ok());
    auth = std::move(*made);
  }
  std::string AdminSecret() {
    auto secret = auth->Bootstrap([](const std::string&) { return absl::OkStatus(); });
    REQUIRE(secret.ok());
    REQUIRE(secret->has_value());
    return **secret;
  }
  // The guard's answer for a call to `method` with `token` in namespace `ns` (empty: none).
  Status Call(const std::string& method, const std::string& token, const std::string& ns = "") {
    CallContext context;
    context.ns = ns.empty() ? "micro" : ns;
    context.ns_explicit = !ns.empty();
    context.token = token;
    context.peer = "ipv4:127.0.0.1";
    AuthGuard guard(*auth);
    return guard.Check(method, &context);
  }

  FakeClock clock;
  micro::testing::TempDir dir;
  std::unique_ptr<storage::RocksDb> db;
  std::unique_ptr<RocksDbAuth> auth;
};

constexpr const char* kStoreRead = "/micro.store.v1.Store/Read";

TEST_CASE("the first start creates one admin whose secret logs in; the next start does not",
          "[auth]") {
  Harness h;
  const std::string secret = h.AdminSecret();
  auto token = h.auth->Login("micro", "admin", secret, 0, "p");
  REQUIRE(token.ok());
  CHECK(token->expiry_unix_ms - token->created_unix_ms == 15 * 60 * 1000);
  CHECK(h.Call(kStoreRead, token->access_token).ok());
  CHECK(h.Call("/micro.runtime.v1.Runtime/Create", token->access_token).ok());
  h.Open();
  auto again = h.auth->Bootstrap([](const std::string&) { return absl::OkStatus(); });
  REQUIRE(again.ok());
  CHECK(!again->has_value());
  CHECK(h.Call(kStoreRead, token->access_token).ok());  // keys and accounts survived
  struct stat st {};
  REQUIRE(::stat((h.dir.path() + "/auth/signing_keys").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
}

TEST_CASE("rotating the signing keys keeps earlier tokens valid and signs with the new key",
          "[auth]") {
  Harness h;
  const std::string secret = h.AdminSecret();
  auto before = h.auth->Login("micro", "admin", secret, 0, "p");
  REQUIRE(before.ok());
  h.auth.reset();
  auto kid = RotateSigningKeys(h.dir.path() + "/auth", 0);
  REQUIRE(kid.ok());
  h.Open();
  CHECK(h.Call(kStoreRead, before->access_token).ok());  // nobody is logged out
  auto after = h.auth->Login("micro", "admin", secret, 0, "p");
  REQUIRE(after.ok());
  const std::string header =
      *crypto::FromBase64Url(after->access_token.substr(0, after->access_token.find('.')));
  CHECK(nlohmann::json::parse(header)["kid"] == *kid);
  // A second rotation drops the first key: its tokens stop.
  h.auth.reset();
  REQUIRE(RotateSigningKeys(h.dir.path() + "/auth", 0).ok());
  h.Open();
  CHECK(h.Call(kStoreRead, before->access_token).code() == absl::StatusCode::kUnauthenticated);
  CHECK(h.Call(kStoreRead, after->access_token).ok());
}

TEST_CASE(
    "a running engine reloads rotated keys: new tokens use the new key, cached ones of a "
    "dropped key stop",
    "[auth]") {
  Harness h;
  const std::string secret = h.AdminSecret();
  auto before = h.auth->Login("micro", "admin", secret, 0, "p");
  REQUIRE(before.ok());
  CHECK(h.Call(kStoreRead, before->access_token).ok());  // now in the verification cache
  auto kid = RotateSigningKeys(h.dir.path() + "/auth", 0);
  REQUIRE(kid.ok());
  auto reloaded = h.auth->ReloadSigningKeys();
  REQUIRE(reloaded.ok());
  CHECK(*reloaded == *kid);
  CHECK(h.Call(kStoreRead, before->access_token).ok());
  auto after = h.auth->Login("micro", "admin", secret, 0, "p");
  REQUIRE(after.ok());
  const std::string header =
      *crypto::FromBase64Url(after->access_token.substr(0, after->access_token.find('.')));
  CHECK(nlohmann::json::parse(header)["kid"] == *kid);
  REQUIRE(RotateSigningKeys(h.dir.path() + "/auth", 0).ok());
  REQUIRE(h.auth->ReloadSigningKeys().ok());
  CHECK(h.Call(kStoreRead, before->access_token).code() == absl::StatusCode::kUnauthenticated);
  CHECK(h.Call(kStoreRead, after->access_token).ok());
  // A corrupt file is refused and the keys in use stay.
  REQUIRE(WriteSecretFile(h.dir.path() + "/auth/signing_keys", "garbage").ok());
  CHECK_FALSE(h.auth->ReloadSigningKeys().ok());
  CHECK(h.Call(kStoreRead, after->access_token).ok());
}

TEST_CASE("secrets are stored only as Argon2id hashes", "[auth]") {
  auto hash = crypto::HashSecret("correct horse");
  REQUIRE(hash.ok());
  CHECK(hash->rfind("$argon2id$", 0) == 0);
  CHECK(hash->find("correct horse") == std::string::npos);
  CHECK(crypto::VerifySecret(*hash, "correct horse"));
  CHECK_FALSE(crypto::VerifySecret(*hash, "correct horsE"));
  CHECK_FALSE(crypto::VerifySecret("garbage", "correct horse"));
}

TEST_CASE("the attack matrix: each bad token or call gets its code", "[auth]") {
  Harness h;
  const std::string admin_secret = h.AdminSecret();
  auto admin = h.auth->Login("micro", "admin", admin_secret, 0, "p");
  REQUIRE(admin.ok());
  REQUIRE(h.auth->Generate("team-a", "alice", "alice-secret", {}, "user", {}).ok());
  auto alice = h.auth->Login("team-a", "alice", "alice-secret", 0, "p");
  REQUIRE(alice.ok());
  const std::string good = alice->access_token;
  CHECK(h.Call(kStoreRead, good).ok());  // her namespace is the default for her calls

  SECTION("no token") {
    CHECK(h.Call(kStoreRead, "").code() == absl::StatusCode::kUnauthenticated);
  }
  SECTION("public calls need none") {
    CHECK(h.Call("/grpc.health.v1.Health/Check", "").ok());
    CHECK(h.Call("/micro.auth.v1.Auth/Token", "").ok());
    CHECK(h.Call("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", "").ok());
  }
  SECTION("garbage") {
    CHECK(h.Call(kStoreRead, "garbage").code() == absl::StatusCode::kUnauthenticated);
    CHECK(h.Call(kStoreRead, "a.b.c").code() == absl::StatusCode::kUnauthenticated);
    CHECK(h.Call(kStoreRead, std::string(100000, 'x')).code() ==
          absl::StatusCode::kUnauthenticated);
  }
  SECTION("a tampered payload or signature") {
    const size_t first = good.find('.'), second = good.find('.', first + 1);
    auto claims =
        nlohmann::json::parse(*crypto::FromBase64Url(good.substr(first + 1, second - first - 1)));
    claims["scopes"] = {"admin"};
    claims["ns"] = "micro";
    const std::string forged =
        good.substr(0, first + 1) + crypto::Base64Url(claims.dump()) + good.substr(second);
    CHECK(h.Call(kStoreRead, forged).code() == absl::StatusCode::kUnauthenticated);
    std::string flipped = good;
    flipped.back() = flipped.back() == 'A' ? 'B' : 'A';
    CHECK(h.Call(kStoreRead, flipped).code() == absl::StatusCode::kUnauthenticated);
  }
  SECTION("alg none, and a key of our own") {
    const size_t first = good.find('.'), second = good.find('.', first + 1);
    const std::string none = crypto::Base64Url(R"({"alg":"none","typ":"JWT"})") + "." +
                             good.substr(first + 1, second - first - 1) + ".";
    CHECK(h.Call(kStoreRead, none).code() == absl::StatusCode::kUnauthenticated);
    auto claims =
        nlohmann::json::parse(*crypto::FromBase64Url(good.substr(first + 1, second - first - 1)));
    const std::string other_key = crypto::SignJwt(crypto::NewSigningKey(), claims);
    CHECK(h.Call(kStoreRead, other_key).code() == absl::StatusCode::kUnauthenticated);
  }
  SECTION("expired") {
    h.clock.Advance(16min);
    auto status = h.Call(kStoreRead, good);
    CHECK(status.code() == absl::StatusCode::kUnauthenticated);
    CHECK(status.message().find("expired") != std::string_view::npos);
  }
  SECTION("another namespace") {
    CHECK(h.Call(kStoreRead, good, "team-b").code() == absl::StatusCode::kPermissionDenied);
    CHECK(h.Call(kStoreRead, admin->access_token, "team-b").ok());  // the daemon's admin may
  }
  SECTION("the default policy keeps deploys and account management to admins") {
    CHECK(h.Call("/micro.runtime.v1.Runtime/Create", good).code() ==
          absl::StatusCode::kPermissionDenied);
    CHECK(h.Call("/micro.auth.v1.Auth/Generate", good).code() ==
          absl::StatusCode::kPermissionDenied);
    CHECK(h.Call("/micro.auth.v1.Rules/Create", good).code() ==
          absl::StatusCode::kPermissionDenied);
    CHECK(h.Call("/micro.auth.v1.Accounts/ChangeSecret", good).ok());  // her own, checked later
  }
  SECTION("a rule denies; a higher one grants back; at equal priority a deny wins") {
    Rule deny;
    deny.id = "no-store";
    deny.resource = {"service", "store", "*"};
    deny.access = Access::kDenied;
    REQUIRE(h.auth->CreateRule("team-a", deny).ok());
    CHECK(h.Call(kStoreRead, good).code() == absl::StatusCode::kPermissionDenied);
    CHECK(h.Call("/micro.registry.v1.Registry/GetService", good).ok());
    Rule grant;
    grant.id = "read-ok";
    grant.resource = {"service", "store", "Store.Read"};
    grant.access = Access::kGranted;
    REQUIRE(h.auth->CreateRule("team-a", grant).ok());
    CHECK(h.Call(kStoreRead, good).code() == absl::StatusCode::kPermissionDenied);  // tie
    grant.id = "read-ok-2";
    grant.priority = 1;
    REQUIRE(h.auth->CreateRule("team-a", grant).ok());
    CHECK(h.Call(kStoreRead, good).ok());
    CHECK(h.Call("/micro.store.v1.Store/Write", good).code() ==
          absl::StatusCode::kPermissionDenied);
    h.Open();  // rules are stored
    CHECK(h.Call("/micro.store.v1.Store/Write", good).code() ==
          absl::StatusCode::kPermissionDenied);
    REQUIRE(h.auth->DeleteRule("team-a", "no-store").ok());
    CHECK(h.Call("/micro.store.v1.Store/Write", good).ok());
  }
  SECTION("a deleted account: its tokens stop at once, also when it is created again") {
    REQUIRE(h.auth->Delete("team-a", "alice").ok());
    CHECK(h.Call(kStoreRead, good).code() == absl::StatusCode::kUnauthenticated);
    REQUIRE(h.auth->Generate("team-a", "alice", "alice-secret", {}, "user", {}).ok());
    CHECK(h.Call(kStoreRead, good).code() == absl::StatusCode::kUnauthenticated);
    CHECK(h.auth->Refresh(alice->refresh_token, 0).status().code() ==
          absl::StatusCode::kUnauthenticated);
  }
  SECTION("a changed secret revokes every token; the old secret no longer logs in") {
    REQUIRE(h.auth->ChangeSecret("team-a", "alice", "alice-secret", "new-secret!", true).ok());
    CHECK(h.Call(kStoreRead, good).code() == absl::StatusCode::kUnauthenticated);
    CHECK(h.auth->Refresh(alice->refresh_token, 0).status().code() ==
          absl::StatusCode::kUnauthenticated);
    CHECK(h.auth->Login("team-a", "alice", "alice-secret", 0, "p").status().code() ==
          absl::StatusCode::kUnauthenticated);
    CHECK(h.auth->Login("team-a", "alice", "new-secret!", 0, "p").ok());
    CHECK(h.auth->ChangeSecret("team-a", "alice", "wrong", "another-one", true).code() ==
          absl::StatusCode::kUnauthenticated);
  }
  SECTION("a refresh token rotates; replaying an old one revokes the whole login") {
    auto next = h.auth->Refresh(alice->refresh_token, 0);
    REQUIRE(next.ok());
    CHECK(next->refresh_token != alice->refresh_token);
    CHECK(h.Call(kStoreRead, next->access_token).ok());
    auto replay = h.auth->Refresh(alice->refresh_token, 0);
    CHECK(replay.status().code() == absl::StatusCode::kUnauthenticated);
    CHECK(replay.status().message().find("used before") != std::string_view::npos);
    // The thief's replay also ends the rightful holder's chain.
    CHECK(h.auth->Refresh(next->refresh_token, 0).status().code() ==
          absl::StatusCode::kUnauthenticated);
    CHECK(h.auth->Refresh("nonsense", 0).status().code() == absl::StatusCode::kUnauthenticated);
  }
  SECTION("brute force: after 5 failures a minute, even the right secret waits") {
    for (int i = 0; i < 5; ++i) {
      CHECK(h.auth->Login("team-a", "alice", "guess-" + std::to_string(i), 0, "ipv4:10.0.0.9")
                .status()
                .code() == absl::StatusCode::kUnauthenticated);
    }
    CHECK(h.auth->Login("team-a", "alice", "alice-secret", 0, "ipv4:10.0.0.1").status().code() ==
          absl::StatusCode::kResourceExhausted);
    h.clock.Advance(61s);
    CHECK(h.auth->Login("team-a", "alice", "alice-secret", 0, "ipv4:10.0.0.1").ok());
  }
  SECTION("brute force across accounts: after 20 failures a minute from one address, it waits") {
    for (int i = 0; i < 20; ++i) {
      CHECK(h.auth->Login("team-a", "user-" + std::to_string(i), "guess-guess", 0, "ipv4:10.0.0.7")
                .status()
                .code() == absl::StatusCode::kUnauthenticated);
    }
    CHECK(h.auth->Login("team-a", "alice", "alice-secret", 0, "ipv4:10.0.0.7").status().code() ==
          absl::StatusCode::kResourceExhausted);
    CHECK(h.auth->Login("team-a", "alice", "alice-secret", 0, "ipv4:10.0.0.8").ok());
  }
  SECTION("an unknown account and a wrong secret get the same answer") {
    auto unknown = h.auth->Login("team-a", "mallory", "whatever1", 0, "p").status();
    auto wrong = h.auth->Login("team-a", "alice", "whatever1", 0, "p").status();
    CHECK(unknown == wrong);
  }
}

TEST_CASE("bad account and rule input is INVALID_ARGUMENT or ALREADY_EXISTS and stores nothing",
          "[auth]") {
  Harness h;
  CHECK(h.auth->Generate("ns", "bad id", "secret-123", {}, "user", {}).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(h.auth->Generate("ns", "bob", "short", {}, "user", {}).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(h.auth->Generate("ns", "bob", "secret-123", {}, "robot", {}).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(h.auth->Generate("ns", "bob", "secret-123", {"has space"}, "user", {}).status().code() ==
        absl::StatusCode::kInvalidArgument);
  REQUIRE(h.auth->Generate("ns", "bob", "secret-123", {"x"}, "service", {{"k", "v"}}).ok());
  CHECK(h.auth->Generate("ns", "bob", "secret-456", {}, "user", {}).status().code() ==
        absl::StatusCode::kAlreadyExists);
  auto listed = h.auth->List("ns");
  REQUIRE(listed.ok());
  REQUIRE(listed->size() == 1);
  CHECK((*listed)[0].type == "service");
  Rule rule;
  rule.resource = {"service", "", "*"};
  CHECK(h.auth->CreateRule("ns", rule).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(h.auth->ListRules("ns")->empty());
  CHECK(h.auth->Delete("ns", "nobody").code() == absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace micro::auth
