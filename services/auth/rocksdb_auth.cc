#include "services/auth/rocksdb_auth.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <rocksdb/write_batch.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/names.h"
#include "micro/auth/internal/stored.pb.h"

namespace micro::auth {
namespace {

using internal::RefreshFamily;
using internal::SigningKeys;
using internal::StoredAccount;
using internal::StoredRule;

constexpr size_t kMaxVerifiedCached = 10000;
constexpr size_t kMaxFailureKeys = 100000;
constexpr int64_t kFailureWindowMs = 60'000;

std::string Key(char kind, const std::string& ns, const std::string& id) {
  std::string key(1, kind);
  key += ns;
  key.push_back('\0');
  key += id;
  return key;
}

Account ToAccount(const std::string& ns, const StoredAccount& stored) {
  Account account;
  account.id = stored.id();
  account.type = stored.type();
  account.ns = ns;
  account.scopes.assign(stored.scopes().begin(), stored.scopes().end());
  account.metadata.insert(stored.metadata().begin(), stored.metadata().end());
  account.created_unix_ms = stored.created_unix_ms();
  return account;
}

Rule ToRule(const std::string& ns, const StoredRule& stored) {
  Rule rule;
  rule.id = stored.id();
  rule.scope = stored.scope();
  rule.resource = {stored.resource_type(), stored.resource_name(), stored.resource_endpoint()};
  rule.access = stored.deny() ? Access::kDenied : Access::kGranted;
  rule.priority = stored.priority();
  rule.ns = ns;
  return rule;
}

Status Invalid(const std::string& message) { return absl::InvalidArgumentError(message); }

Status WrongCredentials() {
  // The same answer for an unknown account and a wrong secret: ids are not probed this way.
  return absl::UnauthenticatedError("the id or the secret is wrong");
}

bool Matches(const std::string& pattern, const std::string& value) {
  return pattern == "*" || pattern == value;
}

// Reads a whole file; NOT_FOUND when it does not exist.

}  // namespace

Result<std::string> ReadSecretFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return absl::NotFoundError(path);
    return absl::UnavailableError(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  }
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

Status WriteSecretFile(const std::string& path, const std::string& data) {
  // Per process: two CLI processes refreshing one login at once do not share a temporary file.
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::UnavailableError(fmt::format("cannot write {}: {}", tmp, std::strerror(errno)));
  }
  const bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::UnavailableError(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
  }
  return absl::OkStatus();
}

Result<std::string> RotateSigningKeys(const std::string& keys_dir, int64_t now_ms) {
  const std::string lock_path = keys_dir + "/rotate.lock";
  const int lock = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0 || ::flock(lock, LOCK_EX) != 0) {
    if (lock >= 0) ::close(lock);
    return absl::UnavailableError(
        fmt::format("cannot lock {}: {}", lock_path, std::strerror(errno)));
  }
  struct Unlock {
    int fd;
    ~Unlock() { ::close(fd); }
  } unlock{lock};
  const std::string path = keys_dir + "/signing_keys";
  auto text = ReadSecretFile(path);
  if (!text.ok()) return text.status();
  SigningKeys stored;
  if (!stored.ParseFromString(*text) || stored.keys_size() == 0) {
    return absl::InternalError(path + " is corrupt");
  }
  const crypto::SigningKey key = crypto::NewSigningKey();
  SigningKeys rotated;
  SigningKeys::Key* fresh = rotated.add_keys();
  fresh->set_id(key.id);
  fresh->set_secret_key(std::string(key.secret_key.begin(), key.secret_key.end()));
  fresh->set_public_key(std::string(key.public_key.begin(), key.public_key.end()));
  fresh->set_created_unix_ms(now_ms);
  *rotated.add_keys() = stored.keys(0);  // the previous key: its tokens verify until they expire
  if (Status s = WriteSecretFile(path, rotated.SerializeAsString()); !s.ok()) return s;
  return key.id;
}

bool Identity::HasScope(const std::string& scope) const {
  return std::find(scopes.begin(), scopes.end(), scope) != scopes.end();
}

bool Identity::IsAdmin() const { return ns == kAdminNamespace && HasScope(kAdminScope); }

