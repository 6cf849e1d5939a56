#pragma once

#include "micro/config/v1/config.grpc.pb.h"
#include "rpc/call_context.h"
#include "services/config/config.h"

namespace micro::config {

// micro.config.v1.Config over gRPC. An empty namespace in a request means the caller's.
// Reading secrets in the clear is open to every caller until the auth service restricts it.
class ConfigService final : public v1::Config::CallbackService {
 public:
  // Both must outlive the service.
  ConfigService(Config& config, const CallContexts& contexts)
      : config_(config), contexts_(contexts) {}

  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* context, const v1::GetRequest* request,
                                v1::GetResponse* response) override;
  grpc::ServerUnaryReactor* Set(grpc::CallbackServerContext* context, const v1::SetRequest* request,
                                v1::SetResponse* response) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* context,
                                   const v1::DeleteRequest* request,
                                   v1::DeleteResponse* response) override;
  grpc::ServerWriteReactor<v1::WatchResponse>* Watch(grpc::CallbackServerContext* context,
                                                     const v1::WatchRequest* request) override;

 private:
  Config& config_;
  const CallContexts& contexts_;
};

}  // namespace micro::config
