#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "runtime/backoff.h"
#include "runtime/driver.h"
#include "runtime/fd_budget.h"
#include "runtime/health_probe.h"
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
};

// A deployed service as the desired state keeps it.
struct DeployedService {
  ServiceSpec spec;
  int64_t created_unix_ms = 0;
  int64_t updated_unix_ms = 0;
};

// Where the desired state lives (the daemon: its RocksDB, synced). Called on the io thread.
class DesiredState {
 public:
  virtual ~DesiredState() = default;
  [[nodiscard]] virtual Status Save(const DeployedService& service) = 0;
  [[nodiscard]] virtual Status Remove(const std::string& ns, const std::string& name,
                                      const std::string& version) = 0;
  [[nodiscard]] virtual Result<std::vector<DeployedService>> LoadAll() = 0;
};

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
};

// The engine: makes what runs match the desired state. It starts each service's instances with
// a driver, restarts them by policy with backoff, probes their health, captures their output,
// and stops them. All of its state lives on the io_context thread; the public methods may be
// called from any thread and answer through their callback on the io_context thread.
class Supervisor {
 public:
  // `containers` may be null (no container engine): container services then fail with a
  // clear error. Everything passed in must outlive the supervisor.
  Supervisor(boost::asio::io_context& io, Clock& clock, DesiredState& state, Driver& processes,
             Driver* containers, std::string containers_error, SupervisorOptions options);
  ~Supervisor();

  // MICRO_SERVER for the instances started from now on (the daemon knows its port late).
  void set_daemon_address(std::string address) { options_.daemon_address = std::move(address); }

  // Stops what an earlier daemon left running, then starts every service of the desired state.
  void Restore(std::function<void(Status)> done);

  // Validated specs only. ALREADY_EXISTS if deployed.
  void Create(ServiceSpec spec, std::function<void(Result<ServiceView>)> done);
  // Restarts every instance at once (no backoff wait), with `spec` if given. NOT_FOUND.
  void Update(const std::string& ns, const std::string& name, const std::string& version,
              std::optional<ServiceSpec> spec, std::function<void(Result<ServiceView>)> done);
  // Stops every instance (stop signal, grace, SIGKILL), forgets the service; `done` once all of
  // its processes are gone. Empty version: every version. NOT_FOUND.
  void Delete(const std::string& ns, const std::string& name, const std::string& version,
              std::function<void(Status)> done);
  // Empty name: every service of the namespace. NOT_FOUND for a name not deployed.
  void Read(const std::string& ns, const std::string& name, const std::string& version,
            std::function<void(Result<std::vector<ServiceView>>)> done);

  // Any thread, at once: the logs of the matching services, deployed now or earlier (their
  // files outlive them). NOT_FOUND if there are none.
  [[nodiscard]] Result<std::vector<std::shared_ptr<ServiceLogs>>> Logs(const std::string& ns,
                                                                       const std::string& name,
                                                                       const std::string& version);

  // Stops every instance, keeping the desired state, for the daemon's shutdown.
  void StopAll(std::function<void()> done);
  // SIGKILL to every running instance now (a StopAll's grace period cut short).
  void KillAll();

 private:
  struct Instance;
  struct Service;
  using Key = std::tuple<std::string, std::string, std::string>;  // ns, name, version

  void AddService(DeployedService deployed);
  void Launch(const std::shared_ptr<Service>& service);
  void Build(const std::shared_ptr<Service>& service);
  void StartInstance(const std::shared_ptr<Service>& service,
                     const std::shared_ptr<Instance>& instance);
  void OnExit(const std::shared_ptr<Service>& service, const std::shared_ptr<Instance>& instance,
              uint64_t run, Exit exit);
  void RunFailed(const std::shared_ptr<Service>& service, const std::shared_ptr<Instance>& instance,
                 std::chrono::milliseconds run_time);
  void ScheduleProbe(const std::shared_ptr<Service>& service,
                     const std::shared_ptr<Instance>& instance, uint64_t run);
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
  DesiredState& state_;
  Driver& processes_;
  Driver* containers_;
  const std::string containers_error_;
  SupervisorOptions options_;
  HealthProber prober_;
  uint64_t seed_;
  bool stopping_all_ = false;
  std::atomic<bool> restoring_{false};  // Restore has begun and not yet added the services

  std::map<Key, std::shared_ptr<Service>> services_;  // io thread only

  std::mutex logs_mu_;
  std::map<Key, std::shared_ptr<ServiceLogs>> logs_;
};

const char* PhaseName(Phase phase);

}  // namespace micro::runtime
