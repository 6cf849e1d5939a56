#include "runtime/supervisor.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <filesystem>

#include "runtime/instance_id.h"
#include "runtime/manifest.h"
#include "runtime/supervisor_state.h"

namespace micro::runtime {
namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;

// A free loopback port for an instance's MICRO_SERVICE_ADDRESS, kept for the slot's lifetime.
std::string ReservePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  std::string out;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    out = fmt::format("127.0.0.1:{}", ntohs(addr.sin_port));
  }
  ::close(fd);
  return out;
}

std::string Describe(const Exit& exit) {
  if (!exit.error.empty()) return exit.error;
  if (exit.signal != 0)
    return fmt::format("killed by signal {} ({})", exit.signal, ::strsignal(exit.signal));
  return fmt::format("exit code {}", exit.code);
}

}  // namespace

const char* PhaseName(Phase phase) {
  switch (phase) {
    case Phase::kPending:
      return "pending";
    case Phase::kBuilding:
      return "building";
    case Phase::kStarting:
      return "starting";
    case Phase::kRunning:
      return "running";
    case Phase::kStopping:
      return "stopping";
    case Phase::kStopped:
      return "stopped";
    case Phase::kBackoff:
      return "backoff";
    case Phase::kError:
      return "error";
  }
  return "unknown";
}

Supervisor::Supervisor(asio::io_context& io, Clock& clock, Timers& timers, DesiredState& state,
                       Driver& processes, Driver* containers, std::string containers_error,
                       SupervisorOptions options)
    : io_(io),
      clock_(clock),
      timers_(timers),
      state_(state),
      processes_(processes),
      containers_(containers),
      containers_error_(std::move(containers_error)),
      options_(std::move(options)),
      prober_(io, timers, processes),
      seed_(options_.seed) {}

Supervisor::~Supervisor() = default;

std::string Supervisor::LogDir(const std::string& ns, const std::string& name,
                               const std::string& version) const {
  return fmt::format("{}/{}/{}/{}", options_.logs_dir, ns, name, LogFolderOfVersion(version));
}

std::shared_ptr<ServiceLogs> Supervisor::LogsFor(const ServiceSpec& spec) {
  std::lock_guard lock(logs_mu_);
  auto& logs = logs_[{spec.ns, spec.name, spec.version}];
  if (!logs) {
    logs = std::make_shared<ServiceLogs>(LogDir(spec.ns, spec.name, spec.version), spec.version,
                                         spec.logs, options_.open_log_files);
  } else {
    logs->set_policy(spec.logs);
  }
  return logs;
}

Driver* Supervisor::DriverFor(const ServiceSpec& spec) {
  return spec.driver == DriverKind::kContainer ? containers_ : &processes_;
}

void Supervisor::Note(const std::shared_ptr<Service>& service, const std::string& instance,
                      const std::string& message) {
  service->logs->Append({clock_.UnixMillis(), instance, "system", message, ""});
}

// Runs `write` on the state writer, then `then` with its outcome on the io thread. The writer
// runs one write at a time in submission order, and every submission comes from the io thread,
// so the durable state follows the order in which the io thread decided the changes.
void Supervisor::Persist(std::function<Status()> write, std::function<void(Status)> then) {
  state_writer_.Submit([this, write = std::move(write), then = std::move(then)]() mutable {
    asio::post(io_, [status = write(), then = std::move(then)]() mutable { then(status); });
  });
}

