#include "services/registry/make_registry.h"

#include "services/registry/memory_registry.h"

namespace micro::registry {

Result<std::unique_ptr<Registry>> MakeRegistry(const RegistryConfig& config, Clock& clock) {
  if (config.backend == "memory") return std::make_unique<MemoryRegistry>(clock);
  return absl::InvalidArgumentError("registry.backend '" + config.backend +
                                    "' is not known; valid backends: memory");
}

}  // namespace micro::registry
