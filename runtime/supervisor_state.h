#pragma once

// What the Supervisor keeps per service and per instance, shared by its two translation units:
// supervisor.cc (deploys, starts, restarts, stops) and rollout.cc (rolling updates). Private to
// runtime/: nothing outside includes it.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/backoff.h"
#include "runtime/instance_id.h"
#include "runtime/supervisor.h"

namespace micro::runtime {

// The driver's id of an instance or build: unique per (namespace, name, version, suffix).
inline std::string DriverId(const ServiceSpec& spec, const std::string& suffix) {
  return InstanceId(spec.ns, spec.name, spec.version, suffix);
}

inline Status RestoringError() {
  return absl::UnavailableError(
      "the daemon is still restoring the deployed services (stopping what the previous daemon "
      "left running); retry in a few seconds");
}

struct Supervisor::Instance {
  Instance(Timers& timers, std::shared_ptr<const ServiceSpec> options, int64_t revision_of,
           int number_of, uint64_t seed)
      : spec(std::move(options)),
        revision(revision_of),
        number(number_of),
        backoff(spec->backoff, seed),
        timer(timers.NewTimer()),
        probe_timer(timers.NewTimer()),
        gate_timer(timers.NewTimer()),
        deadline_timer(timers.NewTimer()) {}

  // The options it runs with: during a rolling update, old and new instances differ.
  std::shared_ptr<const ServiceSpec> spec;
  int64_t revision = 0;  // of `spec`
  int number = 0;        // N of NAME-N: unique among the service's instances
  std::string id;        // NAME-N
  std::string driver_id;
  InstanceView view;
  Backoff backoff;
  std::unique_ptr<Timer> timer;           // backoff wait, or the stop grace period
  std::unique_ptr<Timer> probe_timer;     // the next health probe
  std::unique_ptr<Timer> gate_timer;      // rollout: the min healthy time running
  std::unique_ptr<Timer> deadline_timer;  // rollout: the healthy deadline
  uint64_t run = 0;        // bumped at every start: callbacks of older runs are stale
  bool launching = false;  // the driver is starting it
  bool running = false;    // a process exists (started, not yet exited)
  bool stop_requested = false;
  bool health_failed = false;
  // Rollout: it counts toward the target (there before the rollout on the target's revision,
  // or healthy for the min healthy time since).
  bool counted = true;
  bool retiring = false;  // a rollout stops it; it leaves the service once stopped
  int probe_failures = 0;
  // Being adopted from an earlier daemon: when that one started it (0: a start of our own).
  int64_t adopted_started_unix_ms = 0;
  Clock::TimePoint run_started;
  std::vector<std::function<void()>> on_stopped;
  LineSplitter out, err;
  Driver* driver = nullptr;
};

// A rolling update in progress (the durable side is DeployedService::rollout).
struct RolloutRun {
  uint64_t id = 0;  // callbacks of an earlier rollout are stale
  int max_parallel = 1;
  bool back = false;  // this one goes back to earlier options
  // Where a failure goes back to (auto_revert), or nothing.
  std::shared_ptr<const ServiceSpec> revert_spec;
  int64_t revert_revision = 0;
};

struct Supervisor::Service {
  DeployedService deployed;
  Phase phase = Phase::kPending;  // service-level: building, error, stopping; else from instances
  std::string error;
  std::vector<std::shared_ptr<Instance>> instances;
  std::shared_ptr<ServiceLogs> logs;
  uint64_t generation = 0;       // bumped when the service is relaunched or removed
  uint64_t stops_requested = 0;  // the generation the latest StopService set
  bool removed = false;          // its removal is durable: it stops for good
  bool removing = false;         // a Delete waits for its removal to become durable
  bool building = false;         // the build command runs
  std::string build_id;          // its driver id
  std::optional<RolloutRun> rolling;
  const ServiceSpec& spec() const { return deployed.spec; }
};

}  // namespace micro::runtime