Result<std::unique_ptr<RocksDbAuth>> RocksDbAuth::Open(storage::RocksDb& db, const Clock& clock,
                                                       Options options) {
  std::unique_ptr<RocksDbAuth> auth(new RocksDbAuth(db, clock, std::move(options)));
  if (Status s = auth->LoadKeys(); !s.ok()) return s;
  if (Status s = auth->LoadState(); !s.ok()) return s;
  return auth;
}

RocksDbAuth::RocksDbAuth(storage::RocksDb& db, const Clock& clock, Options options)
    : rocks_(db), family_(db.family(kFamily)), clock_(clock), options_(std::move(options)) {}

// The signing keys from the data dir, or a new one written there on a first start.
Status RocksDbAuth::LoadKeys() {
  if (::mkdir(options_.keys_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::UnavailableError(
        fmt::format("cannot create {}: {}", options_.keys_dir, std::strerror(errno)));
  }
  const std::string path = options_.keys_dir + "/signing_keys";
  SigningKeys stored;
  auto text = ReadSecretFile(path);
  if (text.ok()) {
    if (!stored.ParseFromString(*text) || stored.keys_size() == 0) {
      return absl::InternalError(fmt::format(
          "{} is corrupt; restore it from a backup (or delete it: every token is then invalid)",
          path));
    }
  } else if (absl::IsNotFound(text.status())) {
    const crypto::SigningKey key = crypto::NewSigningKey();
    SigningKeys::Key* out = stored.add_keys();
    out->set_id(key.id);
    out->set_secret_key(std::string(key.secret_key.begin(), key.secret_key.end()));
    out->set_public_key(std::string(key.public_key.begin(), key.public_key.end()));
    out->set_created_unix_ms(clock_.UnixMillis());
    if (Status s = WriteSecretFile(path, stored.SerializeAsString()); !s.ok()) return s;
  } else {
    return text.status();
  }
  const std::string service_path = options_.keys_dir + "/service_key";
  auto service_key = ReadSecretFile(service_path);
  if (service_key.ok() && service_key->size() == 32) {
    service_key_ = *service_key;
  } else if (absl::IsNotFound(service_key.status())) {
    service_key_ = crypto::RandomBytes(32);
    if (Status s = WriteSecretFile(service_path, service_key_); !s.ok()) return s;
  } else {
    return absl::InternalError(fmt::format("{} is unreadable or corrupt", service_path));
  }
  service_key_id_ = crypto::Sha256Hex(service_key_).substr(0, 16);
  auto keys = ReadSigningKeys(path);
  if (!keys.ok()) return keys.status();
  keys_ = std::move(*keys);
  return absl::OkStatus();
}

Result<std::vector<crypto::SigningKey>> RocksDbAuth::ReadSigningKeys(
    const std::string& path) const {
  auto text = ReadSecretFile(path);
  if (!text.ok()) return text.status();
  SigningKeys stored;
  if (!stored.ParseFromString(*text) || stored.keys_size() == 0) {
    return absl::InternalError(fmt::format(
        "{} is corrupt; restore it from a backup (or delete it: every token is then invalid)",
        path));
  }
  std::vector<crypto::SigningKey> keys;
  for (const SigningKeys::Key& in : stored.keys()) {
    if (in.secret_key().size() != 64 || in.public_key().size() != 32) {
      return absl::InternalError(fmt::format("{} holds a key of the wrong size", path));
    }
    crypto::SigningKey key;
    key.id = in.id();
    std::memcpy(key.secret_key.data(), in.secret_key().data(), 64);
    std::memcpy(key.public_key.data(), in.public_key().data(), 32);
    keys.push_back(key);
  }
  return keys;
}

Result<std::string> RocksDbAuth::ReloadSigningKeys() {
  auto keys = ReadSigningKeys(options_.keys_dir + "/signing_keys");
  if (!keys.ok()) return keys.status();
  const std::string id = keys->front().id;
  std::unique_lock keys_lock(keys_mu_);
  keys_ = std::move(*keys);
  // A token verified with a key that is gone must not stay accepted from the cache.
  std::unique_lock lock(mu_);
  verified_.clear();
  return id;
}

Status RocksDbAuth::LoadState() {
  std::unique_ptr<rocksdb::Iterator> it(rocks_.db().NewIterator(rocksdb::ReadOptions(), family_));
  std::unique_lock lock(mu_);
  for (it->Seek("a"); it->Valid() && it->key().starts_with("a"); it->Next()) {
    StoredAccount stored;
    if (!stored.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return absl::InternalError("a stored account is corrupt");
    }
    accounts_[it->key().ToString().substr(1)].generation = stored.generation();
  }
  for (it->Seek("r"); it->Valid() && it->key().starts_with("r"); it->Next()) {
    StoredRule stored;
    if (!stored.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return absl::InternalError("a stored rule is corrupt");
    }
    const std::string key = it->key().ToString().substr(1);
    const std::string ns = key.substr(0, key.find('\0'));
    rules_[ns].push_back(ToRule(ns, stored));
  }
  return storage::FromRocks(it->status(), "loading accounts and rules failed");
}

Result<std::optional<std::string>> RocksDbAuth::Bootstrap(
    const std::function<Status(const std::string&)>& keep) {
  {
    std::shared_lock lock(mu_);
    const std::string prefix = std::string(kAdminNamespace) + std::string(1, '\0');
    for (const auto& [key, known] : accounts_) {
      if (key.compare(0, prefix.size(), prefix) == 0) return std::optional<std::string>();
    }
  }
  std::string secret = crypto::RandomToken(24);
  if (Status s = keep(secret); !s.ok()) return s;
  auto made = Generate(kAdminNamespace, "admin", secret, {kAdminScope}, "user", {});
  if (!made.ok()) return made.status();
  return std::optional<std::string>(std::move(secret));
}

Status RocksDbAuth::Write(rocksdb::WriteBatch& batch, const char* what, bool sync) {
  rocksdb::WriteOptions options;
  options.sync = sync;
  return storage::FromRocks(rocks_.db().Write(options, &batch), what);
}

Result<Account> RocksDbAuth::Generate(const std::string& ns, const std::string& id,
                                      const std::string& secret,
                                      const std::vector<std::string>& scopes,
                                      const std::string& type,
                                      const std::map<std::string, std::string>& metadata) {
  const Limits& l = options_.limits;
  if (Status s = CheckName("id", id, l.max_id_bytes, Charset::kName); !s.ok()) return s;
  if (secret.size() < l.min_secret_bytes || secret.size() > l.max_secret_bytes) {
    return Invalid(fmt::format("the secret is {} bytes; use {} to {}", secret.size(),
                               l.min_secret_bytes, l.max_secret_bytes));
  }
  const std::string account_type = type.empty() ? "user" : type;
  if (account_type != "user" && account_type != "service") {
    return Invalid(fmt::format("type '{}' is not an account type; use user or service", type));
  }
  if (scopes.size() > l.max_scopes) {
    return Invalid(fmt::format("{} scopes; the limit is {}", scopes.size(), l.max_scopes));
  }
  for (const std::string& scope : scopes) {
    if (Status s = CheckName("scope", scope, l.max_scope_bytes, Charset::kPrintable); !s.ok()) {
      return s;
    }
  }
  if (metadata.size() > 64) return Invalid("metadata has more than 64 entries");
  for (const auto& [k, v] : metadata) {
    if (k.empty() || k.size() > 128 || v.size() > 4096) {
      return Invalid("metadata keys are 1 to 128 bytes and values up to 4096");
    }
  }
  auto hash = crypto::HashSecret(secret);  // slow: before any lock
  if (!hash.ok()) return hash.status();

  std::lock_guard write(write_mu_);
  const std::string key = Key('a', ns, id);
  size_t in_namespace = 0;
  {
    std::shared_lock lock(mu_);
    if (accounts_.count(key.substr(1)) != 0) {
      return absl::AlreadyExistsError(fmt::format("account '{}' exists in namespace '{}'", id, ns));
    }
    const std::string prefix = ns + std::string(1, '\0');
    for (const auto& [k, known] : accounts_)
      in_namespace += k.compare(0, prefix.size(), prefix) == 0;
  }
  if (in_namespace >= l.max_accounts_per_namespace) {
    return absl::ResourceExhaustedError(fmt::format(
        "namespace '{}' has {} accounts, the limit; delete one first", ns, in_namespace));
  }
  StoredAccount stored;
  stored.set_id(id);
  stored.set_type(account_type);
  for (const std::string& scope : scopes) stored.add_scopes(scope);
  stored.mutable_metadata()->insert(metadata.begin(), metadata.end());
  stored.set_created_unix_ms(clock_.UnixMillis());
  stored.set_secret_hash(*hash);
  // Random, so an account deleted and created again under its id never accepts the tokens
  // of the old one.
  stored.set_generation(crypto::RandomNumber());
  rocksdb::WriteBatch batch;
  batch.Put(family_, key, stored.SerializeAsString());
  if (Status s = Write(batch, "storing the account failed"); !s.ok()) return s;
  {
    std::unique_lock lock(mu_);
    accounts_[key.substr(1)].generation = stored.generation();
  }
  return ToAccount(ns, stored);
}

Status RocksDbAuth::CheckAttempts(const std::string& account_key, const std::string& peer) {
  const int64_t now = clock_.UnixMillis();
  std::lock_guard lock(attempts_mu_);
  auto recent = [&](const std::string& key) -> size_t {
    auto it = failures_.find(key);
    if (it == failures_.end()) return 0;
    while (!it->second.empty() && it->second.front() <= now - kFailureWindowMs) {
      it->second.pop_front();
    }
    return it->second.size();
  };
  const Limits& l = options_.limits;
  if (recent("a" + account_key) >= static_cast<size_t>(l.failed_logins_per_account) ||
      (!peer.empty() && recent("p" + peer) >= static_cast<size_t>(l.failed_logins_per_address))) {
    return absl::ResourceExhaustedError(
        "too many failed logins for this account or from this address; wait a minute");
  }
  return absl::OkStatus();
}

void RocksDbAuth::CountFailure(const std::string& account_key, const std::string& peer) {
  const int64_t now = clock_.UnixMillis();
  std::lock_guard lock(attempts_mu_);
  if (failures_.size() > kMaxFailureKeys) failures_.clear();  // a flood of names: start over
  failures_["a" + account_key].push_back(now);
  if (!peer.empty()) failures_["p" + peer].push_back(now);
}

Result<Token> RocksDbAuth::Login(const std::string& ns, const std::string& id,
                                 const std::string& secret, int64_t ttl_seconds,
                                 const std::string& peer) {
  if (id.empty() || secret.empty()) return Invalid("give id and secret, or a refresh_token");
  const std::string account_key = ns + std::string(1, '\0') + id;
  if (Status s = CheckAttempts(account_key, peer); !s.ok()) return s;
  std::string value;
  rocksdb::Status got = rocks_.db().Get(rocksdb::ReadOptions(), family_, Key('a', ns, id), &value);
  StoredAccount stored;
  if (got.ok() && !stored.ParseFromString(value)) {
    return absl::InternalError("a stored account is corrupt");
  }
  if (!got.ok() && !got.IsNotFound()) return storage::FromRocks(got, "reading the account failed");
  if (!got.ok() || !crypto::VerifySecret(stored.secret_hash(), secret)) {
    CountFailure(account_key, peer);
    return WrongCredentials();
  }
  return Issue(ns, ToAccount(ns, stored), stored.generation(), ttl_seconds, "");
}

// A new access token, and a refresh token of `family` (a new family when empty).
Result<Token> RocksDbAuth::Issue(const std::string& ns, const Account& account, uint64_t generation,
                                 int64_t ttl_seconds, const std::string& family) {
  const Limits& l = options_.limits;
  if (ttl_seconds < 0 || ttl_seconds > l.max_access_ttl_seconds) {
    return Invalid(fmt::format("ttl_seconds is {}; use 0 ({} s) up to {}", ttl_seconds,
                               l.default_access_ttl_seconds, l.max_access_ttl_seconds));
  }
  if (ttl_seconds == 0) ttl_seconds = l.default_access_ttl_seconds;
  const int64_t now = clock_.UnixMillis();
  nlohmann::json claims = {{"iss", "micro"},
                           {"sub", account.id},
                           {"ns", ns},
                           {"typ", account.type},
                           {"scopes", account.scopes},
                           {"gen", generation},
                           {"iat", now / 1000},
                           {"exp_ms", now + ttl_seconds * 1000},
                           {"exp", (now / 1000) + ttl_seconds},
                           {"jti", crypto::RandomToken(12)}};
  Token token;
  {
    std::shared_lock keys_lock(keys_mu_);
    token.access_token = crypto::SignJwt(keys_.front(), claims);
  }
  token.created_unix_ms = now;
  token.expiry_unix_ms = now + ttl_seconds * 1000;
  const std::string family_id = family.empty() ? crypto::RandomToken(16) : family;
  const std::string secret = crypto::RandomToken(32);
  RefreshFamily stored;
  stored.set_ns(ns);
  stored.set_account(account.id);
  stored.set_generation(generation);
  stored.set_token_hash(crypto::Sha256Hex(secret));
  stored.set_expiry_unix_ms(now + l.refresh_ttl_seconds * 1000);
  rocksdb::WriteBatch batch;
  batch.Put(family_, "f" + family_id, stored.SerializeAsString());
  if (Status s = Write(batch, "storing the refresh token failed", /*sync=*/false); !s.ok()) {
    return s;
  }
  token.refresh_token = family_id + "." + secret;
  return token;
}

Result<Token> RocksDbAuth::Refresh(const std::string& refresh_token, int64_t ttl_seconds) {
  const size_t dot = refresh_token.find('.');
  if (dot == std::string::npos || dot == 0 || refresh_token.size() > 256) {
    return absl::UnauthenticatedError("the refresh token is malformed; log in again");
  }
  const std::string family = refresh_token.substr(0, dot);
  const std::string secret = refresh_token.substr(dot + 1);
  std::lock_guard write(write_mu_);
  std::string value;
  rocksdb::Status got = rocks_.db().Get(rocksdb::ReadOptions(), family_, "f" + family, &value);
  if (got.IsNotFound()) {
    return absl::UnauthenticatedError(
        "the refresh token is not valid (revoked or unknown); log in again");
  }
  if (!got.ok()) return storage::FromRocks(got, "reading the refresh token failed");
  RefreshFamily stored;
  if (!stored.ParseFromString(value)) return absl::InternalError("a refresh family is corrupt");
  if (stored.token_hash() != crypto::Sha256Hex(secret)) {
    // An older token of the family: someone replays it. Nobody keeps using this login.
    rocksdb::WriteBatch batch;
    batch.Delete(family_, "f" + family);
    if (Status s = Write(batch, "revoking the refresh token failed"); !s.ok()) return s;
    return absl::UnauthenticatedError(
        "the refresh token was used before: every token of this login is revoked; log in again");
  }
  if (stored.expiry_unix_ms() <= clock_.UnixMillis()) {
    return absl::UnauthenticatedError("the refresh token expired; log in again");
  }
  std::string account_value;
  got = rocks_.db().Get(rocksdb::ReadOptions(), family_, Key('a', stored.ns(), stored.account()),
                        &account_value);
  StoredAccount account;
  if (!got.ok() || !account.ParseFromString(account_value) ||
      account.generation() != stored.generation()) {
    return absl::UnauthenticatedError(
        "the account was deleted or its secret changed; log in again");
  }
  return Issue(stored.ns(), ToAccount(stored.ns(), account), account.generation(), ttl_seconds,
               family);
}

Result<std::vector<Account>> RocksDbAuth::List(const std::string& ns) {
  const std::string prefix = Key('a', ns, "");
  std::vector<Account> out;
  std::unique_ptr<rocksdb::Iterator> it(rocks_.db().NewIterator(rocksdb::ReadOptions(), family_));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    StoredAccount stored;
    if (stored.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      out.push_back(ToAccount(ns, stored));
    }
  }
  if (Status s = storage::FromRocks(it->status(), "listing accounts failed"); !s.ok()) return s;
  return out;
}

