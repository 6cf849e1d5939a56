#pragma once

#include <memory>
#include <string>

#include "core/clock.h"
#include "core/status.h"
#include "services/registry/registry.h"

namespace micro::registry {

// The `registry:` section of micro.yaml.
struct RegistryConfig {
  std::string backend = "memory";
};

// Builds the backend named in `config`. INVALID_ARGUMENT, listing the valid names, for an unknown
// one. Its watchers' queued bytes count against `stream_bytes` (may be null). `clock` and
// `stream_bytes` must outlive the result.
[[nodiscard]] Result<std::unique_ptr<Registry>> MakeRegistry(const RegistryConfig& config,
                                                             Clock& clock,
                                                             StreamBytes* stream_bytes = nullptr);

}  // namespace micro::registry
