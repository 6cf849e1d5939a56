#include "services/registry/make_registry.h"

#include "services/registry/memory_registry.h"

namespace micro::registry {

Result<std::unique_ptr<Registry>> MakeRegistry(const RegistryConfig& config, Clock& clock,
                                               StreamBytes* stream_bytes) {
  Limits limits;
  limits.stream_bytes = stream_bytes;
  if (config.backend == "memory") return std::make_unique<MemoryRegistry>(clock, limits);
  return absl::InvalidArgumentError("registry.backend '" + config.backend +
                                    "' is not known; valid backends: memory");
}

}  // namespace micro::registry