void Supervisor::Create(ServiceSpec spec, std::function<void(Result<ServiceView>)> done) {
  asio::post(io_, [this, spec = std::move(spec), done = std::move(done)]() mutable {
    if (stopping_all_) return done(absl::UnavailableError("the daemon is shutting down"));
    if (restoring_) return done(RestoringError());
    const Key key{spec.ns, spec.name, spec.version};
    if (services_.count(key) || creating_.count(key)) {
      return done(absl::AlreadyExistsError(fmt::format(
          "service {} version {} is already deployed; change it with 'micro update {}' or "
          "remove it with 'micro kill {}'",
          spec.name, spec.version, spec.name, spec.name)));
    }
    if (spec.driver == DriverKind::kContainer && containers_ == nullptr) {
      return done(absl::FailedPreconditionError(
          fmt::format("service {} needs the container driver, which is not available: {}",
                      spec.name, containers_error_)));
    }
    if (auto secrets = ResolveSecrets(spec); !secrets.ok()) return done(secrets.status());
    if (options_.fd_budget) {
      const uint64_t deployed = DeployedInstances();
      const uint64_t wanted = deployed + static_cast<uint64_t>(spec.instances);
      if (Status s = CheckInstanceBudget(*options_.fd_budget, deployed, wanted); !s.ok()) {
        return done(s);
      }
    }
    // Reserved while the write is in flight: a second Create of the same key is ALREADY_EXISTS;
    // Read, Update and Delete do not see the service until it is acknowledged.
    creating_.insert(key);
    const uint64_t instances = static_cast<uint64_t>(spec.instances);
    creating_instances_ += instances;
    auto deployed = std::make_shared<DeployedService>();
    deployed->spec = std::move(spec);
    deployed->created_unix_ms = deployed->updated_unix_ms = clock_.UnixMillis();
    Persist([this, deployed] { return state_.Save(*deployed); },
            [this, key, deployed, instances, done = std::move(done)](Status status) {
              creating_.erase(key);
              creating_instances_ -= instances;
              if (!status.ok()) return done(status);
              AddService(std::move(*deployed), {});
              done(View(*services_[key]));
            });
  });
}

std::shared_ptr<Supervisor::Instance> Supervisor::NewInstance(
    const std::shared_ptr<Service>& service) {
  std::set<int> used;
  for (const auto& i : service->instances) used.insert(i->number);
  int number = 0;
  while (used.count(number)) ++number;
  auto spec = std::make_shared<const ServiceSpec>(service->spec());
  auto instance =
      std::make_shared<Instance>(timers_, spec, service->deployed.revision, number, seed_++);
  instance->id = fmt::format("{}-{}", spec->name, number);
  instance->driver_id = DriverId(*spec, std::to_string(number));
  instance->view.id = instance->id;
  instance->view.address = ReservePort();
  instance->view.revision = instance->revision;
  instance->driver = DriverFor(*spec);
  return instance;
}

void Supervisor::SaveDeployed(const std::shared_ptr<Service>& service) {
  auto deployed = std::make_shared<DeployedService>(service->deployed);
  Persist([this, deployed] { return state_.Save(*deployed); },
          [this, service](Status status) {
            if (!status.ok()) {
              Note(service, "",
                   "cannot save the service's state: " + std::string(status.message()));
            }
          });
}

// (Re)creates the instance slots and starts them, after the build if there is one.
Result<Env> Supervisor::ResolveSecrets(const ServiceSpec& spec) const {
  Env resolved;
  for (const auto& [key, path] : spec.env_secrets) {
    if (!options_.resolve_secret) {
      return absl::FailedPreconditionError(
          fmt::format("env.{} names the secret '{}', and this daemon reads no secrets", key, path));
    }
    auto value = options_.resolve_secret(spec.ns, path);
    if (!value.ok()) {
      return absl::FailedPreconditionError(fmt::format(
          "env.{} names config '{}' in namespace '{}', which cannot be read: {}{}", key, path,
          spec.ns, std::string(value.status().message()),
          absl::IsNotFound(value.status())
              ? fmt::format(" (set it with: micro config set {} '\"VALUE\"' --secret -n {})", path,
                            spec.ns)
              : ""));
    }
    if (value->size() > kMaxSecretValueBytes || value->find('\0') != std::string::npos) {
      return absl::FailedPreconditionError(fmt::format(
          "env.{}: config '{}' is {} bytes or holds a NUL; an environment value takes text up "
          "to {} bytes",
          key, path, value->size(), kMaxSecretValueBytes));
    }
    resolved.emplace(key, std::move(*value));
  }
  return resolved;
}

