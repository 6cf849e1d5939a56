#pragma once

// The supervisor on a fake clock, fake timers and a fake driver, run by the test on its own
// thread: shared by the supervisor's unit tests.

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/fake_clock.h"
#include "runtime/memory_desired_state.h"
#include "runtime/supervisor.h"
#include "tests/runtime/fake_driver.h"
#include "tests/runtime/fake_timers.h"
#include "tests/support/temp_dir.h"

namespace micro::runtime {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

// A desired state that logs every write and can hold writes until the test releases them.
class GatedState final : public DesiredState {
 public:
  Status Save(const DeployedService& service) override {
    Gate("save " + service.spec.name + " " + service.spec.command);
    return inner_.Save(service);
  }
  Status Remove(const std::string& ns, const std::string& name,
                const std::string& version) override {
    Gate("remove " + name);
    return inner_.Remove(ns, name, version);
  }
  Result<std::vector<DeployedService>> LoadAll() override {
    Gate("load");
    return inner_.LoadAll();
  }

  // From now on every write waits in the writer until Release.
  void Hold() {
    std::lock_guard lock(mu_);
    held_ = true;
  }
  void Release() {
    {
      std::lock_guard lock(mu_);
      held_ = false;
    }
    cv_.notify_all();
  }
  // True once `n` writes have begun (held or not).
  bool Began(size_t n) {
    std::lock_guard lock(mu_);
    return log_.size() >= n;
  }
  std::vector<std::string> log() {
    std::lock_guard lock(mu_);
    return log_;
  }
  std::vector<DeployedService> durable() {
    auto all = inner_.LoadAll();
    return all.ok() ? *all : std::vector<DeployedService>{};
  }

 private:
  void Gate(std::string what) {
    std::unique_lock lock(mu_);
    log_.push_back(std::move(what));
    cv_.wait(lock, [&] { return !held_; });
  }

  MemoryDesiredState inner_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false;
  std::vector<std::string> log_;
};

// A supervisor whose io_context the test runs itself, on its own thread.
struct Harness {
  Harness()
      : supervisor(io, clock, timers, state, driver, nullptr, "no container engine in this test",
                   Options()) {}
  ~Harness() {
    // Writes still queued land before the io_context goes.
    state.Release();
  }

  SupervisorOptions Options() {
    SupervisorOptions options;
    options.logs_dir = logs.path();
    options.base_env = {{"PATH", "/usr/bin:/bin"}};
    options.seed = 7;
    options.resolve_secret = [this](const std::string& ns,
                                    const std::string& path) -> Result<std::string> {
      auto it = secrets.find(ns + "/" + path);
      if (it == secrets.end()) return absl::NotFoundError("no value at " + path);
      return it->second;
    };
    return options;
  }

  // Runs what is ready on the io thread (this one).
  void Settle() {
    io.restart();
    io.poll();
  }
  // Runs the io_context until `ready`, or fails after a few seconds.
  template <typename Predicate>
  bool RunUntil(Predicate ready) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!ready()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      io.restart();
      io.run_one_for(10ms);
    }
    return true;
  }
  void Advance(milliseconds d) {
    timers.Advance(d, [this] { Settle(); });
  }

  Result<ServiceView> Create(ServiceSpec spec) {
    std::optional<Result<ServiceView>> out;
    supervisor.Create(std::move(spec), [&](Result<ServiceView> v) { out = std::move(v); });
    REQUIRE(RunUntil([&] { return out.has_value(); }));
    return *out;
  }
  ServiceView Read(const std::string& name) {
    std::optional<Result<std::vector<ServiceView>>> out;
    supervisor.Read("micro", name, "", [&](auto v) { out = std::move(v); });
    Settle();
    REQUIRE(out.has_value());
    REQUIRE(out->ok());
    return out->value().front();
  }
  InstanceView Instance(const std::string& name) { return Read(name).instances.at(0); }

  // The io_context goes before the timers: handlers it destroys may hold the last reference to
  // an instance and its timers.
  std::map<std::string, std::string> secrets;  // "ns/path" -> value, for env_secrets
  micro::testing::TempDir logs;
  FakeClock clock;
  FakeTimers timers{clock};
  GatedState state;
  boost::asio::io_context io;
  FakeDriver driver{io};
  Supervisor supervisor;
};

inline ServiceSpec Spec(const std::string& name) {
  ServiceSpec spec;
  spec.ns = "micro";
  spec.name = name;
  spec.command = "/srv/" + name;
  spec.grace = 5s;
  spec.backoff.initial = 100ms;
  spec.backoff.multiplier = 2;
  spec.backoff.max = 10s;
  spec.backoff.reset_after = 1s;
  spec.backoff.jitter = 0;
  return spec;
}

inline std::string Id(const std::string& name) { return "micro." + name + ".latest.0"; }

}  // namespace micro::runtime
