// The Supervisor's side of a daemon restart: the desired state loaded, the instances an earlier
// daemon left running adopted (or removed), the services started; and a shutdown that leaves
// the instances running for the next daemon (runtime.keep_services).
#include <fmt/format.h>
#include <signal.h>

#include <boost/asio/post.hpp>
#include <map>
#include <set>

#include "runtime/supervisor.h"
#include "runtime/supervisor_state.h"

namespace micro::runtime {

namespace asio = boost::asio;

namespace {

// A label an earlier daemon kept with an instance (Supervisor::StartInstance sets them), or "".
std::string Label(const Recovered& r, const char* key) {
  auto it = r.labels.find(key);
  return it == r.labels.end() ? std::string() : it->second;
}

}  // namespace

void Supervisor::Restore(std::function<void(Status)> done) {
  // Set at once: a call queued behind the restore must not see an empty runtime.
  restoring_ = true;
  state_writer_.Submit([this, done = std::move(done)]() mutable {
    asio::post(io_, [this, deployed = state_.LoadAll(), done = std::move(done)]() mutable {
      if (!deployed.ok()) {
        restoring_ = false;
        return done(deployed.status());
      }
      StartRestored(std::move(*deployed), std::move(done));
    });
  });
}

void Supervisor::StartRestored(std::vector<DeployedService> deployed,
                               std::function<void(Status)> done) {
  processes_.Recover([this, deployed = std::move(deployed),
                      done = std::move(done)](std::vector<Recovered> recovered) mutable {
    if (!containers_)
      return AdoptRecovered(std::move(deployed), std::move(recovered), std::move(done));
    containers_->Recover([this, deployed = std::move(deployed), recovered = std::move(recovered),
                          done = std::move(done)](std::vector<Recovered> more) mutable {
      for (Recovered& r : more) recovered.push_back(std::move(r));
      AdoptRecovered(std::move(deployed), std::move(recovered), std::move(done));
    });
  });
}

void Supervisor::AdoptRecovered(std::vector<DeployedService> deployed,
                                std::vector<Recovered> recovered,
                                std::function<void(Status)> done) {
  // An instance is adopted when its service is deployed and it runs the current options, or
  // the previous ones while an update is under way; a number is taken once.
  std::map<Key, std::vector<Recovered>> adopted;
  std::set<std::string> keep, keep_containers;
  std::set<std::pair<std::string, int>> numbers;
  for (Recovered& r : recovered) {
    const std::string service = Label(r, "service");
    const int64_t revision = std::atoll(Label(r, "revision").c_str());
    const int number = std::atoi(Label(r, "number").c_str());
    for (const DeployedService& d : deployed) {
      const ServiceSpec& spec = d.spec;
      if (service != fmt::format("{}/{}/{}", spec.ns, spec.name, spec.version)) continue;
      const bool current = revision == d.revision;
      const bool previous = d.rollout.active() && d.previous && revision == d.previous_revision;
      const bool container = spec.driver == DriverKind::kContainer;
      if ((current || previous) && r.container == container &&
          r.instance_id == DriverId(spec, std::to_string(number)) &&
          numbers.insert({service, number}).second) {
        (container ? keep_containers : keep).insert(r.instance_id);
        adopted[{spec.ns, spec.name, spec.version}].push_back(std::move(r));
      }
      break;
    }
  }
  auto start = [this, deployed = std::move(deployed), adopted = std::move(adopted),
                done = std::move(done)]() mutable {
    restoring_ = false;
    for (DeployedService& d : deployed) {
      const Key key{d.spec.ns, d.spec.name, d.spec.version};
      auto it = adopted.find(key);
      AddService(std::move(d),
                 it == adopted.end() ? std::vector<Recovered>{} : std::move(it->second));
    }
    done(absl::OkStatus());
  };
  processes_.RemoveLeftovers(keep, [this, keep_containers = std::move(keep_containers),
                                    start = std::move(start)]() mutable {
    if (!containers_) return start();
    containers_->RemoveLeftovers(keep_containers, std::move(start));
  });
}

void Supervisor::AddService(DeployedService deployed, std::vector<Recovered> adopted) {
  auto service = std::make_shared<Service>();
  service->deployed = std::move(deployed);
  service->logs = LogsFor(service->spec());
  services_[{service->spec().ns, service->spec().name, service->spec().version}] = service;
  const Rollout& rollout = service->deployed.rollout;
  // An update under way when the last daemon stopped goes on, with its health gates, and goes
  // back if it still fails.
  auto resume = [this, &service, &rollout](int max_parallel) {
    const DeployedService& d = service->deployed;
    const bool back = rollout.state == RolloutState::kRollingBack;
    std::shared_ptr<const ServiceSpec> revert;
    if (!back && d.spec.update.auto_revert && d.previous) {
      revert = std::make_shared<const ServiceSpec>(*d.previous);
    }
    StartRollout(service, max_parallel, back, std::move(revert), d.previous_revision);
  };
  if (!adopted.empty()) {
    ++service->generation;
    for (const Recovered& r : adopted) {
      const int64_t revision = std::atoll(Label(r, "revision").c_str());
      const DeployedService& d = service->deployed;
      auto spec =
          std::make_shared<const ServiceSpec>(revision == d.revision ? d.spec : *d.previous);
      const int number = std::atoi(Label(r, "number").c_str());
      auto instance = std::make_shared<Instance>(timers_, spec, revision, number, seed_++);
      instance->id = fmt::format("{}-{}", spec->name, number);
      instance->driver_id = r.instance_id;
      instance->view.id = instance->id;
      instance->view.address = Label(r, "address");
      instance->view.revision = revision;
      instance->view.restarts = std::atoi(Label(r, "restarts").c_str());
      instance->driver = DriverFor(*spec);
      instance->adopted_started_unix_ms =
          std::max<int64_t>(1, std::atoll(Label(r, "started_unix_ms").c_str()));
      service->instances.push_back(instance);
      Adopt(service, instance);
    }
    if (rollout.active()) return resume(std::max(1, service->spec().update.max_parallel));
    // As many as the options ask: the missing ones start, extra ones (a rollout's) stop.
    int on_current = 0;
    for (const auto& instance : service->instances) on_current += !instance->retiring;
    const auto instances = service->instances;  // a retired one may leave the list at once
    for (auto it = instances.rbegin();
         on_current > service->spec().instances && it != instances.rend(); ++it) {
      Retire(service, *it);
      --on_current;
    }
    while (on_current < service->spec().instances) {
      auto instance = NewInstance(service);
      service->instances.push_back(instance);
      StartInstance(service, instance);
      ++on_current;
    }
    return;
  }
  if (!rollout.active()) return Launch(service);
  // Nothing of it runs any more: every instance of the update starts at once.
  Note(service, "", fmt::format("resuming the update to revision {}", service->deployed.revision));
  resume(service->spec().instances);
}

void Supervisor::LeaveRunning(std::function<void()> done) {
  asio::post(io_, [this, done = std::move(done)]() mutable {
    stopping_all_ = true;
    for (auto& [key, service] : services_) {
      ++service->generation;
      service->rolling.reset();
      if (service->building) processes_.Signal(service->build_id, SIGKILL);
      for (const auto& instance : service->instances) {
        instance->probe_timer->Cancel();
        instance->timer->Cancel();
        instance->gate_timer->Cancel();
        instance->deadline_timer->Cancel();
      }
      Note(service, "", "the daemon stops and leaves the instances running (keep_services)");
      service->logs->CloseFollowers(absl::UnavailableError("the daemon is shutting down"));
    }
    done();
  });
}

void Supervisor::Adopt(const std::shared_ptr<Service>& service,
                       const std::shared_ptr<Instance>& instance) {
  const uint64_t run = ++instance->run;
  instance->view.status = Phase::kStarting;
  instance->launching = true;
  // Where its log stops, for the container engine's log, which cannot tell where the earlier
  // daemon stopped reading (a process's spool can: no log read for it).
  int64_t since = 0;
  if (instance->spec->driver == DriverKind::kContainer) {
    if (auto last = service->logs->Read({instance->id, 0, 1}); last.ok() && !last->empty()) {
      since = last->back().unix_ms + 1;
    }
  }
  instance->driver->Attach(instance->driver_id, since, Callbacks(service, instance, run));
}

}  // namespace micro::runtime
