#pragma once

#include "micro/registry/v1/registry.pb.h"
#include "services/registry/registry.h"

namespace micro::registry {

// Conversions between the wire messages and the domain types.
Service FromProto(const v1::Service& in);
void ToProto(const Service& in, v1::Service* out);
void ToProto(const Event& in, v1::WatchEvent* out);

}  // namespace micro::registry
