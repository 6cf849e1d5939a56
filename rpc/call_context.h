#pragma once

#include <grpcpp/support/server_interceptor.h>
#include <grpcpp/support/status.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/metrics.h"
#include "core/status.h"
#include "core/stream_bytes.h"
#include "rpc/stream_slots.h"

namespace grpc {
class ServerContextBase;
}

namespace micro {

// The account a call's token belongs to (empty id: no token was checked).
struct CallIdentity {
  std::string id;
  std::string ns;  // the account's namespace
  std::string type;
  std::vector<std::string> scopes;
  bool admin = false;     // the admin scope in the namespace "micro": every namespace
  bool ns_admin = false;  // the admin scope in its own namespace

  bool HasScope(const std::string& scope) const {
    return std::find(scopes.begin(), scopes.end(), scope) != scopes.end();
  }
};

// Who is calling and in which namespace, resolved once per call from its metadata.
struct CallContext {
  std::string ns;            // from `micro-namespace`, else the account's, else "micro"
  bool ns_explicit = false;  // the client sent `micro-namespace`
  std::string token;         // from `authorization: Bearer <token>`
  Status error;              // why the call may not proceed; handlers return it
  bool long_lived = false;   // a stream that ends only when the client says (health Watch, ...)
  CallIdentity identity;     // filled by the CallGuard
  std::string peer;          // the client's address, without the port
};

// Decides whether a call may proceed (the auth service implements it; the daemon installs it).
class CallGuard {
 public:
  virtual ~CallGuard() = default;
  // Checks a call to `method` ("/package.Service/Method") whose metadata `context` holds: fills
  // context->identity (and context->ns, when the client named none, with the account's) and
  // returns UNAUTHENTICATED or PERMISSION_DENIED when it may not proceed. Memory only: runs on
  // gRPC's threads for every call.
  [[nodiscard]] virtual Status Check(std::string_view method, CallContext* context) = 0;
  // The part of Check that needs no method, for a caller that learns the method later (the
  // HTTP gateway, which then calls Check): verifies the token, fills the identity and the
  // namespace, and refuses a namespace the account may not use.
  [[nodiscard]] virtual Status Identify(CallContext* context) = 0;
};

// Whether the caller may address namespace `ns` in a request field (the metadata's namespace
// the guard has checked): OK without auth (no identity), for the daemon's admins and for the
// caller's own namespace; PERMISSION_DENIED otherwise.
[[nodiscard]] Status CheckNamespaceAccess(const CallContext& call, const std::string& ns);

// Whether the caller may have secrets in clear (config values, or a deploy that hands them to
// a service): OK without auth, for admins of the daemon or of the namespace and for the scope
// "secrets"; PERMISSION_DENIED otherwise.
[[nodiscard]] Status CheckRevealSecrets(const CallContext& call);

// Resolves `micro-namespace` and `authorization` metadata into a CallContext.
[[nodiscard]] CallContext ResolveCallContext(
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata);

// The contexts of the calls in flight, filled by the interceptor before a handler runs and
// dropped when the call ends. Thread-safe; sharded so concurrent calls rarely share a lock.
class CallContexts {
 public:
  // The context of the call behind `server_context`. A call the interceptor did not see (which
  // would be a wiring bug) gets an INTERNAL error in `error`.
  CallContext Get(const grpc::ServerContextBase* server_context) const;

  void Put(const grpc::ServerContextBase* server_context, CallContext context);
  void Erase(const grpc::ServerContextBase* server_context);

  // The number of calls in flight (resolved and not yet ended), long-lived streams excepted.
  size_t InFlight() const;

  // From now on every new call is refused with UNAVAILABLE, so the daemon can drain the calls
  // already in flight before it stops.
  void StartDraining() { draining_ = true; }
  bool draining() const { return draining_; }

  // The daemon's count of open watch and log streams (WatchStream takes a slot per stream).
  // Reached through the contexts because every service already holds them.
  StreamSlots& streams() const { return streams_; }
  // The bytes queued in all those streams together, against `max_stream_bytes`.
  StreamBytes& stream_bytes() const { return stream_bytes_; }

 private:
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<const grpc::ServerContextBase*, CallContext> contexts;
  };
  Shard& ShardOf(const grpc::ServerContextBase* key) const;

  mutable std::array<Shard, 16> shards_;
  std::atomic<bool> draining_{false};
  mutable StreamSlots streams_;
  mutable StreamBytes stream_bytes_;
};

// The figures of every RPC, in a Metrics registry:
//   micro_rpc_requests_total{method,code}  counter: calls ended, by full method name
//                                          ("/micro.store.v1.Store/Get") and gRPC code name
//                                          ("OK", "NOT_FOUND", ...)
//   micro_rpc_duration_seconds{method,code} histogram (Metrics::DefaultBuckets): from the
//                                          call's start to its status
// Method names of calls forwarded to user services are the client's choice: the registry's
// series cap puts those past it under method="other". Thread-safe.
class RpcMetrics {
 public:
  // Declares the two families in `metrics` (once, however many RpcMetrics share it).
  explicit RpcMetrics(Metrics& metrics);

  void Record(std::string_view method, grpc::StatusCode code, std::chrono::nanoseconds elapsed);

  // "OK", "CANCELLED", ... "UNAUTHENTICATED"; "UNKNOWN" for a code outside gRPC's list.
  static std::string_view CodeName(grpc::StatusCode code);

 private:
  Metrics::Counter& requests_;
  Metrics::Histogram& duration_;
};

// The server interceptor: resolves each call's context into `contexts`, records each call in
// `metrics` (RpcMetrics) and, at debug level, logs every RPC with method, namespace, status code
// and duration. A call that ends without a status sent (cancelled by the client, its deadline
// past, the server shut down) counts with code CANCELLED.
class CallContextInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  // All must outlive the gRPC server. Without a guard every call proceeds (tests of single
  // services); without metrics nothing is counted.
  CallContextInterceptorFactory(CallContexts& contexts, const Clock& clock,
                                CallGuard* guard = nullptr, Metrics* metrics = nullptr)
      : contexts_(contexts),
        clock_(clock),
        guard_(guard),
        metrics_(metrics == nullptr ? nullptr : std::make_unique<RpcMetrics>(*metrics)) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  CallContexts& contexts_;
  const Clock& clock_;
  CallGuard* guard_;
  std::unique_ptr<RpcMetrics> metrics_;
};

}  // namespace micro
