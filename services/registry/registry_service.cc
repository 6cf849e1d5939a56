#include "services/registry/registry_service.h"

#include "rpc/grpc_status.h"
#include "rpc/handler_guard.h"
#include "rpc/watch_stream.h"
#include "services/registry/registry_proto.h"

namespace micro::registry {
grpc::ServerUnaryReactor* RegistryService::Register(grpc::CallbackServerContext* context,
                                                    const v1::RegisterRequest* request,
                                                    v1::RegisterResponse*) try {
  CallContext call = contexts_.Get(context);
  if (!call.error.ok()) return FinishUnary(context, call.error);
  return FinishUnary(
      context, registry_.Register(call.ns, FromProto(request->service()), request->ttl_seconds()));
} catch (...) {
  return FailedUnary();
}

grpc::ServerUnaryReactor* RegistryService::Deregister(grpc::CallbackServerContext* context,
                                                      const v1::DeregisterRequest* request,
                                                      v1::DeregisterResponse*) try {
  CallContext call = contexts_.Get(context);
  if (!call.error.ok()) return FinishUnary(context, call.error);
  return FinishUnary(context, registry_.Deregister(call.ns, FromProto(request->service())));
} catch (...) {
  return FailedUnary();
}

grpc::ServerUnaryReactor* RegistryService::GetService(grpc::CallbackServerContext* context,
                                                      const grpc::ByteBuffer* request_bytes,
                                                      grpc::ByteBuffer* response) try {
  CallContext call = contexts_.Get(context);
  if (!call.error.ok()) return FinishUnary(context, call.error);
  v1::GetServiceRequest request;
  grpc::Slice flat;
  if (!request_bytes->DumpToSingleSlice(&flat).ok() ||
      !request.ParseFromArray(flat.begin(), static_cast<int>(flat.size()))) {
    return FinishUnary(context,
                       absl::InvalidArgumentError("GetServiceRequest could not be parsed"));
  }
  std::string key = call.ns;
  key.append(1, '\0').append(request.name()).append(1, '\0').append(request.version());
  const Freshness freshness = registry_.CurrentFreshness();
  if (auto kept = cache_.Find(key, freshness, clock_.Now())) {
    *response = grpc::ByteBuffer(&*kept, 1);
    return FinishUnary(context, absl::OkStatus());
  }

  auto services = registry_.GetService(call.ns, request.name(), request.version());
  if (!services.ok()) return FinishUnary(context, services.status());
  v1::GetServiceResponse message;
  for (const registry::Service& s : *services) ToProto(s, message.add_services());
  grpc::Slice bytes(message.ByteSizeLong());
  message.SerializeWithCachedSizesToArray(const_cast<uint8_t*>(bytes.begin()));
  cache_.Store(key, freshness, bytes);
  *response = grpc::ByteBuffer(&bytes, 1);
  return FinishUnary(context, absl::OkStatus());
} catch (...) {
  return FailedUnary();
}

grpc::ServerUnaryReactor* RegistryService::ListServices(grpc::CallbackServerContext* context,
                                                        const v1::ListServicesRequest*,
                                                        v1::ListServicesResponse* response) try {
  CallContext call = contexts_.Get(context);
  if (!call.error.ok()) return FinishUnary(context, call.error);
  auto services = registry_.ListServices(call.ns);
  if (!services.ok()) return FinishUnary(context, services.status());
  for (const registry::Service& s : *services) ToProto(s, response->add_services());
  return FinishUnary(context, absl::OkStatus());
} catch (...) {
  return FailedUnary();
}

grpc::ServerWriteReactor<v1::WatchEvent>* RegistryService::Watch(
    grpc::CallbackServerContext* context, const v1::WatchRequest* request) try {
  using Stream = WatchStream<Watcher, Event, v1::WatchEvent>;
  CallContext call = contexts_.Get(context);
  if (!call.error.ok()) return new Stream(call.error);
  return new Stream(
      contexts_.streams(),
      [&](std::function<void()> notify) {
        return registry_.Watch(call.ns, request->name(), std::move(notify));
      },
      [](const Event& event, v1::WatchEvent* out) { ToProto(event, out); });
} catch (...) {
  return FailedStream<WatchStream<Watcher, Event, v1::WatchEvent>>();
}

}  // namespace micro::registry
