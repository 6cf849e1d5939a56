#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "runtime/spec.h"

namespace micro::runtime {

// A deployed service as the desired state keeps it.
struct DeployedService {
  ServiceSpec spec;
  int64_t created_unix_ms = 0;
  int64_t updated_unix_ms = 0;
};

// Where the engine keeps what should run, so that a new daemon restores it. Implementations:
// MemoryDesiredState (runtime/memory_desired_state.h: nothing survives the process) and
// RocksDbDesiredState (services/runtime/rocksdb_desired_state.h: the daemon's, synced).
// The supervisor calls it from its own state-writer thread, one call at a time, never from the
// io thread: a call may block (an fsync). A write that returned OK must survive a crash of the
// process (for the durable implementations).
class DesiredState {
 public:
  virtual ~DesiredState() = default;
  // Adds or replaces the service under (spec.ns, spec.name, spec.version).
  [[nodiscard]] virtual Status Save(const DeployedService& service) = 0;
  // OK also when there was nothing to remove.
  [[nodiscard]] virtual Status Remove(const std::string& ns, const std::string& name,
                                      const std::string& version) = 0;
  // Every saved service; entries that cannot be read are skipped with a logged error.
  [[nodiscard]] virtual Result<std::vector<DeployedService>> LoadAll() = 0;
};

}  // namespace micro::runtime
