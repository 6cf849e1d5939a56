#include "services/config/config_service.h"

#include "core/names.h"
#include "rpc/grpc_status.h"
#include "rpc/handler_guard.h"
#include "rpc/watch_stream.h"

namespace micro::config {
namespace {

// The namespace a request addresses: its own field, else the caller's. An account reaches only
// its own unless it is one of the daemon's admins.
Result<std::string> Namespace(const std::string& given, const CallContext& call) {
  if (!call.error.ok()) return call.error;
  if (given.empty()) return call.ns;
  if (Status s = CheckNamespace(given); !s.ok()) return s;
  if (Status s = CheckNamespaceAccess(call, given); !s.ok()) return s;
  return given;
}

}  // namespace

grpc::ServerUnaryReactor* ConfigService::Get(grpc::CallbackServerContext* context,
                                             const v1::GetRequest* request,
                                             v1::GetResponse* response) try {
  const CallContext call = contexts_.Get(context);
  auto ns = Namespace(request->namespace_(), call);
  if (!ns.ok()) return FinishUnary(context, ns.status());
  if (request->secret()) {
    if (Status s = CheckRevealSecrets(call); !s.ok()) return FinishUnary(context, s);
  }
  auto value = config_.Get(*ns, request->path(), request->secret());
  if (!value.ok()) return FinishUnary(context, value.status());
  response->set_value(std::move(*value));
  return FinishUnary(context, absl::OkStatus());
} catch (...) {
  return FailedUnary();
}

grpc::ServerUnaryReactor* ConfigService::Set(grpc::CallbackServerContext* context,
                                             const v1::SetRequest* request, v1::SetResponse*) try {
  auto ns = Namespace(request->namespace_(), contexts_.Get(context));
  if (!ns.ok()) return FinishUnary(context, ns.status());
  return FinishUnary(context,
                     config_.Set(*ns, request->path(), request->value(), request->secret()));
} catch (...) {
  return FailedUnary();
}

grpc::ServerUnaryReactor* ConfigService::Delete(grpc::CallbackServerContext* context,
                                                const v1::DeleteRequest* request,
                                                v1::DeleteResponse*) try {
  auto ns = Namespace(request->namespace_(), contexts_.Get(context));
  if (!ns.ok()) return FinishUnary(context, ns.status());
  return FinishUnary(context, config_.Delete(*ns, request->path()));
} catch (...) {
  return FailedUnary();
}

grpc::ServerWriteReactor<v1::WatchResponse>* ConfigService::Watch(
    grpc::CallbackServerContext* context, const v1::WatchRequest* request) try {
  using Stream = WatchStream<ConfigWatcher, Change, v1::WatchResponse>;
  auto ns = Namespace(request->namespace_(), contexts_.Get(context));
  if (!ns.ok()) return new Stream(ns.status());
  return new Stream(
      contexts_.streams(),
      [&](std::function<void()> notify) {
        return config_.Watch(*ns, request->path(), std::move(notify));
      },
      [](const Change& change, v1::WatchResponse* out) {
        out->set_path(change.path);
        out->set_value(change.value);
      });
} catch (...) {
  return FailedStream<WatchStream<ConfigWatcher, Change, v1::WatchResponse>>();
}

}  // namespace micro::config
