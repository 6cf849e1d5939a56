#pragma once

#include <string_view>

#include "rpc/call_context.h"
#include "services/auth/rocksdb_auth.h"

namespace micro::auth {

// The daemon's CallGuard: every call needs a valid access token except the public ones
// (grpc.health, server reflection, Auth.Token). An account reaches only its own namespace
// unless it is an admin of the namespace "micro". Within the namespace the namespace's rules
// decide; where none matches, the default policy (docs/auth.md): the namespace's admins may do
// everything; other accounts may use the registry, store, config, broker, events, Server.Info,
// Auth.Inspect and change their own secret, but not deploy (runtime) or manage accounts and
// rules.
class AuthGuard final : public CallGuard {
 public:
  explicit AuthGuard(RocksDbAuth& auth) : auth_(auth) {}

  Status Check(std::string_view method, CallContext* context) override;
  Status Identify(CallContext* context) override;

  // "/micro.store.v1.Store/Read" -> {"service", "store", "Store.Read"}.
  static Resource ResourceOf(std::string_view method);
  static bool IsPublic(std::string_view method);

 private:
  // The token's identity, with the context's identity and namespace filled in.
  Result<Identity> Verified(CallContext* context);

  RocksDbAuth& auth_;
};

}  // namespace micro::auth