std::optional<Account> RocksDbAuth::Find(const std::string& ns, const std::string& id) const {
  std::string value;
  StoredAccount stored;
  if (!rocks_.db().Get(rocksdb::ReadOptions(), family_, Key('a', ns, id), &value).ok() ||
      !stored.ParseFromString(value)) {
    return std::nullopt;
  }
  return ToAccount(ns, stored);
}

Status RocksDbAuth::Delete(const std::string& ns, const std::string& id) {
  std::lock_guard write(write_mu_);
  const std::string key = Key('a', ns, id);
  {
    std::shared_lock lock(mu_);
    if (accounts_.count(key.substr(1)) == 0) {
      return absl::NotFoundError(fmt::format("account '{}' not found in namespace '{}'", id, ns));
    }
  }
  rocksdb::WriteBatch batch;
  batch.Delete(family_, key);
  if (Status s = Write(batch, "deleting the account failed"); !s.ok()) return s;
  std::unique_lock lock(mu_);
  accounts_.erase(key.substr(1));
  verified_.clear();  // its tokens stop at once
  return absl::OkStatus();
}

Status RocksDbAuth::ChangeSecret(const std::string& ns, const std::string& id,
                                 const std::string& old_secret, const std::string& new_secret,
                                 bool check_old) {
  const Limits& l = options_.limits;
  if (new_secret.size() < l.min_secret_bytes || new_secret.size() > l.max_secret_bytes) {
    return Invalid(fmt::format("the new secret is {} bytes; use {} to {}", new_secret.size(),
                               l.min_secret_bytes, l.max_secret_bytes));
  }
  auto hash = crypto::HashSecret(new_secret);
  if (!hash.ok()) return hash.status();
  std::lock_guard write(write_mu_);
  const std::string key = Key('a', ns, id);
  std::string value;
  rocksdb::Status got = rocks_.db().Get(rocksdb::ReadOptions(), family_, key, &value);
  if (got.IsNotFound()) {
    return absl::NotFoundError(fmt::format("account '{}' not found in namespace '{}'", id, ns));
  }
  if (!got.ok()) return storage::FromRocks(got, "reading the account failed");
  StoredAccount stored;
  if (!stored.ParseFromString(value)) return absl::InternalError("a stored account is corrupt");
  if (check_old && !crypto::VerifySecret(stored.secret_hash(), old_secret)) {
    return absl::UnauthenticatedError("the old secret is wrong");
  }
  stored.set_secret_hash(*hash);
  stored.set_generation(stored.generation() + 1);
  // A service account's secret set by hand no longer follows the service key: the next
  // EnsureServiceAccount verifies it (and sets it back) instead of trusting the fingerprint.
  stored.clear_service_key_id();
  rocksdb::WriteBatch batch;
  batch.Put(family_, key, stored.SerializeAsString());
  if (Status s = Write(batch, "storing the account failed"); !s.ok()) return s;
  std::unique_lock lock(mu_);
  accounts_[key.substr(1)].generation = stored.generation();
  verified_.clear();
  return absl::OkStatus();
}

