#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace micro {

// The codes are gRPC's canonical codes, so crossing to the wire is a cast (rpc/grpc_status.h).
using Status = absl::Status;
template <typename T>
using Result = absl::StatusOr<T>;

}  // namespace micro
