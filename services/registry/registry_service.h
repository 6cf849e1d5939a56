#pragma once

#include "core/clock.h"
#include "micro/registry/v1/registry.grpc.pb.h"
#include "server/call_context.h"
#include "services/registry/registry.h"

namespace micro::registry {

// micro.registry.v1.Registry over gRPC: converts between proto and domain types and calls the
// Registry. No registry logic lives here.
class RegistryService final : public v1::Registry::CallbackService {
 public:
  // All three must outlive the service.
  RegistryService(Registry& registry, const CallContexts& contexts)
      : registry_(registry), contexts_(contexts) {}

  grpc::ServerUnaryReactor* Register(grpc::CallbackServerContext* context,
                                     const v1::RegisterRequest* request,
                                     v1::RegisterResponse* response) override;
  grpc::ServerUnaryReactor* Deregister(grpc::CallbackServerContext* context,
                                       const v1::DeregisterRequest* request,
                                       v1::DeregisterResponse* response) override;
  grpc::ServerUnaryReactor* GetService(grpc::CallbackServerContext* context,
                                       const v1::GetServiceRequest* request,
                                       v1::GetServiceResponse* response) override;
  grpc::ServerUnaryReactor* ListServices(grpc::CallbackServerContext* context,
                                         const v1::ListServicesRequest* request,
                                         v1::ListServicesResponse* response) override;
  grpc::ServerWriteReactor<v1::WatchEvent>* Watch(grpc::CallbackServerContext* context,
                                                  const v1::WatchRequest* request) override;

 private:
  Registry& registry_;
  const CallContexts& contexts_;
};

}  // namespace micro::registry
