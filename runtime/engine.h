#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "runtime/desired_state.h"
#include "runtime/log_files.h"
#include "runtime/spec.h"

namespace micro::runtime {

enum class Phase {
  kPending,
  kBuilding,
  kStarting,
  kRunning,
  kStopping,
  kStopped,
  kBackoff,
  kError
};

const char* PhaseName(Phase phase);

struct InstanceView {
  std::string id;
  int pid = 0;
  Phase status = Phase::kPending;
  int restarts = 0;
  int last_exit_code = -1;
  int last_exit_signal = 0;
  int64_t started_unix_ms = 0;
  int64_t next_start_unix_ms = 0;
  std::string address;
  std::string error;
  std::string container_id;
  int64_t revision = 0;  // of the options it runs with
};

struct ServiceView {
  ServiceSpec spec;
  Phase status = Phase::kPending;
  std::string error;
  std::vector<InstanceView> instances;
  int running = 0;
  int desired = 0;
  int restarts = 0;
  int64_t created_unix_ms = 0;
  int64_t updated_unix_ms = 0;
  int64_t revision = 0;
  Rollout rollout;
  std::optional<ServiceSpec> previous;
  int64_t previous_revision = 0;
};

// What the Runtime API asks of the engine that runs the deployed services (the Supervisor; a
// fake in service tests). Services are keyed by (namespace, name, version). Every method may be
// called from any thread; the callbacks run on a thread of the engine's choosing, exactly once,
// and must not block. Errors: UNAVAILABLE while the engine restores the services of an earlier
// daemon or shuts down; RESOURCE_EXHAUSTED past a limit of the engine; a failed durable write
// as its storage reports it.
class Engine {
 public:
  virtual ~Engine() = default;

  // Deploys a validated spec and answers once its desired state is durable. ALREADY_EXISTS if
  // that version is deployed; FAILED_PRECONDITION if its driver is not available.
  virtual void Create(ServiceSpec spec, std::function<void(Result<ServiceView>)> done) = 0;

  // Replaces the instances with `spec` if given, else with the same options (a restart), by the
  // spec's update policy: a rolling update (ServiceView::rollout follows it) or all at once. The
  // new options are durable before anything is replaced; `done` does not wait for the rollout.
  // NOT_FOUND if that version is not deployed or is being removed.
  virtual void Update(const std::string& ns, const std::string& name, const std::string& version,
                      std::optional<ServiceSpec> spec,
                      std::function<void(Result<ServiceView>)> done) = 0;

  // Goes back to the options that ran before the latest update, the same way. NOT_FOUND as
  // Update; FAILED_PRECONDITION if there are none.
  virtual void Rollback(const std::string& ns, const std::string& name, const std::string& version,
                        std::function<void(Result<ServiceView>)> done) = 0;

  // Forgets the service durably, then stops every instance (stop signal, grace, SIGKILL);
  // `done` once all of its processes are gone. Empty version: every version. NOT_FOUND.
  virtual void Delete(const std::string& ns, const std::string& name, const std::string& version,
                      std::function<void(Status)> done) = 0;

  // Empty name: every service of the namespace (maybe none). Empty version: every version.
  // NOT_FOUND for a name not deployed.
  virtual void Read(const std::string& ns, const std::string& name, const std::string& version,
                    std::function<void(Result<std::vector<ServiceView>>)> done) = 0;

  // At once: the logs of the matching services, deployed now or earlier (their files outlive
  // them). Empty version: every version. NOT_FOUND if there are none.
  [[nodiscard]] virtual Result<std::vector<std::shared_ptr<ServiceLogs>>> Logs(
      const std::string& ns, const std::string& name, const std::string& version) = 0;
};

}  // namespace micro::runtime
