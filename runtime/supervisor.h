#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "core/clock.h"
#include "core/serial_executor.h"
#include "core/status.h"
#include "runtime/backoff.h"
#include "runtime/desired_state.h"
#include "runtime/driver.h"
#include "runtime/engine.h"
#include "runtime/fd_budget.h"
#include "runtime/health_probe.h"
#include "runtime/log_files.h"
#include "runtime/spec.h"
#include "runtime/timers.h"

namespace micro::runtime {

struct SupervisorOptions {
  std::string logs_dir;        // service logs go to LOGS_DIR/NAMESPACE/NAME/VERSION/
  std::string daemon_address;  // given to every instance as MICRO_SERVER
  Env base_env;                // the environment processes inherit (the daemon's, no MICRO_*)
  uint64_t seed = 0;           // for the backoff jitter
  // The daemon's descriptors: Create and Update refuse to go past `fd_budget->instances`
  // (RESOURCE_EXHAUSTED). Unset: no limit.
  std::optional<FdBudget> fd_budget;
  // Shared by every service's logs: the log files held open at once. Null: no limit.
  std::shared_ptr<OpenFileBudget> open_log_files;
  // Extra environment for each instance of service `name` in `ns`, asked at every start (the
  // service account's credentials): never kept in the desired state. Must be quick (it runs
  // on the io_context thread). Null: none.
  std::function<Env(const std::string& ns, const std::string& name)> credentials;
  // The value at config `path` in namespace `ns`, in clear, for a spec's env_secrets: asked at
  // Create and Update (a missing one refuses the deploy) and at every start. Must be quick (it
  // runs on the io_context thread). Null: services with env_secrets are refused.
  std::function<Result<std::string>(const std::string& ns, const std::string& path)> resolve_secret;
};

// What runs, over every namespace, for the daemon's metrics.
struct RuntimeSummary {
  struct Service {
    std::string ns, name, version;
    Phase status = Phase::kPending;
    int running = 0;   // instances running now
    int desired = 0;   // instances the spec asks for
    int restarts = 0;  // of its instances, since the daemon started them
  };
  std::vector<Service> services;   // in (namespace, name, version) order
  std::map<Phase, int> instances;  // instances by status
};

// The engine: makes what runs match the desired state. It starts each service's instances with
// a driver, restarts them by policy with backoff, probes their health, captures their output,
// and stops them. All of its state lives on the io_context thread; the public methods may be
// called from any thread and answer through their callback on the io_context thread. Writes
// of the desired state run on a thread of their own, in the order the io thread decided them,
// so the io thread never waits for an fsync; a call that changes the desired state is answered
// once its write is durable. Delays (backoff, grace periods, probe intervals) are measured by
// `clock` and waited for with `timers`, so tests drive them with a fake clock.
class Supervisor final : public Engine {
 public:
  // `containers` may be null (no container engine): container services then fail with a
  // clear error. Everything passed in must outlive the supervisor.
  Supervisor(boost::asio::io_context& io, Clock& clock, Timers& timers, DesiredState& state,
             Driver& processes, Driver* containers, std::string containers_error,
             SupervisorOptions options);
  ~Supervisor() override;

  // MICRO_SERVER for the instances started from now on (the daemon knows its port late).
  void set_daemon_address(std::string address) { options_.daemon_address = std::move(address); }

  // Stops what an earlier daemon left running, then starts every service of the desired state.
  void Restore(std::function<void(Status)> done);

  // Engine (runtime/engine.h has the contracts).
  void Create(ServiceSpec spec, std::function<void(Result<ServiceView>)> done) override;
  void Update(const std::string& ns, const std::string& name, const std::string& version,
              std::optional<ServiceSpec> spec,
              std::function<void(Result<ServiceView>)> done) override;
  void Rollback(const std::string& ns, const std::string& name, const std::string& version,
                std::function<void(Result<ServiceView>)> done) override;
  void Delete(const std::string& ns, const std::string& name, const std::string& version,
              std::function<void(Status)> done) override;
  void Read(const std::string& ns, const std::string& name, const std::string& version,
            std::function<void(Result<std::vector<ServiceView>>)> done) override;
  [[nodiscard]] Result<std::vector<std::shared_ptr<ServiceLogs>>> Logs(
      const std::string& ns, const std::string& name, const std::string& version) override;

  // At once, on the io_context thread only (the daemon's gateway handlers run there): the
  // deployed services with their status and restarts, and their instances by status. Empty
  // while Restore has not yet added the services.
  RuntimeSummary Summary() const;

  // Stops every instance, keeping the desired state, for the daemon's shutdown.
  void StopAll(std::function<void()> done);
  // For a shutdown that leaves the instances running for the next daemon to adopt: stops
  // watching them (builds are killed: a next daemon runs them again), closes log followers.
  void LeaveRunning(std::function<void()> done);
  // SIGKILL to every running instance now (a StopAll's grace period cut short).
  void KillAll();

 private:
  struct Instance;
  struct Service;
  using Key = std::tuple<std::string, std::string, std::string>;  // ns, name, version

