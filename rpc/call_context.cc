#include "rpc/call_context.h"

#include <grpcpp/server_context.h>
#include <spdlog/spdlog.h>

#include <functional>

#include "core/names.h"
#include "rpc/grpc_status.h"

namespace micro {
namespace {

std::string_view View(const grpc::string_ref& ref) { return {ref.data(), ref.size()}; }

class CallContextInterceptor final : public grpc::experimental::Interceptor {
 public:
  CallContextInterceptor(grpc::experimental::ServerRpcInfo* info, CallContexts& contexts,
                         const Clock& clock, CallGuard* guard, RpcMetrics* metrics)
      : info_(info),
        contexts_(contexts),
        clock_(clock),
        guard_(guard),
        metrics_(metrics),
        start_(clock.Now()) {}

  // gRPC destroys the interceptors when the call is done. PRE_SEND_STATUS never came for a call
  // cancelled before its handler finished: to the client it ended CANCELLED (or
  // DEADLINE_EXCEEDED, which the server cannot tell apart here).
  ~CallContextInterceptor() override {
    if (metrics_ != nullptr && !counted_) {
      metrics_->Record(info_->method(), grpc::StatusCode::CANCELLED, clock_.Now() - start_);
    }
    if (registered_) contexts_.Erase(info_->server_context());
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      CallContext context = ResolveCallContext(*methods->GetRecvInitialMetadata());
      const std::string_view method = info_->method();
      if (contexts_.draining()) {
        context.error = absl::UnavailableError("the server is shutting down; retry shortly");
      }
      if (guard_ != nullptr && context.error.ok()) {
        context.peer = Peer(info_->server_context()->peer());
        context.error = guard_->Check(method, &context);
      }
      ns_ = context.ns;
      // Streams that live as long as the client wants are not waited for at shutdown.
      // A broker or events PublishStream may sit idle between batches for as long as its
      // client likes.
      context.long_lived =
          method == "/grpc.health.v1.Health/Watch" || method == "/micro.runtime.v1.Runtime/Logs" ||
          method == "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo" ||
          method == "/micro.broker.v1.Broker/PublishStream" ||
          method == "/micro.events.v1.Events/PublishStream";
      contexts_.Put(info_->server_context(), std::move(context));
      registered_ = true;
      log_ = spdlog::should_log(spdlog::level::debug);
    }
    if ((log_ || metrics_ != nullptr) &&
        methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      Ended(methods->GetSendStatus().error_code());
    }
    methods->Proceed();
  }

 private:
  // "ipv4:127.0.0.1:5000" -> "ipv4:127.0.0.1", "ipv6:[::1]:5000" -> "ipv6:[::1]".
  static std::string Peer(const std::string& peer) {
    const size_t colon = peer.rfind(':');
    return colon == std::string::npos || colon < peer.find(':') + 1 ? peer : peer.substr(0, colon);
  }

  void Ended(grpc::StatusCode code) {
    const std::chrono::nanoseconds elapsed = clock_.Now() - start_;
    if (metrics_ != nullptr) {
      metrics_->Record(info_->method(), code, elapsed);
      counted_ = true;
    }
    if (log_) {
      const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count();
      spdlog::debug("rpc {} namespace={} code={} duration_us={}", info_->method(), ns_,
                    static_cast<int>(code), micros);
    }
  }

  grpc::experimental::ServerRpcInfo* info_;
  CallContexts& contexts_;
  const Clock& clock_;
  CallGuard* guard_;
  RpcMetrics* metrics_;  // null: no metrics
  bool registered_ = false;
  bool log_ = false;
  bool counted_ = false;  // the call's status was recorded in metrics_
  std::string ns_;
  const Clock::TimePoint start_;
};

}  // namespace

CallContext ResolveCallContext(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) {
  CallContext context;
  context.ns = kDefaultNamespace;
  if (auto it = metadata.find("micro-namespace"); it != metadata.end()) {
    context.ns = std::string(View(it->second));
    context.ns_explicit = true;
    if (auto s = CheckNamespace(context.ns); !s.ok()) context.error = s;
  }
  if (auto it = metadata.find("authorization"); it != metadata.end()) {
    std::string_view value = View(it->second);
    constexpr std::string_view kBearer = "Bearer ";
    if (value.substr(0, kBearer.size()) == kBearer) {
      context.token = std::string(value.substr(kBearer.size()));
    } else if (context.error.ok()) {
      context.error =
          absl::InvalidArgumentError("authorization metadata must have the form 'Bearer <token>'");
    }
  }
  return context;
}

Status CheckNamespaceAccess(const CallContext& call, const std::string& ns) {
  const CallIdentity& who = call.identity;
  if (who.id.empty() || who.admin || ns == who.ns) return absl::OkStatus();
  return absl::PermissionDeniedError("account '" + who.id + "' of namespace '" + who.ns +
                                     "' may not use namespace '" + ns + "'");
}

Status CheckRevealSecrets(const CallContext& call) {
  const CallIdentity& who = call.identity;
  if (who.id.empty() || who.admin || who.ns_admin || who.HasScope("secrets")) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError("account '" + who.id +
                                     "' may not read secrets in clear: that needs the scope "
                                     "'secrets' (or an admin)");
}

CallContexts::Shard& CallContexts::ShardOf(const grpc::ServerContextBase* key) const {
  return shards_[std::hash<const void*>()(key) / alignof(std::max_align_t) % shards_.size()];
}

CallContext CallContexts::Get(const grpc::ServerContextBase* server_context) const {
  Shard& shard = ShardOf(server_context);
  std::lock_guard lock(shard.mu);
  auto it = shard.contexts.find(server_context);
  if (it == shard.contexts.end()) {
    CallContext missing;
    missing.error = absl::InternalError("the call context was not resolved");
    return missing;
  }
  return it->second;
}

void CallContexts::Put(const grpc::ServerContextBase* server_context, CallContext context) {
  Shard& shard = ShardOf(server_context);
  std::lock_guard lock(shard.mu);
  shard.contexts.insert_or_assign(server_context, std::move(context));
}

size_t CallContexts::InFlight() const {
  size_t n = 0;
  for (const Shard& shard : shards_) {
    std::lock_guard lock(shard.mu);
    for (const auto& [key, context] : shard.contexts) n += context.long_lived ? 0 : 1;
  }
  return n;
}

void CallContexts::Erase(const grpc::ServerContextBase* server_context) {
  Shard& shard = ShardOf(server_context);
  std::lock_guard lock(shard.mu);
  shard.contexts.erase(server_context);
}

grpc::experimental::Interceptor* CallContextInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new CallContextInterceptor(info, contexts_, clock_, guard_, metrics_.get());
}

RpcMetrics::RpcMetrics(Metrics& metrics)
    : requests_(metrics.AddCounter("micro_rpc_requests_total",
                                   "gRPC calls ended, by method and status code.",
                                   {"method", "code"})),
      duration_(metrics.AddHistogram("micro_rpc_duration_seconds",
                                     "gRPC call durations in seconds, by method and status code.",
                                     {"method", "code"})) {}

void RpcMetrics::Record(std::string_view method, grpc::StatusCode code,
                        std::chrono::nanoseconds elapsed) {
  const std::string_view code_name = CodeName(code);
  requests_.Add({method, code_name});
  duration_.Observe({method, code_name}, std::chrono::duration<double>(elapsed).count());
}

std::string_view RpcMetrics::CodeName(grpc::StatusCode code) {
  const std::string_view name = StatusCodeName(code);
  return name.empty() ? "UNKNOWN" : name;
}

}  // namespace micro
