#pragma once

#include "core/serial_executor.h"
#include "micro/store/v1/store.grpc.pb.h"
#include "rpc/call_context.h"
#include "services/store/store.h"

namespace micro::store {

// micro.store.v1.Store over gRPC: resolves the default database (the caller's namespace) and
// table ("default"), converts between proto and domain types and calls the Store.
class StoreService final : public v1::Store::CallbackService {
 public:
  // Both must outlive the service.
  StoreService(Store& store, const CallContexts& contexts) : store_(store), contexts_(contexts) {}

  grpc::ServerUnaryReactor* Read(grpc::CallbackServerContext* context,
                                 const v1::ReadRequest* request,
                                 v1::ReadResponse* response) override;
  grpc::ServerUnaryReactor* Write(grpc::CallbackServerContext* context,
                                  const v1::WriteRequest* request,
                                  v1::WriteResponse* response) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* context,
                                   const v1::DeleteRequest* request,
                                   v1::DeleteResponse* response) override;
  grpc::ServerWriteReactor<v1::ListResponse>* List(grpc::CallbackServerContext* context,
                                                   const v1::ListRequest* request) override;
  grpc::ServerUnaryReactor* Databases(grpc::CallbackServerContext* context,
                                      const v1::DatabasesRequest* request,
                                      v1::DatabasesResponse* response) override;
  grpc::ServerUnaryReactor* Tables(grpc::CallbackServerContext* context,
                                   const v1::TablesRequest* request,
                                   v1::TablesResponse* response) override;
  grpc::ServerUnaryReactor* Snapshot(grpc::CallbackServerContext* context,
                                     const v1::SnapshotRequest* request,
                                     v1::SnapshotResponse* response) override;

 private:
  Store& store_;
  const CallContexts& contexts_;
  SerialExecutor snapshots_{"store-snapshot"};  // last: drains before the members above go
};

}  // namespace micro::store
