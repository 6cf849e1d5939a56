#pragma once

#include <grpcpp/support/status.h>

#include "core/status.h"

namespace micro {

// The one crossing from our Status to the wire: the codes are the same canonical codes.
inline grpc::Status ToGrpc(const Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

}  // namespace micro