void Supervisor::Launch(const std::shared_ptr<Service>& service) {
  if (stopping_all_) return;
  ++service->generation;
  const ServiceSpec& spec = service->spec();
  service->instances.clear();
  service->error.clear();
  for (int n = 0; n < spec.instances; ++n) service->instances.push_back(NewInstance(service));
  if (spec.driver == DriverKind::kContainer && containers_ == nullptr) {
    service->phase = Phase::kError;
    service->error = "the container driver is not available: " + containers_error_;
    return;
  }
  auto start = [this, service] {
    for (const auto& instance : service->instances) StartInstance(service, instance);
  };
  if (!spec.build.empty()) {
    return Build(service, std::move(start), [this, service](std::string reason) {
      service->phase = Phase::kError;
      service->error = std::move(reason);
    });
  }
  service->phase = Phase::kPending;
  start();
}

void Supervisor::Build(const std::shared_ptr<Service>& service, std::function<void()> built,
                       std::function<void(std::string)> failed) {
  const ServiceSpec& spec = service->spec();
  service->phase = Phase::kBuilding;
  service->building = true;
  Note(service, "build", "building: " + spec.build);
  const uint64_t generation = service->generation;
  LaunchRequest request;
  // Its own id per build: a new build never shares the cgroup of one still being killed.
  service->build_id = DriverId(spec, fmt::format("build{}", generation));
  request.instance_id = service->build_id;
  request.command = "/bin/sh";
  request.args = {"-c", spec.build};
  request.env = options_.base_env;
  for (const auto& [k, v] : spec.env) request.env[k] = v;
  request.working_dir = spec.working_dir;
  auto splitters = std::make_shared<std::pair<LineSplitter, LineSplitter>>();
  LaunchCallbacks callbacks;
  auto fail = std::make_shared<std::function<void(std::string)>>(std::move(failed));
  callbacks.on_started = [this, service, generation, fail](Result<Launched> launched) {
    if (!launched.ok() && service->generation == generation) service->building = false;
    if (launched.ok() || service->generation != generation) return;
    const std::string reason =
        fmt::format("build failed: {}", std::string(launched.status().message()));
    Note(service, "build", reason);
    (*fail)(reason);
  };
  callbacks.on_output = [this, service, splitters](OutputStream stream, std::string_view chunk) {
    const bool out = stream == OutputStream::kStdout;
    (out ? splitters->first : splitters->second).Feed(chunk, [&](std::string_view line) {
      service->logs->Append(
          {clock_.UnixMillis(), "build", out ? "stdout" : "stderr", std::string(line), ""});
    });
  };
  callbacks.on_exit = [this, service, generation, splitters, fail,
                       built = std::move(built)](Exit exit) {
    if (service->generation == generation) service->building = false;
    for (int i = 0; i < 2; ++i) {
      (i == 0 ? splitters->first : splitters->second).Flush([&](std::string_view line) {
        service->logs->Append(
            {clock_.UnixMillis(), "build", i == 0 ? "stdout" : "stderr", std::string(line), ""});
      });
    }
    if (service->generation != generation || service->removed) return;
    if (exit.code != 0) {
      const std::string reason =
          fmt::format("build failed: {}; see 'micro logs {} --instance build'", Describe(exit),
                      service->spec().name);
      Note(service, "build", reason);
      return (*fail)(reason);
    }
    Note(service, "build", "build succeeded");
    service->phase = Phase::kPending;
    if (stopping_all_) return;
    built();
  };
  processes_.Start(request, std::move(callbacks));
}

