// Rolling updates: the Supervisor replaces a service's instances a few at a time, each new one
// gated by its health, and goes back to the earlier options when a new one does not hold.
//
// A rollout's target is the service's current options and revision. Instances on another
// revision are old: they keep running (by their own options) until enough new ones count, then
// they retire. A new instance counts once it has been running, and passing its health check,
// for `min_healthy_time`; then one old instance is stopped. So at any moment at least as many
// instances run healthy as before, minus none: new ones are started beside the old ones, at most
// `max_parallel` not yet counted at a time. A new instance that exits before it counts, or is
// not counted within `healthy_deadline`, fails the rollout; with a revert target the service
// then goes back to those options, the same way (a rollout with `back` set).
#include <fmt/format.h>
#include <signal.h>

#include <boost/asio/post.hpp>

#include "runtime/supervisor.h"
#include "runtime/supervisor_state.h"

namespace micro::runtime {

namespace asio = boost::asio;

namespace {

std::string Seconds(std::chrono::milliseconds duration) {
  return fmt::format("{:g} s", static_cast<double>(duration.count()) / 1000.0);
}

}  // namespace

const char* RolloutStateName(RolloutState state) {
  switch (state) {
    case RolloutState::kNone:
      return "none";
    case RolloutState::kRunning:
      return "running";
    case RolloutState::kRollingBack:
      return "rolling back";
    case RolloutState::kSucceeded:
      return "succeeded";
    case RolloutState::kRolledBack:
      return "rolled back";
    case RolloutState::kFailed:
      return "failed";
  }
  return "unknown";
}

void Supervisor::StartRollout(const std::shared_ptr<Service>& service, int max_parallel, bool back,
                              std::shared_ptr<const ServiceSpec> revert_spec,
                              int64_t revert_revision) {
  if (service->removed || stopping_all_) return;
  // An earlier rollout's build and timers are stale now.
  ++service->generation;
  if (service->building) {
    processes_.Signal(service->build_id, SIGKILL);
    service->building = false;
  }
  service->phase = Phase::kPending;
  service->error.clear();
  service->rolling = RolloutRun{++rollouts_, std::max(1, max_parallel), back,
                                std::move(revert_spec), revert_revision};
  const int64_t revision = service->deployed.revision;
  int replacing = 0;
  for (const auto& instance : service->instances) {
    instance->gate_timer->Cancel();
    instance->deadline_timer->Cancel();
    // On the target's revision already (the old ones of a rollback): they count as they are.
    instance->counted = instance->revision == revision;
    replacing += !instance->retiring && !instance->counted;
  }
  Note(service, "",
       fmt::format("{} to revision {}: replacing {} instance(s), {} at a time",
                   back ? "going back" : "update", revision, replacing,
                   service->rolling->max_parallel));
  const ServiceSpec& spec = service->spec();
  if (spec.build.empty()) return Pump(service);
  const uint64_t id = service->rolling->id;
  Build(
      service,
      [this, service, id] {
        if (service->rolling && service->rolling->id == id) Pump(service);
      },
      [this, service, id](std::string reason) {
        service->phase = Phase::kPending;  // the old instances still run
        if (service->rolling && service->rolling->id == id) RolloutFailed(service, reason);
      });
}

void Supervisor::Pump(const std::shared_ptr<Service>& service) {
  if (!service->rolling || service->removed || stopping_all_ || service->building) return;
  const RolloutRun& rollout = *service->rolling;
  const int64_t revision = service->deployed.revision;
  const int wanted = service->spec().instances;
  int on_target = 0, gating = 0, retiring = 0;
  for (const auto& instance : service->instances) {
    if (instance->retiring) {
      ++retiring;
    } else if (instance->revision == revision) {
      ++on_target;
      gating += !instance->counted;
    }
  }
  while (on_target < wanted && gating < rollout.max_parallel) {
    auto instance = NewInstance(service);
    instance->counted = false;
    service->instances.push_back(instance);
    ++on_target;
    ++gating;
    const uint64_t id = rollout.id;
    const std::chrono::milliseconds deadline = service->spec().update.healthy_deadline;
    instance->deadline_timer->Start(deadline, [this, service, instance, id, deadline] {
      if (!service->rolling || service->rolling->id != id || instance->counted) return;
      RolloutFailed(service, fmt::format("{} was not healthy within the healthy deadline ({})",
                                         instance->id, Seconds(deadline)));
    });
    Note(service, instance->id, fmt::format("new instance of revision {}", revision));
    StartInstance(service, instance);
    if (!service->rolling || service->rolling->id != id) return;  // it failed at once
  }
  if (gating > 0) return;
  // Every instance of the target counts: whatever else remains goes, the highest numbers first
  // when there are more of the target than wanted. A copy: a retired instance that is not
  // running leaves the list (and pumps again) at once.
  int extra = on_target - wanted;
  const uint64_t id = rollout.id;
  const auto instances = service->instances;
  for (auto it = instances.rbegin(); it != instances.rend(); ++it) {
    const auto& instance = *it;
    if (instance->retiring) continue;
    if (instance->revision != revision || extra-- > 0) {
      Retire(service, instance);
      ++retiring;
      if (!service->rolling || service->rolling->id != id) return;  // finished meanwhile
    }
  }
  if (retiring == 0) FinishRollout(service);
}

void Supervisor::OnHealthy(const std::shared_ptr<Service>& service,
                           const std::shared_ptr<Instance>& instance) {
  if (!service->rolling || instance->counted || instance->retiring) return;
  const uint64_t id = service->rolling->id, run = instance->run;
  const std::chrono::milliseconds min = instance->spec->update.min_healthy_time;
  instance->gate_timer->Start(min, [this, service, instance, id, run, min] {
    if (!service->rolling || service->rolling->id != id || instance->run != run ||
        instance->view.status != Phase::kRunning || instance->counted) {
      return;
    }
    instance->counted = true;
    instance->deadline_timer->Cancel();
    Note(service, instance->id, fmt::format("healthy for {}: counts", Seconds(min)));
    // One old instance goes for each new one that counts: one not running first.
    std::shared_ptr<Instance> old;
    for (const auto& candidate : service->instances) {
      if (candidate->retiring || candidate->revision == service->deployed.revision) continue;
      if (!old ||
          (old->view.status == Phase::kRunning && candidate->view.status != Phase::kRunning)) {
        old = candidate;
      }
    }
    if (old) Retire(service, old);
    Pump(service);
  });
}

void Supervisor::OnFailedRun(const std::shared_ptr<Service>& service,
                             const std::shared_ptr<Instance>& instance, const std::string& why) {
  if (!service->rolling || instance->counted || instance->retiring) return;
  RolloutFailed(service, fmt::format("{} {} before it was healthy for {}", instance->id, why,
                                     Seconds(instance->spec->update.min_healthy_time)));
}

void Supervisor::RolloutFailed(const std::shared_ptr<Service>& service, const std::string& reason) {
  RolloutRun failed = std::move(*service->rolling);
  service->rolling.reset();
  DeployedService& deployed = service->deployed;
  const int64_t failed_revision = deployed.revision;
  for (const auto& instance : service->instances) {
    instance->gate_timer->Cancel();
    instance->deadline_timer->Cancel();
  }
  if (!failed.revert_spec) {
    Note(service, "",
         fmt::format("{} to revision {} failed: {}", failed.back ? "going back" : "update",
                     failed_revision, reason));
    const std::string prefix = failed.back &&
                                       deployed.rollout.state == RolloutState::kRollingBack &&
                                       !deployed.rollout.reason.empty()
                                   ? deployed.rollout.reason + "; then going back failed: "
                                   : "";
    deployed.rollout.state = RolloutState::kFailed;
    deployed.rollout.reason = prefix + reason;
    deployed.rollout.finished_unix_ms = clock_.UnixMillis();
    return SaveDeployed(service);
  }
  Note(service, "",
       fmt::format("update to revision {} failed: {}; going back to revision {}", failed_revision,
                   reason, failed.revert_revision));
  // The previous options become current again, and the failed ones what a rollback would
  // restore; the state on disk follows in the order of these decisions.
  ServiceSpec failed_spec = std::move(deployed.spec);
  deployed.spec = *failed.revert_spec;
  deployed.revision = failed.revert_revision;
  deployed.previous = std::move(failed_spec);
  deployed.previous_revision = failed_revision;
  deployed.updated_unix_ms = clock_.UnixMillis();
  deployed.rollout = {RolloutState::kRollingBack,
                      fmt::format("revision {} failed: {}", failed_revision, reason),
                      deployed.revision, deployed.updated_unix_ms, 0};
  service->logs = LogsFor(service->spec());
  SaveDeployed(service);
  // New instances that never counted serve nobody: they go now. Those that count serve until
  // enough old ones run again.
  const auto instances = service->instances;
  for (const auto& instance : instances) {
    if (instance->revision == failed_revision && !instance->counted && !instance->retiring) {
      Retire(service, instance);
    }
  }
  // Everything already on the old revision stays; the rest is replaced, all at once.
  StartRollout(service, std::max(1, service->spec().instances), true, nullptr, 0);
}

void Supervisor::FinishRollout(const std::shared_ptr<Service>& service) {
  if (!service->rolling) return;
  const bool back = service->rolling->back;
  service->rolling.reset();
  Rollout& rollout = service->deployed.rollout;
  rollout.state = back ? RolloutState::kRolledBack : RolloutState::kSucceeded;
  rollout.finished_unix_ms = clock_.UnixMillis();
  Note(service, "",
       fmt::format("{} to revision {} done", back ? "going back" : "update",
                   service->deployed.revision));
  SaveDeployed(service);
}

void Supervisor::Retire(const std::shared_ptr<Service>& service,
                        const std::shared_ptr<Instance>& instance) {
  instance->retiring = true;
  instance->gate_timer->Cancel();
  instance->deadline_timer->Cancel();
  // Weak: the waiter is kept by the instance itself until it stops.
  StopInstance(service, instance,
               [this, weak_service = std::weak_ptr<Service>(service),
                weak_instance = std::weak_ptr<Instance>(instance)] {
                 auto service = weak_service.lock();
                 auto instance = weak_instance.lock();
                 if (!service || !instance) return;
                 auto& instances = service->instances;
                 instances.erase(std::remove(instances.begin(), instances.end(), instance),
                                 instances.end());
                 Pump(service);
               });
}

// ---- Update and Rollback: the new options made durable, then a rollout ----

Result<std::shared_ptr<Supervisor::Service>> Supervisor::Updatable(const std::string& ns,
                                                                   const std::string& name,
                                                                   const std::string& version) {
  if (stopping_all_) return absl::UnavailableError("the daemon is shutting down");
  if (restoring_) return RestoringError();
  auto it = services_.find({ns, name, version});
  if (it == services_.end() || it->second->removing || it->second->removed) {
    // A service being removed is gone for good: saving a new spec now would bring it back at
    // the next start.
    return absl::NotFoundError(
        fmt::format("service {} version {} is not deployed; see 'micro status'", name, version));
  }
  return it->second;
}

void Supervisor::Update(const std::string& ns, const std::string& name, const std::string& version,
                        std::optional<ServiceSpec> spec,
                        std::function<void(Result<ServiceView>)> done) {
  asio::post(
      io_, [this, ns, name, version, spec = std::move(spec), done = std::move(done)]() mutable {
        auto found = Updatable(ns, name, version);
        if (!found.ok()) return done(found.status());
        std::shared_ptr<Service> service = *found;
        if (spec) {
          if (spec->driver == DriverKind::kContainer && containers_ == nullptr) {
            return done(absl::FailedPreconditionError("the container driver is not available: " +
                                                      containers_error_));
          }
          if (auto secrets = ResolveSecrets(*spec); !secrets.ok()) return done(secrets.status());
          if (options_.fd_budget) {
            const uint64_t deployed = DeployedInstances();
            const uint64_t wanted = deployed - static_cast<uint64_t>(service->spec().instances) +
                                    static_cast<uint64_t>(spec->instances);
            if (Status s = CheckInstanceBudget(*options_.fd_budget, deployed, wanted); !s.ok()) {
              return done(s);
            }
          }
        }
        const DeployedService& now = service->deployed;
        // What ran before: what a failure goes back to. During an update, what ran before that one.
        const bool mid_update = now.rollout.state == RolloutState::kRunning && now.previous;
        auto before = std::make_shared<const ServiceSpec>(mid_update ? *now.previous : now.spec);
        const int64_t before_revision = mid_update ? now.previous_revision : now.revision;
        auto updated = std::make_shared<DeployedService>(now);
        updated->updated_unix_ms = clock_.UnixMillis();
        updated->revision = std::max(now.revision, now.previous_revision) + 1;
        if (spec) {
          updated->spec = std::move(*spec);
          updated->previous = *before;
          updated->previous_revision = before_revision;
        }
        const bool rolling = updated->spec.update.max_parallel > 0;
        updated->rollout = {};
        if (rolling) {
          updated->rollout = {RolloutState::kRunning, "", updated->revision,
                              updated->updated_unix_ms, 0};
        }
        const bool revert = updated->spec.update.auto_revert;
        ApplyUpdate(service, std::move(updated), false, revert ? before : nullptr, before_revision,
                    std::move(done));
      });
}

void Supervisor::ApplyUpdate(const std::shared_ptr<Service>& service,
                             std::shared_ptr<DeployedService> updated, bool back,
                             std::shared_ptr<const ServiceSpec> revert_spec,
                             int64_t revert_revision,
                             std::function<void(Result<ServiceView>)> done) {
  Persist([this, updated] { return state_.Save(*updated); },
          [this, service, updated, back, revert_spec, revert_revision,
           done = std::move(done)](Status status) mutable {
            if (!status.ok()) return done(status);
            // A Delete decided meanwhile wrote its removal after this save: it wins.
            if (service->removing || service->removed) {
              return done(absl::NotFoundError("the service was removed"));
            }
            service->deployed = std::move(*updated);
            service->logs = LogsFor(service->spec());
            const int max_parallel = service->spec().update.max_parallel;
            if (max_parallel == 0) return Restart(service, std::move(done));
            StartRollout(service, max_parallel, back, std::move(revert_spec), revert_revision);
            done(View(*service));
          });
}

void Supervisor::Rollback(const std::string& ns, const std::string& name,
                          const std::string& version,
                          std::function<void(Result<ServiceView>)> done) {
  asio::post(io_, [this, ns, name, version, done = std::move(done)]() mutable {
    auto found = Updatable(ns, name, version);
    if (!found.ok()) return done(found.status());
    std::shared_ptr<Service> service = *found;
    const DeployedService& now = service->deployed;
    if (!now.previous) {
      return done(absl::FailedPreconditionError(fmt::format(
          "service {} has no earlier options to go back to: it was not updated since its deploy",
          name)));
    }
    if (now.previous->driver == DriverKind::kContainer && containers_ == nullptr) {
      return done(absl::FailedPreconditionError("the container driver is not available: " +
                                                containers_error_));
    }
    if (auto secrets = ResolveSecrets(*now.previous); !secrets.ok()) {
      return done(secrets.status());
    }
    auto updated = std::make_shared<DeployedService>(now);
    updated->spec = *now.previous;
    updated->revision = now.previous_revision;
    updated->previous = now.spec;
    updated->previous_revision = now.revision;
    updated->updated_unix_ms = clock_.UnixMillis();
    const bool rolling = updated->spec.update.max_parallel > 0;
    updated->rollout = {rolling ? RolloutState::kRollingBack : RolloutState::kRolledBack,
                        fmt::format("rolled back by hand from revision {}", now.revision),
                        updated->revision, updated->updated_unix_ms,
                        rolling ? 0 : updated->updated_unix_ms};
    ApplyUpdate(service, std::move(updated), true, nullptr, 0, std::move(done));
  });
}

}  // namespace micro::runtime
