#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <vector>

#include "core/clock.h"
#include "rpc/call_context.h"

namespace micro::testing {

// A gRPC server with no port, carrying the daemon's call-context interceptor, for service tests
// through the whole RPC stack (serialization, interceptor, status codes) without sockets.
class InProcessServer {
 public:
  // Services are registered before start; they, `contexts` and `metrics` (null: none) must
  // outlive the server.
  InProcessServer(CallContexts& contexts, const std::vector<grpc::Service*>& services,
                  Metrics* metrics = nullptr);
  ~InProcessServer();

  std::shared_ptr<grpc::Channel> channel();
  grpc::Server& server() { return *server_; }

 private:
  SystemClock clock_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace micro::testing