void Supervisor::StartInstance(const std::shared_ptr<Service>& service,
                               const std::shared_ptr<Instance>& instance) {
  if (service->removed || stopping_all_ || instance->retiring) return;
  const ServiceSpec& spec = *instance->spec;
  const uint64_t run = ++instance->run;
  instance->stop_requested = false;
  instance->health_failed = false;
  instance->probe_failures = 0;
  instance->view.status = Phase::kStarting;
  instance->view.next_start_unix_ms = 0;
  instance->running = false;

  LaunchRequest request;
  request.instance_id = instance->driver_id;
  request.command = spec.command;
  request.args = spec.args;
  if (spec.driver == DriverKind::kProcess) request.env = options_.base_env;
  for (const auto& [k, v] : spec.env) request.env[k] = v;
  request.env["MICRO_SERVER"] = options_.daemon_address;
  request.env["MICRO_SERVICE_NAME"] = spec.name;
  request.env["MICRO_SERVICE_VERSION"] = spec.version;
  request.env["MICRO_NAMESPACE"] = spec.ns;
  request.env["MICRO_SERVICE_ADDRESS"] = instance->view.address;
  if (options_.credentials) {
    for (auto& [k, v] : options_.credentials(spec.ns, spec.name)) request.env[k] = std::move(v);
  }
  auto secrets = ResolveSecrets(spec);
  if (!secrets.ok()) {
    // Deleted or changed since the deploy: this start fails like an exec would, with backoff.
    instance->view.error = std::string(secrets.status().message());
    Note(service, instance->id, "cannot start: " + instance->view.error);
    OnFailedRun(service, instance, "cannot start: " + instance->view.error);
    return RunFailed(service, instance, milliseconds(0));
  }
  for (auto& [k, v] : *secrets) request.env[k] = std::move(v);
  request.working_dir = spec.working_dir;
  request.image = spec.image;
  request.network_mode = spec.network_mode;
  request.memory_bytes = spec.memory_bytes;
  request.max_processes = spec.max_processes;
  // What a next daemon needs to adopt this run (runtime/process_driver.h).
  request.labels = {{"service", fmt::format("{}/{}/{}", spec.ns, spec.name, spec.version)},
                    {"number", std::to_string(instance->number)},
                    {"revision", std::to_string(instance->revision)},
                    {"restarts", std::to_string(instance->view.restarts)},
                    {"address", instance->view.address},
                    {"started_unix_ms", std::to_string(clock_.UnixMillis())}};
  instance->launching = true;
  instance->driver->Start(request, Callbacks(service, instance, run));
}

LaunchCallbacks Supervisor::Callbacks(const std::shared_ptr<Service>& service,
                                      const std::shared_ptr<Instance>& instance, uint64_t run) {
  LaunchCallbacks callbacks;
  callbacks.on_started = [this, service, instance, run](Result<Launched> launched) {
    if (instance->run != run) return;
    instance->launching = false;
    if (!launched.ok() && instance->stop_requested) {
      instance->view.status = Phase::kStopped;
      auto waiters = std::move(instance->on_stopped);
      instance->on_stopped.clear();
      for (auto& w : waiters) w();
      return;
    }
    if (!launched.ok()) {
      instance->view.error = std::string(launched.status().message());
      instance->view.pid = 0;
      Note(service, instance->id, "cannot start: " + instance->view.error);
      OnFailedRun(service, instance, "cannot start: " + instance->view.error);
      return RunFailed(service, instance, milliseconds(0));
    }
    instance->running = true;
    instance->view.pid = launched->pid;
    instance->view.container_id = launched->container_id;
    instance->view.error.clear();
    instance->run_started = clock_.Now();
    const HealthCheck& health = instance->spec->health;
    if (instance->adopted_started_unix_ms > 0) {
      // Adopted: it has been running all along; its health check goes on from here.
      instance->view.started_unix_ms = instance->adopted_started_unix_ms;
      instance->run_started -=
          milliseconds(clock_.UnixMillis() - instance->adopted_started_unix_ms);
      instance->adopted_started_unix_ms = 0;
      instance->view.status = Phase::kRunning;
      Note(service, instance->id,
           fmt::format("adopted from an earlier daemon, pid {}", launched->pid));
    } else {
      instance->view.started_unix_ms = clock_.UnixMillis();
      instance->view.status =
          health.kind == HealthCheckKind::kNone ? Phase::kRunning : Phase::kStarting;
      Note(service, instance->id, fmt::format("started, pid {}", launched->pid));
    }
    if (instance->stop_requested) {
      // A stop came while it was starting: carry it out now, grace period and all.
      BeginStop(service, instance);
    } else if (health.kind != HealthCheckKind::kNone) {
      ScheduleProbe(service, instance, run);
    } else {
      OnHealthy(service, instance);
    }
  };
  callbacks.on_output = [this, service, instance](OutputStream stream, std::string_view chunk) {
    const bool out = stream == OutputStream::kStdout;
    (out ? instance->out : instance->err).Feed(chunk, [&](std::string_view line) {
      service->logs->Append(
          {clock_.UnixMillis(), instance->id, out ? "stdout" : "stderr", std::string(line), ""});
    });
  };
  callbacks.on_exit = [this, service, instance, run](Exit exit) {
    OnExit(service, instance, run, std::move(exit));
  };
  return callbacks;
}

