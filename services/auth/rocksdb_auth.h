#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "services/auth/auth.h"
#include "services/auth/crypto.h"
#include "storage/rocks_db.h"

namespace micro::auth {

// Writes `data` to `path` with mode 0600 through a synced temporary file and a rename.
[[nodiscard]] Status WriteSecretFile(const std::string& path, const std::string& data);
// The whole file; NOT_FOUND only when it does not exist (an unreadable one is UNAVAILABLE, so
// that callers never take it for missing and replace it).
[[nodiscard]] Result<std::string> ReadSecretFile(const std::string& path);

// Puts a new signing key first in `<keys_dir>/signing_keys`, keeping the previous one so that
// tokens it signed still verify until they expire (access tokens live at most 24 hours); older
// ones are dropped. Rotations are serialized by a lock on <keys_dir>/rotate.lock. A stopped
// daemon signs with the new key from its next start; a running one once it reloads the file
// (SIGHUP: RocksDbAuth::ReloadSigningKeys). Returns the new key's id.
[[nodiscard]] Result<std::string> RotateSigningKeys(const std::string& keys_dir, int64_t now_ms);

// Accounts, tokens and rules in the daemon's RocksDB (column family "auth"):
//
//   'a' ns \0 id  -> StoredAccount   the secret only as an Argon2id hash
//   'r' ns \0 id  -> StoredRule
//   'f' family    -> RefreshFamily   the tokens descended from one login
//
// and the Ed25519 signing keys in `<keys_dir>/signing_keys` (0600). Writes are synced. Hashing
// and the database make most methods slow (tens of milliseconds for a login): the gRPC adapter
// runs them on a thread of its own. Verify and Authorize are the per-call path: memory only.
// Thread-safe.
class RocksDbAuth {
 public:
  static constexpr const char* kFamily = "auth";

  struct Options {
    std::string keys_dir;  // created 0700 if missing
    Limits limits;
  };

  // `db` and `clock` must outlive the result.
  [[nodiscard]] static Result<std::unique_ptr<RocksDbAuth>> Open(storage::RocksDb& db,
                                                                 const Clock& clock,
                                                                 Options options);

  // On a first start (no account in the namespace "micro"): creates the account "admin" there
  // with the admin scope and a random secret, which `keep` gets first (to write it where the
  // operator finds it; its error stops the creation, so the next start tries again). Returns
  // the secret, or nullopt when there were accounts already.
  [[nodiscard]] Result<std::optional<std::string>> Bootstrap(
      const std::function<Status(const std::string&)>& keep);

  // The account calls, in namespace `ns`. Errors: INVALID_ARGUMENT (id, secret, scopes, type,
  // metadata), ALREADY_EXISTS, NOT_FOUND, UNAUTHENTICATED (a wrong secret), RESOURCE_EXHAUSTED
  // (too many failed logins, accounts or rules), UNAVAILABLE (I/O).
  [[nodiscard]] Result<Account> Generate(const std::string& ns, const std::string& id,
                                         const std::string& secret,
                                         const std::vector<std::string>& scopes,
                                         const std::string& type,
                                         const std::map<std::string, std::string>& metadata);
  // `peer`: the caller's address, for the failed-login limit per address.
  [[nodiscard]] Result<Token> Login(const std::string& ns, const std::string& id,
                                    const std::string& secret, int64_t ttl_seconds,
                                    const std::string& peer);
  [[nodiscard]] Result<Token> Refresh(const std::string& refresh_token, int64_t ttl_seconds);
  [[nodiscard]] Result<std::vector<Account>> List(const std::string& ns);
  [[nodiscard]] Status Delete(const std::string& ns, const std::string& id);
  // `check_old`: false when a namespace admin resets another account's secret.
  [[nodiscard]] Status ChangeSecret(const std::string& ns, const std::string& id,
                                    const std::string& old_secret, const std::string& new_secret,
                                    bool check_old);

  [[nodiscard]] Result<Rule> CreateRule(const std::string& ns, Rule rule);
  [[nodiscard]] Status DeleteRule(const std::string& ns, const std::string& id);
  [[nodiscard]] Result<std::vector<Rule>> ListRules(const std::string& ns);

