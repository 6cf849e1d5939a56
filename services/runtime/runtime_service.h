#pragma once

#include "micro/runtime/v1/runtime.grpc.pb.h"
#include "rpc/call_context.h"
#include "runtime/engine.h"

namespace micro::runtime {

// micro.runtime.v1.Runtime over gRPC: validates requests, hands them to the engine and answers
// from its callbacks, passing the engine's errors through as their gRPC codes. Services live in
// the caller's namespace.
class RuntimeService final : public v1::Runtime::CallbackService {
 public:
  // Both must outlive the service.
  RuntimeService(Engine& engine, const CallContexts& contexts)
      : engine_(engine), contexts_(contexts) {}

  grpc::ServerUnaryReactor* Create(grpc::CallbackServerContext* context,
                                   const v1::CreateRequest* request,
                                   v1::CreateResponse* response) override;
  grpc::ServerUnaryReactor* Read(grpc::CallbackServerContext* context,
                                 const v1::ReadRequest* request,
                                 v1::ReadResponse* response) override;
  grpc::ServerUnaryReactor* Update(grpc::CallbackServerContext* context,
                                   const v1::UpdateRequest* request,
                                   v1::UpdateResponse* response) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* context,
                                   const v1::DeleteRequest* request,
                                   v1::DeleteResponse* response) override;
  grpc::ServerWriteReactor<v1::LogRecord>* Logs(grpc::CallbackServerContext* context,
                                                const v1::LogsRequest* request) override;

 private:
  Engine& engine_;
  const CallContexts& contexts_;
};

// The wire form of an engine view.
void ViewToProto(const ServiceView& view, v1::Service* out);

}  // namespace micro::runtime