void Supervisor::OnExit(const std::shared_ptr<Service>& service,
                        const std::shared_ptr<Instance>& instance, uint64_t run, Exit exit) {
  for (int i = 0; i < 2; ++i) {
    (i == 0 ? instance->out : instance->err).Flush([&](std::string_view line) {
      service->logs->Append(
          {clock_.UnixMillis(), instance->id, i == 0 ? "stdout" : "stderr", std::string(line), ""});
    });
  }
  if (instance->run != run) return;
  instance->running = false;
  instance->probe_timer->Cancel();
  instance->timer->Cancel();
  instance->view.pid = 0;
  instance->view.last_exit_code = exit.code;
  instance->view.last_exit_signal = exit.signal;
  const auto run_time =
      std::chrono::duration_cast<milliseconds>(clock_.Now() - instance->run_started);
  Note(service, instance->id,
       fmt::format("exited: {} after {:.3f} s", Describe(exit), run_time.count() / 1000.0));
  if (instance->stop_requested) {
    instance->view.status = Phase::kStopped;
    auto waiters = std::move(instance->on_stopped);
    instance->on_stopped.clear();
    for (auto& w : waiters) w();
    return;
  }
  if (!exit.error.empty()) instance->view.error = exit.error;
  OnFailedRun(service, instance, fmt::format("exited ({})", Describe(exit)));
  const RestartPolicy policy = instance->spec->restart;
  const bool failed =
      exit.code != 0 || exit.signal != 0 || !exit.error.empty() || instance->health_failed;
  if (policy == RestartPolicy::kNever || (policy == RestartPolicy::kOnFailure && !failed)) {
    instance->view.status = Phase::kStopped;
    return;
  }
  RunFailed(service, instance, run_time);
}

// Schedules the next start by the backoff; a failed start or exec counts as a run of zero.
void Supervisor::RunFailed(const std::shared_ptr<Service>& service,
                           const std::shared_ptr<Instance>& instance, milliseconds run_time) {
  if (service->removed || stopping_all_ || instance->retiring) {
    instance->view.status = Phase::kStopped;
    return;
  }
  if (instance->spec->restart == RestartPolicy::kNever) {
    instance->view.status = instance->view.error.empty() ? Phase::kStopped : Phase::kError;
    return;
  }
  const milliseconds delay = instance->backoff.NextDelay(run_time);
  ++instance->view.restarts;
  if (delay.count() == 0) return StartInstance(service, instance);
  instance->view.status = Phase::kBackoff;
  instance->view.next_start_unix_ms = clock_.UnixMillis() + delay.count();
  const uint64_t run = instance->run;
  instance->timer->Start(delay, [this, service, instance, run] {
    if (instance->run != run || instance->running) return;
    StartInstance(service, instance);
  });
}

void Supervisor::ScheduleProbe(const std::shared_ptr<Service>& service,
                               const std::shared_ptr<Instance>& instance, uint64_t run) {
  instance->probe_timer->Start(instance->spec->health.interval, [this, service, instance, run] {
    if (instance->run != run || !instance->running || instance->stop_requested) return;
    const ServiceSpec& spec = *instance->spec;
    Env env = options_.base_env;
    for (const auto& [k, v] : spec.env) env[k] = v;
    prober_.Probe(spec.health, instance->view.address, instance->driver_id + ".health",
                  spec.working_dir, env, [this, service, instance, run](Status status) {
                    OnProbe(service, instance, run, std::move(status));
                  });
  });
}