  // The identity behind an access token: signature, expiry, and the account still existing
  // with the same secret. UNAUTHENTICATED otherwise, saying which. Memory only; verified tokens
  // are cached.
  [[nodiscard]] Result<Identity> Verify(std::string_view access_token);

  // The namespace's rules for `identity` calling `resource`: the decision of the highest
  // priority matching rule (a deny wins a tie), or `fallback` when none matches.
  [[nodiscard]] bool Allowed(const Identity& identity, const std::string& ns,
                             const Resource& resource, bool fallback) const;

  // The account, if it exists (for Inspect).
  [[nodiscard]] std::optional<Account> Find(const std::string& ns, const std::string& id) const;

  const Limits& limits() const { return options_.limits; }

  // Reads <keys_dir>/signing_keys again (after `micro auth rotate-keys` put a new key first):
  // new tokens are signed with its first key, tokens of the others still verify. On an error
  // the keys in use stay. Returns the id of the signing key.
  [[nodiscard]] Result<std::string> ReloadSigningKeys();

  // Service accounts: the account of deployed service `name` in `ns` is "svc.<name>", of type
  // service, and its secret is derived from the daemon's service key (auth/service_key, 0600),
  // so the runtime hands it to every instance at start without storing it anywhere.
  static std::string ServiceAccountId(const std::string& name) { return "svc." + name; }
  std::string ServiceSecret(const std::string& ns, const std::string& name) const;
  // Creates the account if missing, or repairs its secret after the service key changed (slow:
  // hashing and a synced write); an account already derived from the current key costs one
  // read. FAILED_PRECONDITION when a user account holds the id.
  [[nodiscard]] Status EnsureServiceAccount(const std::string& ns, const std::string& name);
  // Deletes it (its tokens stop at once); a missing one is not an error.
  [[nodiscard]] Status RemoveServiceAccount(const std::string& ns, const std::string& name);

 private:
  struct Known {  // an account as Verify needs it
    uint64_t generation = 0;
  };
  struct Cached {
    Identity identity;
    uint64_t generation = 0;
  };

  RocksDbAuth(storage::RocksDb& db, const Clock& clock, Options options);
  Status LoadKeys();
  Result<std::vector<crypto::SigningKey>> ReadSigningKeys(const std::string& path) const;
  Status LoadState();
  Result<Token> Issue(const std::string& ns, const Account& account, uint64_t generation,
                      int64_t ttl_seconds, const std::string& family);
  Status MarkServiceKey(const std::string& ns, const std::string& id);
  Status CheckAttempts(const std::string& account_key, const std::string& peer);
  void CountFailure(const std::string& account_key, const std::string& peer);
  // `sync`: wait for the disk (accounts and rules); refresh tokens are written to the WAL
  // without waiting (they survive a crash of the daemon, not a power cut; then their holder
  // logs in again).
  Status Write(rocksdb::WriteBatch& batch, const char* what, bool sync = true);

  storage::RocksDb& rocks_;
  rocksdb::ColumnFamilyHandle* family_;
  const Clock& clock_;
  const Options options_;
  mutable std::shared_mutex keys_mu_;     // guards keys_ (ReloadSigningKeys replaces them)
  std::vector<crypto::SigningKey> keys_;  // newest first
  std::string service_key_;               // 32 bytes; fixed after Open
  std::string service_key_id_;            // its fingerprint (StoredAccount.service_key_id)

  std::mutex write_mu_;  // one writer at a time: read-modify-write of accounts and families

  mutable std::shared_mutex mu_;                              // guards the members below
  std::unordered_map<std::string, Known> accounts_;           // by ns \0 id
  std::unordered_map<std::string, std::vector<Rule>> rules_;  // by ns
  std::unordered_map<std::string, Cached> verified_;          // by access token

  std::mutex attempts_mu_;
  std::unordered_map<std::string, std::deque<int64_t>> failures_;  // by account key or peer
};

}  // namespace micro::auth