  void StartRestored(std::vector<DeployedService> deployed, std::function<void(Status)> done);
  // Adopts what the process driver recovered that belongs to a deployed service at a revision
  // it runs; the rest of an earlier daemon's processes is removed; then the services start.
  void AdoptRecovered(std::vector<DeployedService> deployed, std::vector<Recovered> recovered,
                      std::function<void(Status)> done);
  void AddService(DeployedService deployed, std::vector<Recovered> adopted);
  void Adopt(const std::shared_ptr<Service>& service, const std::shared_ptr<Instance>& instance);
  LaunchCallbacks Callbacks(const std::shared_ptr<Service>& service,
                            const std::shared_ptr<Instance>& instance, uint64_t run);
  void Persist(std::function<Status()> write, std::function<void(Status)> then);
  void Restart(const std::shared_ptr<Service>& service,
               std::function<void(Result<ServiceView>)> done);
  void Remove(std::vector<std::shared_ptr<Service>> services, std::function<void(Status)> done);
  void Launch(const std::shared_ptr<Service>& service);
  // The spec's env_secrets resolved; FAILED_PRECONDITION naming the variable if one cannot be.
  Result<Env> ResolveSecrets(const ServiceSpec& spec) const;
  // Runs the spec's build command, then `built`; `failed` with the reason if it fails.
  void Build(const std::shared_ptr<Service>& service, std::function<void()> built,
             std::function<void(std::string)> failed);
  // A new instance slot of the service's current options (not started), numbered with the
  // lowest N its instances do not use.
  std::shared_ptr<Instance> NewInstance(const std::shared_ptr<Service>& service);
  // The service's current state saved on the state writer (errors are logged).
  void SaveDeployed(const std::shared_ptr<Service>& service);
  // Saves `updated`, then makes it the service's state and replaces the instances: a rollout
  // (`back`: going back; a failure goes to `revert_spec` if given), or all at once
  // (max_parallel 0). `done` once it has begun.
  void ApplyUpdate(const std::shared_ptr<Service>& service,
                   std::shared_ptr<DeployedService> updated, bool back,
                   std::shared_ptr<const ServiceSpec> revert_spec, int64_t revert_revision,
                   std::function<void(Result<ServiceView>)> done);
  // Looks up a service for Update or Rollback: NOT_FOUND if absent or being removed.
  Result<std::shared_ptr<Service>> Updatable(const std::string& ns, const std::string& name,
                                             const std::string& version);

  // Rolling updates (rollout.cc). Begins replacing every instance not on the current revision,
  // `max_parallel` at a time; a failure goes back to `revert` if given.
  void StartRollout(const std::shared_ptr<Service>& service, int max_parallel, bool back,
                    std::shared_ptr<const ServiceSpec> revert_spec, int64_t revert_revision);
  // Starts new instances and retires old ones as far as the rollout allows; ends it when done.
  void Pump(const std::shared_ptr<Service>& service);
  // An instance passed its health check (or started, without one).
  void OnHealthy(const std::shared_ptr<Service>& service,
                 const std::shared_ptr<Instance>& instance);
  // An instance exited or failed to start.
  void OnFailedRun(const std::shared_ptr<Service>& service,
                   const std::shared_ptr<Instance>& instance, const std::string& why);
  void RolloutFailed(const std::shared_ptr<Service>& service, const std::string& reason);
  void FinishRollout(const std::shared_ptr<Service>& service);
  // Stops an instance for good and drops it from the service once stopped.
  void Retire(const std::shared_ptr<Service>& service, const std::shared_ptr<Instance>& instance);
  void StartInstance(const std::shared_ptr<Service>& service,
                     const std::shared_ptr<Instance>& instance);
  void OnExit(const std::shared_ptr<Service>& service, const std::shared_ptr<Instance>& instance,
              uint64_t run, Exit exit);
  void RunFailed(const std::shared_ptr<Service>& service, const std::shared_ptr<Instance>& instance,
                 std::chrono::milliseconds run_time);
  void ScheduleProbe(const std::shared_ptr<Service>& service,
                     const std::shared_ptr<Instance>& instance, uint64_t run);
  void OnProbe(const std::shared_ptr<Service>& service, const std::shared_ptr<Instance>& instance,
               uint64_t run, Status status);
  void StopInstance(const std::shared_ptr<Service>& service,
                    const std::shared_ptr<Instance>& instance, std::function<void()> done);
  void BeginStop(const std::shared_ptr<Service>& service,
                 const std::shared_ptr<Instance>& instance);
  void StopService(const std::shared_ptr<Service>& service, std::function<void()> done);
  void Note(const std::shared_ptr<Service>& service, const std::string& instance,
            const std::string& message);
  Driver* DriverFor(const ServiceSpec& spec);
  ServiceView View(const Service& service) const;
  // Instances of every deployed service, as their specs ask.
  uint64_t DeployedInstances() const;
  std::shared_ptr<ServiceLogs> LogsFor(const ServiceSpec& spec);
  std::string LogDir(const std::string& ns, const std::string& name,
                     const std::string& version) const;

  boost::asio::io_context& io_;
  Clock& clock_;
  Timers& timers_;
  DesiredState& state_;
  Driver& processes_;
  Driver* containers_;
  const std::string containers_error_;
  SupervisorOptions options_;
  HealthProber prober_;
  uint64_t seed_;
  bool stopping_all_ = false;
  uint64_t rollouts_ = 0;               // io thread only: ids of RolloutRun
  std::atomic<bool> restoring_{false};  // Restore has begun and not yet added the services

  std::map<Key, std::shared_ptr<Service>> services_;  // io thread only
  std::set<Key> creating_;           // io thread only: created, the desired state not yet durable
  uint64_t creating_instances_ = 0;  // io thread only: their instances, for the budget

  std::mutex logs_mu_;
  std::map<Key, std::shared_ptr<ServiceLogs>> logs_;

  // Last: destroyed first, it finishes the writes already submitted before anything they use
  // goes away.
  SerialExecutor state_writer_{"runtime-state"};
};

}  // namespace micro::runtime