void Supervisor::OnProbe(const std::shared_ptr<Service>& service,
                         const std::shared_ptr<Instance>& instance, uint64_t run, Status status) {
  if (instance->run != run || !instance->running || instance->stop_requested) return;
  const HealthCheck& health = instance->spec->health;
  if (status.ok()) {
    instance->probe_failures = 0;
    ScheduleProbe(service, instance, run);
    if (instance->view.status == Phase::kStarting) {
      instance->view.status = Phase::kRunning;
      Note(service, instance->id, "health check passed");
      OnHealthy(service, instance);
    }
    return;
  }
  // Failures within the start period do not count.
  if (clock_.Now() - instance->run_started < health.start_period) {
    return ScheduleProbe(service, instance, run);
  }
  ++instance->probe_failures;
  Note(service, instance->id,
       fmt::format("health check failed ({}/{}): {}", instance->probe_failures,
                   health.failure_threshold, std::string(status.message())));
  if (instance->probe_failures < health.failure_threshold) {
    return ScheduleProbe(service, instance, run);
  }
  instance->health_failed = true;
  instance->view.error = "health check failed: " + std::string(status.message());
  Note(service, instance->id, "restarting: the health check failed");
  // Stop it like a kill request, but let the exit take the restart path.
  instance->view.status = Phase::kStopping;
  instance->driver->Signal(instance->driver_id, instance->spec->stop_signal);
  instance->timer->Start(instance->spec->grace, [instance, run] {
    if (instance->run != run || !instance->running) return;
    instance->driver->Signal(instance->driver_id, SIGKILL);
  });
}

void Supervisor::StopInstance(const std::shared_ptr<Service>& service,
                              const std::shared_ptr<Instance>& instance,
                              std::function<void()> done) {
  instance->stop_requested = true;
  instance->probe_timer->Cancel();
  if (!instance->running) {
    // Waiting in backoff, failed, stopped, or still being started by the driver.
    instance->timer->Cancel();
    if (instance->launching) {
      // The driver is starting it: on_started signals it, and its exit completes the stop.
      instance->on_stopped.push_back(std::move(done));
      return;
    }
    ++instance->run;  // a pending start callback or timer is now stale
    instance->view.status = Phase::kStopped;
    return done();
  }
  instance->on_stopped.push_back(std::move(done));
  if (instance->view.status == Phase::kStopping && instance->health_failed) return;
  BeginStop(service, instance);
}

// The stop signal now, SIGKILL after the grace period if the instance is still running then.
void Supervisor::BeginStop(const std::shared_ptr<Service>& service,
                           const std::shared_ptr<Instance>& instance) {
  instance->view.status = Phase::kStopping;
  const ServiceSpec& spec = *instance->spec;
  Note(
      service, instance->id,
      fmt::format("stopping: signal {}, SIGKILL after {} s", spec.stop_signal, spec.grace.count()));
  instance->driver->Signal(instance->driver_id, spec.stop_signal);
  const uint64_t run = instance->run;
  instance->timer->Start(spec.grace, [this, service, instance, run] {
    if (instance->run != run || !instance->running) return;
    Note(service, instance->id, "still running after the grace period: SIGKILL");
    instance->driver->Signal(instance->driver_id, SIGKILL);
  });
}

void Supervisor::StopService(const std::shared_ptr<Service>& service, std::function<void()> done) {
  ++service->generation;  // a build in flight no longer starts anything...
  service->stops_requested = service->generation;
  service->rolling.reset();  // nor does a rollout
  if (service->building) {
    // ...and does not outlive the service either.
    processes_.Signal(service->build_id, SIGKILL);
  }
  // A copy: a retired instance leaves the list when it stops, which may be at once.
  const auto instances = service->instances;
  auto left = std::make_shared<size_t>(instances.size() + 1);
  auto one_done = [left, done = std::move(done)]() {
    if (--*left == 0) done();
  };
  for (const auto& instance : instances) {
    instance->gate_timer->Cancel();
    instance->deadline_timer->Cancel();
    StopInstance(service, instance, one_done);
  }
  one_done();
}

// Stops every instance, then launches them again (unless a later update or delete took over).
void Supervisor::Restart(const std::shared_ptr<Service>& service,
                         std::function<void(Result<ServiceView>)> done) {
  Note(service, "", "update: restarting every instance");
  StopService(service, [this, service, done = std::move(done)]() mutable {
    if (service->removed) return done(absl::NotFoundError("the service was removed"));
    // A later update or delete took over while this one waited: that one launches.
    if (service->generation != service->stops_requested) return done(View(*service));
    Launch(service);
    done(View(*service));
  });
}

