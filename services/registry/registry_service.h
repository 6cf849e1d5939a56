#pragma once

#include "core/clock.h"
#include "micro/registry/v1/registry.grpc.pb.h"
#include "rpc/call_context.h"
#include "services/registry/get_service_cache.h"
#include "services/registry/registry.h"

namespace micro::registry {

// micro.registry.v1.Registry over gRPC: converts between proto and domain types and calls the
// Registry. No registry logic lives here. GetService, the hot read, is served from serialized
// bytes kept while the registry reports them current (GetServiceCache).
class RegistryService final
    : public v1::Registry::WithRawCallbackMethod_GetService<v1::Registry::CallbackService> {
 public:
  // All three must outlive the service; `clock` is the one the registry uses.
  RegistryService(Registry& registry, const CallContexts& contexts, const Clock& clock)
      : registry_(registry), contexts_(contexts), clock_(clock) {}

  grpc::ServerUnaryReactor* Register(grpc::CallbackServerContext* context,
                                     const v1::RegisterRequest* request,
                                     v1::RegisterResponse* response) override;
  grpc::ServerUnaryReactor* Deregister(grpc::CallbackServerContext* context,
                                       const v1::DeregisterRequest* request,
                                       v1::DeregisterResponse* response) override;
  grpc::ServerUnaryReactor* GetService(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ListServices(grpc::CallbackServerContext* context,
                                         const v1::ListServicesRequest* request,
                                         v1::ListServicesResponse* response) override;
  grpc::ServerWriteReactor<v1::WatchEvent>* Watch(grpc::CallbackServerContext* context,
                                                  const v1::WatchRequest* request) override;

 private:
  Registry& registry_;
  const CallContexts& contexts_;
  const Clock& clock_;
  GetServiceCache cache_;
};

}  // namespace micro::registry
