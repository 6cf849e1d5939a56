#pragma once

#include "core/serial_executor.h"
#include "micro/runtime/v1/runtime.grpc.pb.h"
#include "rpc/call_context.h"
#include "runtime/engine.h"

namespace micro::runtime {

// micro.runtime.v1.Runtime over gRPC: validates requests, hands them to the engine and answers
// from its callbacks, passing the engine's errors through as their gRPC codes. Services live in
// the caller's namespace.
// The accounts deployed services run as (the auth service implements it; the daemon wires it).
class ServiceAccounts {
 public:
  virtual ~ServiceAccounts() = default;
  // Creates the account of service `name` in `ns` if missing. Slow (hashing, a synced write).
  [[nodiscard]] virtual Status Ensure(const std::string& ns, const std::string& name) = 0;
  // Deletes it; its tokens stop working at once.
  [[nodiscard]] virtual Status Remove(const std::string& ns, const std::string& name) = 0;
};

class RuntimeService final : public v1::Runtime::CallbackService {
 public:
  // Both must outlive the service; `accounts` too, when given: then every deployed service gets
  // an account before its first start, removed when the service is deleted (all versions).
  RuntimeService(Engine& engine, const CallContexts& contexts, ServiceAccounts* accounts = nullptr)
      : engine_(engine), contexts_(contexts), accounts_(accounts) {}

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
  ServiceAccounts* accounts_;
  SerialExecutor account_worker_{"runtime-accts"};  // last: drains before the members above go
};

// The wire form of an engine view.
void ViewToProto(const ServiceView& view, v1::Service* out);

}  // namespace micro::runtime
