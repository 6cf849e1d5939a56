#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "runtime/spec.h"

namespace micro::runtime {

enum class RolloutState { kNone, kRunning, kRollingBack, kSucceeded, kRolledBack, kFailed };

const char* RolloutStateName(RolloutState state);

// The latest update of a service (runtime.proto's Rollout).
struct Rollout {
  RolloutState state = RolloutState::kNone;
  std::string reason;    // why it failed or went back
  int64_t revision = 0;  // of the options it goes to
  int64_t started_unix_ms = 0;
  int64_t finished_unix_ms = 0;
  int instances_updated = 0;  // while it runs: instances of `revision` counted healthy (not kept)
  bool active() const {
    return state == RolloutState::kRunning || state == RolloutState::kRollingBack;
  }
};

// A deployed service as the desired state keeps it.
struct DeployedService {
  ServiceSpec spec;
  int64_t created_unix_ms = 0;
  int64_t updated_unix_ms = 0;
  int64_t revision = 1;  // of `spec`: 1 at the deploy, a new one at each update
  // What ran before the latest update (a rollback's target), and its revision.
  std::optional<ServiceSpec> previous;
  int64_t previous_revision = 0;
  // The latest update; a daemon that starts while it is active takes it up again.
  Rollout rollout;
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
