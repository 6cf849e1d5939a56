#pragma once

#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "runtime/engine.h"

namespace micro::runtime {

// An engine that runs nothing: it keeps the deployed specs in a map and answers at once, on the
// calling thread, with the errors the Engine contract names. Tests switch it to `restoring`
// (every call UNAVAILABLE) or make the next call fail with a status of their choice.
// Thread-safe.
class FakeEngine final : public Engine {
 public:
  void Create(ServiceSpec spec, std::function<void(Result<ServiceView>)> done) override {
    Result<ServiceView> out = [&]() -> Result<ServiceView> {
      std::lock_guard lock(mu_);
      calls_.push_back("create " + spec.ns + "/" + spec.name);
      if (Status s = Refusal(); !s.ok()) return s;
      const Key key{spec.ns, spec.name, spec.version};
      if (services_.count(key)) return absl::AlreadyExistsError("already deployed");
      services_[key] = spec;
      return ViewOf(spec);
    }();
    done(std::move(out));
  }

  void Update(const std::string& ns, const std::string& name, const std::string& version,
              std::optional<ServiceSpec> spec,
              std::function<void(Result<ServiceView>)> done) override {
    Result<ServiceView> out = [&]() -> Result<ServiceView> {
      std::lock_guard lock(mu_);
      calls_.push_back("update " + ns + "/" + name);
      if (Status s = Refusal(); !s.ok()) return s;
      auto it = services_.find({ns, name, version});
      if (it == services_.end()) return absl::NotFoundError("not deployed");
      if (spec) it->second = *spec;
      return ViewOf(it->second);
    }();
    done(std::move(out));
  }

  void Rollback(const std::string& ns, const std::string& name, const std::string& version,
                std::function<void(Result<ServiceView>)> done) override {
    Result<ServiceView> out = [&]() -> Result<ServiceView> {
      std::lock_guard lock(mu_);
      calls_.push_back("rollback " + ns + "/" + name);
      if (Status s = Refusal(); !s.ok()) return s;
      auto it = services_.find({ns, name, version});
      if (it == services_.end()) return absl::NotFoundError("not deployed");
      return absl::FailedPreconditionError("no earlier options");
    }();
    done(std::move(out));
  }

  void Delete(const std::string& ns, const std::string& name, const std::string& version,
              std::function<void(Status)> done) override {
    Status out = [&]() -> Status {
      std::lock_guard lock(mu_);
      calls_.push_back("delete " + ns + "/" + name);
      if (Status s = Refusal(); !s.ok()) return s;
      size_t erased = 0;
      for (auto it = services_.begin(); it != services_.end();) {
        const auto& [key_ns, key_name, key_version] = it->first;
        const bool match =
            key_ns == ns && key_name == name && (version.empty() || key_version == version);
        it = match ? (++erased, services_.erase(it)) : std::next(it);
      }
      return erased ? absl::OkStatus() : absl::NotFoundError("not deployed");
    }();
    done(out);
  }

  void Read(const std::string& ns, const std::string& name, const std::string& version,
            std::function<void(Result<std::vector<ServiceView>>)> done) override {
    Result<std::vector<ServiceView>> out = [&]() -> Result<std::vector<ServiceView>> {
      std::lock_guard lock(mu_);
      calls_.push_back("read " + ns + "/" + name);
      if (Status s = Refusal(); !s.ok()) return s;
      std::vector<ServiceView> views;
      for (const auto& [key, spec] : services_) {
        if (std::get<0>(key) != ns || (!name.empty() && std::get<1>(key) != name)) continue;
        if (!version.empty() && std::get<2>(key) != version) continue;
        views.push_back(ViewOf(spec));
      }
      if (views.empty() && !name.empty()) return absl::NotFoundError("not deployed");
      return views;
    }();
    done(std::move(out));
  }

  Result<std::vector<std::shared_ptr<ServiceLogs>>> Logs(const std::string& ns,
                                                         const std::string& name,
                                                         const std::string&) override {
    std::lock_guard lock(mu_);
    calls_.push_back("logs " + ns + "/" + name);
    if (Status s = Refusal(); !s.ok()) return s;
    if (!logs_.empty()) return logs_;
    return absl::NotFoundError("no logs");
  }

  void set_restoring(bool restoring) {
    std::lock_guard lock(mu_);
    restoring_ = restoring;
  }
  // The next call (any method) answers `status` and changes nothing.
  void FailNext(Status status) {
    std::lock_guard lock(mu_);
    fail_next_ = std::move(status);
  }
  // Every call that reached the engine: "create NS/NAME", "read NS/NAME", ...
  // The log files Logs answers with (none: NOT_FOUND).
  void set_logs(std::vector<std::shared_ptr<ServiceLogs>> logs) {
    std::lock_guard lock(mu_);
    logs_ = std::move(logs);
  }

  std::vector<std::string> calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }

 private:
  using Key = std::tuple<std::string, std::string, std::string>;

  Status Refusal() {
    if (restoring_) return absl::UnavailableError("restoring the deployed services; retry");
    Status s = std::move(fail_next_);
    fail_next_ = absl::OkStatus();
    return s;
  }
  static ServiceView ViewOf(const ServiceSpec& spec) {
    ServiceView view;
    view.spec = spec;
    view.status = Phase::kRunning;
    view.desired = view.running = spec.instances;
    return view;
  }

  std::mutex mu_;
  std::map<Key, ServiceSpec> services_;
  std::vector<std::string> calls_;
  std::vector<std::shared_ptr<ServiceLogs>> logs_;
  bool restoring_ = false;
  Status fail_next_ = absl::OkStatus();
};

}  // namespace micro::runtime
