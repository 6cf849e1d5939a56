#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/status.h"

namespace micro::auth {

// The scope that makes an account of the namespace "micro" an administrator of every namespace.
inline constexpr const char* kAdminScope = "admin";
// The namespace of the daemon's own accounts (the first admin).
inline constexpr const char* kAdminNamespace = "micro";

struct Account {
  std::string id;
  std::string type = "user";  // "user" or "service"
  std::string ns;
  std::vector<std::string> scopes;
  std::map<std::string, std::string> metadata;
  int64_t created_unix_ms = 0;
};

struct Token {
  std::string access_token;   // a signed JWT, short-lived
  std::string refresh_token;  // opaque; rotates on every use
  int64_t created_unix_ms = 0;
  int64_t expiry_unix_ms = 0;  // of the access token
};

// Who a verified access token says is calling.
struct Identity {
  std::string id;
  std::string ns;
  std::string type;
  std::vector<std::string> scopes;
  int64_t expiry_unix_ms = 0;

  bool HasScope(const std::string& scope) const;
  // An account with the admin scope in the namespace "micro": every namespace, every call.
  bool IsAdmin() const;
};

struct Resource {
  std::string type;      // "service"
  std::string name;      // a service name: "store", "registry", ... or a user service's
  std::string endpoint;  // "Store.Read"
};

enum class Access { kGranted, kDenied };

// Grants or denies calls to resources matching `resource` (each field a name, or "*" for any)
// to accounts of the rule's namespace holding `scope` ("" any account of the namespace). The
// highest priority matching rule decides; at equal priority a deny wins.
struct Rule {
  std::string id;
  std::string scope;
  Resource resource;
  Access access = Access::kGranted;
  int32_t priority = 0;
  std::string ns;
};

// Explicit limits; docs/auth.md lists them.
struct Limits {
  size_t max_id_bytes = 128;  // account and rule ids: the service name charset
  size_t min_secret_bytes = 8;
  size_t max_secret_bytes = 1024;
  size_t max_scopes = 32;
  size_t max_scope_bytes = 64;
  int64_t default_access_ttl_seconds = 15 * 60;
  int64_t max_access_ttl_seconds = 24 * 3600;
  int64_t refresh_ttl_seconds = 30 * 24 * 3600;
  // Failed logins: per account and per source address, in a sliding minute.
  int failed_logins_per_account = 5;
  int failed_logins_per_address = 20;
  size_t max_rules_per_namespace = 1000;
  size_t max_accounts_per_namespace = 10000;
};

}  // namespace micro::auth