Result<Rule> RocksDbAuth::CreateRule(const std::string& ns, Rule rule) {
  const Limits& l = options_.limits;
  if (rule.id.empty()) rule.id = crypto::RandomToken(9);
  if (Status s = CheckName("rule id", rule.id, l.max_id_bytes, Charset::kPrintable); !s.ok()) {
    return s;
  }
  if (!rule.scope.empty()) {
    if (Status s = CheckName("scope", rule.scope, l.max_scope_bytes, Charset::kPrintable);
        !s.ok()) {
      return s;
    }
  }
  if (rule.resource.type.empty()) rule.resource.type = "service";
  if (rule.resource.type != "service" && rule.resource.type != "*") {
    return Invalid("resource.type must be service or *");
  }
  if (rule.resource.name.empty() || rule.resource.endpoint.empty()) {
    return Invalid("resource.name and resource.endpoint are required; use * for any");
  }
  if (rule.resource.name.size() > 256 || rule.resource.endpoint.size() > 256) {
    return Invalid("resource.name and resource.endpoint are at most 256 bytes");
  }
  std::lock_guard write(write_mu_);
  {
    std::shared_lock lock(mu_);
    auto it = rules_.find(ns);
    if (it != rules_.end()) {
      if (it->second.size() >= l.max_rules_per_namespace) {
        return absl::ResourceExhaustedError(
            fmt::format("namespace '{}' has {} rules, the limit", ns, it->second.size()));
      }
      for (const Rule& r : it->second) {
        if (r.id == rule.id) {
          return absl::AlreadyExistsError(fmt::format("rule '{}' exists", rule.id));
        }
      }
    }
  }
  StoredRule stored;
  stored.set_id(rule.id);
  stored.set_scope(rule.scope);
  stored.set_resource_type(rule.resource.type);
  stored.set_resource_name(rule.resource.name);
  stored.set_resource_endpoint(rule.resource.endpoint);
  stored.set_deny(rule.access == Access::kDenied);
  stored.set_priority(rule.priority);
  rocksdb::WriteBatch batch;
  batch.Put(family_, Key('r', ns, rule.id), stored.SerializeAsString());
  if (Status s = Write(batch, "storing the rule failed"); !s.ok()) return s;
  rule.ns = ns;
  std::unique_lock lock(mu_);
  rules_[ns].push_back(rule);
  return rule;
}