void Supervisor::Delete(const std::string& ns, const std::string& name, const std::string& version,
                        std::function<void(Status)> done) {
  asio::post(io_, [this, ns, name, version, done = std::move(done)]() mutable {
    if (restoring_) return done(RestoringError());
    std::vector<std::shared_ptr<Service>> matched;
    for (auto& [key, service] : services_) {
      if (std::get<0>(key) == ns && std::get<1>(key) == name &&
          (version.empty() || std::get<2>(key) == version)) {
        matched.push_back(service);
      }
    }
    if (matched.empty()) {
      return done(absl::NotFoundError(
          version.empty() ? fmt::format("service {} is not deployed; see 'micro status'", name)
                          : fmt::format("service {} version {} is not deployed; see 'micro status'",
                                        name, version)));
    }
    std::vector<Key> keys;
    for (const auto& service : matched) {
      service->removing = true;
      keys.push_back({service->spec().ns, service->spec().name, service->spec().version});
    }
    Persist(
        [this, keys] {
          for (const auto& [key_ns, key_name, key_version] : keys) {
            if (Status s = state_.Remove(key_ns, key_name, key_version); !s.ok()) return s;
          }
          return absl::OkStatus();
        },
        [this, matched = std::move(matched), done = std::move(done)](Status status) mutable {
          if (!status.ok()) {
            for (const auto& service : matched) service->removing = false;
            return done(status);
          }
          Remove(std::move(matched), std::move(done));
        });
  });
}

// Stops the services whose removal is durable and forgets them once their processes are gone.
void Supervisor::Remove(std::vector<std::shared_ptr<Service>> services,
                        std::function<void(Status)> done) {
  auto left = std::make_shared<size_t>(services.size());
  auto all_done = std::make_shared<std::function<void(Status)>>(std::move(done));
  for (const auto& service : services) {
    service->removed = true;
    service->phase = Phase::kStopping;
    Note(service, "", "removing the service");
    StopService(service, [this, service, left, all_done] {
      const ServiceSpec& spec = service->spec();
      auto it = services_.find({spec.ns, spec.name, spec.version});
      if (it != services_.end() && it->second == service) services_.erase(it);
      Note(service, "", "removed");
      service->logs->CloseFollowers(EndOfLogs());
      service->logs->CloseFiles();
      if (--*left == 0) (*all_done)(absl::OkStatus());
    });
  }
}

void Supervisor::Read(const std::string& ns, const std::string& name, const std::string& version,
                      std::function<void(Result<std::vector<ServiceView>>)> done) {
  asio::post(io_, [this, ns, name, version, done = std::move(done)] {
    if (restoring_) return done(RestoringError());
    std::vector<ServiceView> out;
    for (auto& [key, service] : services_) {
      if (std::get<0>(key) != ns) continue;
      if (!name.empty() && std::get<1>(key) != name) continue;
      if (!version.empty() && std::get<2>(key) != version) continue;
      out.push_back(View(*service));
    }
    if (out.empty() && !name.empty()) {
      return done(absl::NotFoundError(
          fmt::format("service {} is not deployed; deploy it with 'micro run'", name)));
    }
    done(std::move(out));
  });
}

Result<std::vector<std::shared_ptr<ServiceLogs>>> Supervisor::Logs(const std::string& ns,
                                                                   const std::string& name,
                                                                   const std::string& version) {
  std::vector<std::shared_ptr<ServiceLogs>> out;
  std::error_code ec;
  const std::string name_dir = fmt::format("{}/{}/{}", options_.logs_dir, ns, name);
  std::vector<std::string> versions;
  if (!version.empty()) {
    versions.push_back(version);
  } else {
    for (const auto& entry : std::filesystem::directory_iterator(name_dir, ec)) {
      versions.push_back(VersionOfLogFolder(entry.path().filename().string()));
    }
    std::lock_guard lock(logs_mu_);
    for (const auto& [key, logs] : logs_) {
      if (std::get<0>(key) == ns && std::get<1>(key) == name) versions.push_back(std::get<2>(key));
    }
  }
  std::sort(versions.begin(), versions.end());
  versions.erase(std::unique(versions.begin(), versions.end()), versions.end());
  std::lock_guard lock(logs_mu_);
  for (const std::string& v : versions) {
    auto& logs = logs_[{ns, name, v}];
    if (!logs) {
      if (!std::filesystem::exists(LogDir(ns, name, v), ec)) {
        logs_.erase({ns, name, v});
        continue;
      }
      logs = std::make_shared<ServiceLogs>(LogDir(ns, name, v), v, LogPolicy{},
                                           options_.open_log_files);
    }
    out.push_back(logs);
  }
  if (out.empty()) {
    return absl::NotFoundError(fmt::format("service {} has no logs: it was never deployed{}", name,
                                           version.empty() ? "" : " in version " + version));
  }
  return out;
}

