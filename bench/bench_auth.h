#pragma once

#include <grpcpp/client_context.h>

#include <cstdlib>
#include <string>

// The benchmark clients send the access token in MICRO_TOKEN (bench/lib.sh's micro_token gets
// one for the daemon's admin), as the micro CLI does.
inline void AddBenchToken(grpc::ClientContext& context) {
  if (const char* token = std::getenv("MICRO_TOKEN"); token != nullptr && *token != '\0') {
    context.AddMetadata("authorization", std::string("Bearer ") + token);
  }
}