Status RocksDbAuth::DeleteRule(const std::string& ns, const std::string& id) {
  std::lock_guard write(write_mu_);
  {
    std::shared_lock lock(mu_);
    auto it = rules_.find(ns);
    if (it == rules_.end() || std::none_of(it->second.begin(), it->second.end(),
                                           [&](const Rule& r) { return r.id == id; })) {
      return absl::NotFoundError(fmt::format("rule '{}' not found in namespace '{}'", id, ns));
    }
  }
  rocksdb::WriteBatch batch;
  batch.Delete(family_, Key('r', ns, id));
  if (Status s = Write(batch, "deleting the rule failed"); !s.ok()) return s;
  std::unique_lock lock(mu_);
  auto& rules = rules_[ns];
  rules.erase(std::remove_if(rules.begin(), rules.end(), [&](const Rule& r) { return r.id == id; }),
              rules.end());
  return absl::OkStatus();
}

Result<std::vector<Rule>> RocksDbAuth::ListRules(const std::string& ns) {
  std::shared_lock lock(mu_);
  auto it = rules_.find(ns);
  return it == rules_.end() ? std::vector<Rule>() : it->second;
}

Result<Identity> RocksDbAuth::Verify(std::string_view access_token) {
  const int64_t now = clock_.UnixMillis();
  {
    std::shared_lock lock(mu_);
    auto it = verified_.find(std::string(access_token));
    if (it != verified_.end()) {
      const Cached& cached = it->second;
      if (cached.identity.expiry_unix_ms <= now) {
        return absl::UnauthenticatedError("the token expired; log in again (or refresh it)");
      }
      auto known = accounts_.find(cached.identity.ns + std::string(1, '\0') + cached.identity.id);
      if (known == accounts_.end() || known->second.generation != cached.generation) {
        return absl::UnauthenticatedError(
            "the token was revoked: its account was deleted or its secret changed");
      }
      return cached.identity;
    }
  }
  // Held until the token is cached: a reload between the check and the caching would otherwise
  // leave a token of a dropped key in the cache (lock order: keys_mu_, then mu_).
  std::shared_lock keys_lock(keys_mu_);
  auto claims = crypto::VerifyJwt(access_token, [&](const std::string& kid) {
    for (const auto& key : keys_) {
      if (key.id == kid) return &key.public_key;
    }
    return static_cast<const std::array<uint8_t, 32>*>(nullptr);
  });
  if (!claims.ok()) return claims.status();
  const nlohmann::json& c = *claims;
  auto str = [&](const char* k) {
    auto it = c.find(k);
    return it != c.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  auto num = [&](const char* k) -> int64_t {
    auto it = c.find(k);
    return it != c.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
  };
  Cached cached;
  cached.identity.id = str("sub");
  cached.identity.ns = str("ns");
  cached.identity.type = str("typ");
  cached.identity.expiry_unix_ms = num("exp_ms");
  cached.generation = static_cast<uint64_t>(num("gen"));
  if (auto scopes = c.find("scopes"); scopes != c.end() && scopes->is_array()) {
    for (const auto& scope : *scopes) {
      if (scope.is_string()) cached.identity.scopes.push_back(scope.get<std::string>());
    }
  }
  if (cached.identity.id.empty() || cached.identity.ns.empty()) {
    return absl::UnauthenticatedError("the token is not valid: it names no account");
  }
  if (cached.identity.expiry_unix_ms <= now) {
    return absl::UnauthenticatedError("the token expired; log in again (or refresh it)");
  }
  std::unique_lock lock(mu_);
  auto known = accounts_.find(cached.identity.ns + std::string(1, '\0') + cached.identity.id);
  if (known == accounts_.end() || known->second.generation != cached.generation) {
    return absl::UnauthenticatedError(
        "the token was revoked: its account was deleted or its secret changed");
  }
  if (verified_.size() >= kMaxVerifiedCached) verified_.clear();
  verified_.emplace(std::string(access_token), cached);
  return cached.identity;
}

std::string RocksDbAuth::ServiceSecret(const std::string& ns, const std::string& name) const {
  return crypto::HmacSha256(service_key_,
                            "service" + std::string(1, '\0') + ns + std::string(1, '\0') + name);
}

Status RocksDbAuth::EnsureServiceAccount(const std::string& ns, const std::string& name) {
  const std::string id = ServiceAccountId(name);
  const std::string secret = ServiceSecret(ns, name);
  std::string value;
  StoredAccount stored;
  if (rocks_.db().Get(rocksdb::ReadOptions(), family_, Key('a', ns, id), &value).ok() &&
      stored.ParseFromString(value)) {
    if (stored.type() != "service") {
      return absl::FailedPreconditionError(fmt::format(
          "the user account '{}' holds the id of service {}'s account; delete or rename it", id,
          name));
    }
    if (stored.service_key_id() == service_key_id_) return absl::OkStatus();
    // The service key changed (restored from elsewhere, or lost): the secret follows it.
    if (!crypto::VerifySecret(stored.secret_hash(), secret)) {
      if (Status s = ChangeSecret(ns, id, "", secret, /*check_old=*/false); !s.ok()) return s;
    }
    return MarkServiceKey(ns, id);
  }
  auto made = Generate(ns, id, secret, {}, "service", {{"service", name}});
  if (absl::IsAlreadyExists(made.status())) return absl::OkStatus();  // a concurrent deploy
  if (!made.ok()) return made.status();
  return MarkServiceKey(ns, id);
}

// Records that the account's secret derives from the current service key.
Status RocksDbAuth::MarkServiceKey(const std::string& ns, const std::string& id) {
  std::lock_guard write(write_mu_);
  const std::string key = Key('a', ns, id);
  std::string value;
  StoredAccount stored;
  rocksdb::Status got = rocks_.db().Get(rocksdb::ReadOptions(), family_, key, &value);
  if (got.IsNotFound()) return absl::OkStatus();  // deleted meanwhile
  if (!got.ok()) return storage::FromRocks(got, "reading the account failed");
  if (!stored.ParseFromString(value)) return absl::InternalError("a stored account is corrupt");
  stored.set_service_key_id(service_key_id_);
  rocksdb::WriteBatch batch;
  batch.Put(family_, key, stored.SerializeAsString());
  return Write(batch, "storing the account failed");
}

Status RocksDbAuth::RemoveServiceAccount(const std::string& ns, const std::string& name) {
  Status s = Delete(ns, ServiceAccountId(name));
  return absl::IsNotFound(s) ? absl::OkStatus() : s;
}

bool RocksDbAuth::Allowed(const Identity& identity, const std::string& ns, const Resource& resource,
                          bool fallback) const {
  std::shared_lock lock(mu_);
  auto it = rules_.find(ns);
  if (it == rules_.end()) return fallback;
  const Rule* best = nullptr;
  for (const Rule& rule : it->second) {
    if (!rule.scope.empty() && !identity.HasScope(rule.scope)) continue;
    if (!Matches(rule.resource.type, resource.type) ||
        !Matches(rule.resource.name, resource.name) ||
        !Matches(rule.resource.endpoint, resource.endpoint)) {
      continue;
    }
    if (best == nullptr || rule.priority > best->priority ||
        (rule.priority == best->priority && rule.access == Access::kDenied)) {
      best = &rule;
    }
  }
  return best == nullptr ? fallback : best->access == Access::kGranted;
}

}  // namespace micro::auth
