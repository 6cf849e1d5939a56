#pragma once

#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>

#include "core/status.h"

namespace micro {

// The one crossing from our Status to the wire: the codes are the same canonical codes.
inline grpc::Status ToGrpc(const Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

// Ends a unary callback call with `status` and returns its reactor, for handlers to return.
inline grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* context,
                                             const Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpc(status));
  return reactor;
}

}  // namespace micro