void Supervisor::StopAll(std::function<void()> done) {
  asio::post(io_, [this, done = std::move(done)]() mutable {
    stopping_all_ = true;
    auto left = std::make_shared<size_t>(services_.size() + 1);
    auto one_done = [left, done = std::move(done)]() {
      if (--*left == 0) done();
    };
    for (auto& [key, service] : services_) {
      StopService(service, [service, one_done] {
        service->logs->CloseFollowers(absl::UnavailableError("the daemon is shutting down"));
        one_done();
      });
    }
    one_done();
  });
}

void Supervisor::KillAll() {
  asio::post(io_, [this] {
    for (auto& [key, service] : services_) {
      if (service->building) processes_.Signal(service->build_id, SIGKILL);
      for (const auto& instance : service->instances) {
        if (instance->running) instance->driver->Signal(instance->driver_id, SIGKILL);
      }
    }
  });
}

uint64_t Supervisor::DeployedInstances() const {
  uint64_t count = creating_instances_;  // deploys whose write is in flight count already
  for (const auto& [key, service] : services_) {
    count += static_cast<uint64_t>(service->spec().instances);
  }
  return count;
}

RuntimeSummary Supervisor::Summary() const {
  RuntimeSummary summary;
  summary.services.reserve(services_.size());
  for (const auto& [key, service] : services_) {
    const ServiceView view = View(*service);
    summary.services.push_back({std::get<0>(key), std::get<1>(key), std::get<2>(key), view.status,
                                view.running, view.desired, view.restarts});
    for (const InstanceView& instance : view.instances) ++summary.instances[instance.status];
  }
  return summary;
}

ServiceView Supervisor::View(const Service& service) const {
  ServiceView view;
  view.spec = service.spec();
  view.error = service.error;
  view.desired = service.spec().instances;
  view.created_unix_ms = service.deployed.created_unix_ms;
  view.updated_unix_ms = service.deployed.updated_unix_ms;
  view.revision = service.deployed.revision;
  view.rollout = service.deployed.rollout;
  view.previous = service.deployed.previous;
  view.previous_revision = service.deployed.previous_revision;
  if (service.rolling) {
    for (const auto& instance : service.instances) {
      view.rollout.instances_updated +=
          instance->revision == view.revision && instance->counted && !instance->retiring;
    }
  }
  size_t live = 0;  // instances a rollout is not stopping for good: they make the status
  for (const auto& instance : service.instances) live += !instance->retiring;
  bool all_running = live > 0, any_starting = false, any_backoff = false, any_error = false,
       all_stopped = live > 0;
  for (const auto& instance : service.instances) {
    view.instances.push_back(instance->view);
    view.restarts += instance->view.restarts;
    if (instance->retiring) continue;
    const Phase p = instance->view.status;
    if (p == Phase::kRunning) ++view.running;
    all_running &= p == Phase::kRunning;
    any_starting |= p == Phase::kStarting;
    any_backoff |= p == Phase::kBackoff;
    any_error |= p == Phase::kError;
    all_stopped &= p == Phase::kStopped;
    if (view.error.empty() && !instance->view.error.empty()) view.error = instance->view.error;
  }
  if (service.phase == Phase::kBuilding || service.phase == Phase::kError ||
      service.phase == Phase::kStopping) {
    view.status = service.phase;
  } else if (all_running) {
    view.status = Phase::kRunning;
  } else if (any_error) {
    view.status = Phase::kError;
  } else if (any_backoff) {
    view.status = Phase::kBackoff;
  } else if (any_starting) {
    view.status = Phase::kStarting;
  } else if (all_stopped) {
    view.status = Phase::kStopped;
  } else {
    view.status = Phase::kPending;
  }
  return view;
}

}  // namespace micro::runtime
