// The supervisor on a fake clock and a fake driver: exact backoff delays, health checks, grace
// periods, and the order and durability of desired-state writes, without processes or sleeps.
#include "runtime/supervisor.h"

#include <signal.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "tests/runtime/supervisor_harness.h"
#include "tests/support/temp_dir.h"

namespace micro::runtime {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using Signalled = FakeDriver::Signalled;
using Catch::Matchers::Contains;
using micro::testing::TempDir;

TEST_CASE("a crash-looping instance waits exactly the backoff delays", "[supervisor][clock]") {
  Harness h;
  REQUIRE(h.Create(Spec("crasher")).ok());
  const std::string id = Id("crasher");
  REQUIRE(h.driver.Starts(id) == 1);
  for (int64_t delay : {100, 200, 400, 800}) {
    INFO("delay " << delay);
    const size_t starts = h.driver.Starts(id);
    h.driver.Launch(id);
    h.driver.End(id, 3);
    h.Settle();
    REQUIRE(h.Instance("crasher").status == Phase::kBackoff);
    CHECK(h.Instance("crasher").next_start_unix_ms == h.clock.UnixMillis() + delay);
    h.Advance(milliseconds(delay - 1));
    CHECK(h.driver.Starts(id) == starts);  // not a millisecond early
    h.Advance(1ms);
    CHECK(h.driver.Starts(id) == starts + 1);
  }
  CHECK(h.Instance("crasher").restarts == 4);
  CHECK(h.Instance("crasher").last_exit_code == 3);
}

TEST_CASE("the summary counts services and instances by status, with restarts",
          "[supervisor][clock]") {
  Harness h;
  ServiceSpec two = Spec("two");
  two.instances = 2;
  two.backoff.initial = 60s;
  REQUIRE(h.Create(two).ok());
  REQUIRE(h.Create(Spec("one")).ok());
  h.driver.Launch(Id("one"));
  h.driver.Launch("micro.two.latest.0");
  h.driver.Launch("micro.two.latest.1");
  h.driver.End("micro.two.latest.1", 1);
  h.Settle();
  const RuntimeSummary summary = h.supervisor.Summary();
  REQUIRE(summary.services.size() == 2);
  CHECK(summary.services[0].name == "one");
  CHECK(summary.services[0].status == Phase::kRunning);
  CHECK(summary.services[0].running == 1);
  CHECK(summary.services[1].name == "two");
  CHECK(summary.services[1].status == Phase::kBackoff);
  CHECK(summary.services[1].running == 1);
  CHECK(summary.services[1].desired == 2);
  CHECK(summary.services[1].restarts == 1);
  CHECK(summary.instances == std::map<Phase, int>{{Phase::kRunning, 2}, {Phase::kBackoff, 1}});
}

TEST_CASE("a run as long as reset_after starts the backoff over", "[supervisor][clock]") {
  Harness h;
  REQUIRE(h.Create(Spec("resets")).ok());
  const std::string id = Id("resets");
  auto crash_after = [&](milliseconds run) {
    h.driver.Launch(id);
    h.Settle();
    h.Advance(run);
    h.driver.End(id, 1);
    h.Settle();
    return h.Instance("resets").next_start_unix_ms - h.clock.UnixMillis();
  };
  CHECK(crash_after(0ms) == 100);
  h.Advance(100ms);
  CHECK(crash_after(999ms) == 200);  // just short of reset_after: still growing
  h.Advance(200ms);
  CHECK(crash_after(1000ms) == 100);  // healthy: back to the initial delay
  h.Advance(100ms);
  CHECK(crash_after(0ms) == 200);
}

TEST_CASE("backoff shows in the status, and an update skips the wait", "[supervisor][clock]") {
  Harness h;
  ServiceSpec spec = Spec("slow");
  spec.backoff.initial = 60s;
  spec.update.max_parallel = 0;  // every instance at once (rolling_test.cc has the other way)
  REQUIRE(h.Create(spec).ok());
  const std::string id = Id("slow");
  h.driver.Launch(id);
  h.driver.End(id, 1);
  h.Settle();
  const InstanceView view = h.Instance("slow");
  CHECK(view.status == Phase::kBackoff);
  CHECK(view.next_start_unix_ms == view.started_unix_ms + 60000);
  CHECK(view.restarts == 1);
  std::optional<Result<ServiceView>> updated;
  h.supervisor.Update("micro", "slow", "latest", std::nullopt,
                      [&](Result<ServiceView> v) { updated = std::move(v); });
  REQUIRE(h.RunUntil([&] { return updated.has_value(); }));  // after the revision is saved
  REQUIRE(updated->ok());
  CHECK(h.driver.Starts(id) == 2);  // at once, no time passed on the clock
  CHECK(h.timers.pending() == 0);   // the backoff wait is gone
}

TEST_CASE("env secrets are read at every start, and one that cannot be read refuses the deploy",
          "[supervisor][secrets]") {
  Harness h;
  ServiceSpec spec = Spec("db");
  spec.env_secrets = {{"DB_PASSWORD", "db.password"}};
  Result<ServiceView> refused = h.Create(spec);
  CHECK(refused.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(refused.status().message()),
             Contains("env.DB_PASSWORD") && Contains("db.password") && Contains("config set"));
  CHECK(h.state.durable().empty());

  h.secrets["micro/db.password"] = "first-value";
  REQUIRE(h.Create(spec).ok());
  const std::string id = Id("db");
  CHECK(h.driver.Request(id).env.at("DB_PASSWORD") == "first-value");
  // The desired state keeps the path only.
  const std::vector<DeployedService> durable = h.state.durable();
  REQUIRE(durable.size() == 1);
  CHECK(durable[0].spec.env_secrets.at("DB_PASSWORD") == "db.password");
  CHECK(durable[0].spec.env.count("DB_PASSWORD") == 0);

  // Changed: the next start reads the new value.
  h.secrets["micro/db.password"] = "second-value";
  h.driver.Launch(id);
  h.driver.End(id, 1);
  h.Settle();
  h.Advance(100ms);
  REQUIRE(h.driver.Starts(id) == 2);
  CHECK(h.driver.Request(id).env.at("DB_PASSWORD") == "second-value");

  // Deleted: the start fails with the reason and waits its backoff, nothing is launched.
  h.secrets.clear();
  h.driver.Launch(id);
  h.driver.End(id, 1);
  h.Settle();
  h.Advance(200ms);
  const InstanceView view = h.Instance("db");
  CHECK(view.status == Phase::kBackoff);
  CHECK_THAT(view.error, Contains("env.DB_PASSWORD") && Contains("db.password"));
  CHECK(h.driver.Starts(id) == 2);

  // An update to a spec naming a missing secret is refused and changes nothing.
  ServiceSpec other = spec;
  other.env_secrets = {{"TOKEN", "api.token"}};
  std::optional<Result<ServiceView>> updated;
  h.supervisor.Update("micro", "db", "latest", other,
                      [&](Result<ServiceView> v) { updated = std::move(v); });
  REQUIRE(h.RunUntil([&] { return updated.has_value(); }));
  CHECK(updated->status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(h.state.durable()[0].spec.env_secrets.count("TOKEN") == 0);
}

ServiceSpec Probed(const std::string& name) {
  ServiceSpec spec = Spec(name);
  spec.health.kind = HealthCheckKind::kCommand;
  spec.health.command = {"/bin/probe"};
  spec.health.interval = 1s;
  spec.health.timeout = 500ms;
  spec.health.failure_threshold = 2;
  return spec;
}

// Ends the latest health probe of `name`, the `n`th, with `code`.
void Probe(Harness& h, const std::string& name, size_t n, int code) {
  const std::string probe = Id(name) + ".health";
  REQUIRE(h.driver.Starts(probe) == n);
  h.driver.Launch(probe);
  h.driver.End(probe, code);
  h.Settle();
}

TEST_CASE("a failing health check stops the instance after the threshold, SIGKILL after grace",
          "[supervisor][clock][health]") {
  Harness h;
  REQUIRE(h.Create(Probed("sick")).ok());
  const std::string id = Id("sick"), probe = id + ".health";
  h.driver.Launch(id);
  h.Settle();
  CHECK(h.Instance("sick").status == Phase::kStarting);
  h.Advance(999ms);
  CHECK(h.driver.Starts(probe) == 0);  // the first probe comes one interval after the start
  h.Advance(1ms);
  Probe(h, "sick", 1, 1);
  CHECK(h.driver.signals().empty());  // one failure of two
  h.Advance(1s);
  Probe(h, "sick", 2, 1);
  REQUIRE(h.driver.signals() == std::vector<Signalled>{{id, SIGTERM}});
  CHECK(h.Instance("sick").status == Phase::kStopping);
  h.Advance(4999ms);
  CHECK(h.driver.signals().size() == 1);
  h.Advance(1ms);
  CHECK(h.driver.signals().back() == Signalled{id, SIGKILL});
  // The exit takes the restart path, with the backoff.
  h.driver.End(id, -1, SIGKILL);
  h.Settle();
  CHECK(h.Instance("sick").status == Phase::kBackoff);
  CHECK(h.Instance("sick").error.rfind("health check failed", 0) == 0);
  h.Advance(100ms);
  CHECK(h.driver.Starts(id) == 2);
}

TEST_CASE("health failures within the start period do not count", "[supervisor][clock][health]") {
  Harness h;
  ServiceSpec spec = Probed("warming");
  spec.health.failure_threshold = 1;
  spec.health.start_period = 3s;
  REQUIRE(h.Create(spec).ok());
  h.driver.Launch(Id("warming"));
  h.Settle();
  for (size_t n = 1; n <= 2; ++n) {
    h.Advance(1s);
    Probe(h, "warming", n, 1);
  }
  CHECK(h.driver.signals().empty());
  h.Advance(1s);  // 3 s after the start: this failure counts
  Probe(h, "warming", 3, 1);
  CHECK(h.driver.signals() == std::vector<Signalled>{{Id("warming"), SIGTERM}});
}

TEST_CASE("a probe command that outlives its timeout is killed and counts as a failure",
          "[supervisor][clock][health]") {
  Harness h;
  ServiceSpec spec = Probed("hung");
  spec.health.failure_threshold = 1;
  REQUIRE(h.Create(spec).ok());
  const std::string id = Id("hung"), probe = id + ".health";
  h.driver.Launch(id);
  h.Advance(1s);
  REQUIRE(h.driver.Starts(probe) == 1);
  h.driver.Launch(probe);
  h.Advance(499ms);
  CHECK(h.driver.signals().empty());
  h.Advance(1ms);  // the 500 ms timeout
  CHECK(h.driver.signals() ==
        std::vector<Signalled>{{probe, SIGKILL}, {id, SIGTERM}});  // the probe, then the instance
  CHECK(h.Instance("hung").error ==
        "health check failed: health check command '/bin/probe': still running after 500 ms");
  h.driver.End(probe, -1, SIGKILL);  // its late exit changes nothing
  h.Settle();
  CHECK(h.driver.signals().size() == 2);
  CHECK(h.Instance("hung").status == Phase::kStopping);
}

TEST_CASE("a passing health check makes the instance running", "[supervisor][clock][health]") {
  Harness h;
  REQUIRE(h.Create(Probed("healthy")).ok());
  h.driver.Launch(Id("healthy"));
  h.Advance(1s);
  Probe(h, "healthy", 1, 0);
  CHECK(h.Instance("healthy").status == Phase::kRunning);
  CHECK(h.timers.pending() == 1);  // the next probe
}

TEST_CASE("a stop waits exactly the grace period before SIGKILL", "[supervisor][clock]") {
  Harness h;
  REQUIRE(h.Create(Spec("stubborn")).ok());
  const std::string id = Id("stubborn");
  h.driver.Launch(id);
  h.Settle();
  std::optional<Status> deleted;
  h.supervisor.Delete("micro", "stubborn", "", [&](Status s) { deleted = s; });
  REQUIRE(h.RunUntil([&] { return !h.driver.signals().empty(); }));
  CHECK(h.driver.signals() == std::vector<Signalled>{{id, SIGTERM}});
  h.Advance(4999ms);
  CHECK(h.driver.signals().size() == 1);
  h.Advance(1ms);
  CHECK(h.driver.signals().back() == Signalled{id, SIGKILL});
  CHECK_FALSE(deleted.has_value());  // answered when the process is gone
  h.driver.End(id, -1, SIGKILL);
  h.Settle();
  REQUIRE(deleted.has_value());
  CHECK(deleted->ok());
}

TEST_CASE("a create is answered only once its desired state is durable", "[supervisor][state]") {
  Harness h;
  h.state.Hold();
  std::optional<Result<ServiceView>> created;
  h.supervisor.Create(Spec("api"), [&](Result<ServiceView> v) { created = std::move(v); });
  REQUIRE(h.RunUntil([&] { return h.state.Began(1); }));
  h.Settle();
  CHECK_FALSE(created.has_value());
  CHECK(h.driver.Starts(Id("api")) == 0);  // nothing runs that is not durable yet
  // A second create of the same service meanwhile is refused, not written.
  std::optional<Result<ServiceView>> again;
  h.supervisor.Create(Spec("api"), [&](Result<ServiceView> v) { again = std::move(v); });
  h.Settle();
  REQUIRE(again.has_value());
  CHECK(again->status().code() == absl::StatusCode::kAlreadyExists);
  h.state.Release();
  REQUIRE(h.RunUntil([&] { return created.has_value(); }));
  REQUIRE(created->ok());
  CHECK(h.state.durable().size() == 1);
  CHECK(h.driver.Starts(Id("api")) == 1);
  CHECK(h.state.log() == std::vector<std::string>{"save api /srv/api"});
}

TEST_CASE("a restore loads the desired state off the io thread, refusing calls until it is done",
          "[supervisor][state]") {
  Harness h;
  DeployedService saved;
  saved.spec = Spec("saved");
  saved.created_unix_ms = 1;
  saved.updated_unix_ms = 2;
  REQUIRE(h.state.Save(saved).ok());
  h.state.Hold();
  std::optional<Status> restored;
  h.supervisor.Restore([&](Status s) { restored = s; });
  REQUIRE(h.RunUntil([&] { return h.state.Began(2); }));  // LoadAll waits in the writer
  std::optional<Result<ServiceView>> early;
  h.supervisor.Create(Spec("api"), [&](Result<ServiceView> v) { early = std::move(v); });
  h.Settle();
  REQUIRE(early.has_value());
  CHECK(early->status().code() == absl::StatusCode::kUnavailable);
  CHECK_FALSE(restored.has_value());
  h.state.Release();
  REQUIRE(h.RunUntil([&] { return restored.has_value(); }));
  CHECK(restored->ok());
  CHECK(h.driver.Starts(Id("saved")) == 1);
  CHECK(h.Read("saved").created_unix_ms == 1);
  CHECK(h.Create(Spec("api")).ok());
}

TEST_CASE("desired-state writes land in the order the calls were decided", "[supervisor][state]") {
  Harness h;
  REQUIRE(h.Create(Spec("api")).ok());
  h.driver.Launch(Id("api"));
  h.state.Hold();
  ServiceSpec v2 = Spec("api");
  v2.command = "/srv/api-v2";
  std::optional<Result<ServiceView>> updated;
  std::optional<Status> deleted;
  h.supervisor.Update("micro", "api", "latest", v2,
                      [&](Result<ServiceView> v) { updated = std::move(v); });
  h.supervisor.Delete("micro", "api", "", [&](Status s) { deleted = s; });
  // An update decided after the delete would bring the service back: it is NOT_FOUND.
  std::optional<Result<ServiceView>> late;
  h.supervisor.Update("micro", "api", "latest", v2,
                      [&](Result<ServiceView> v) { late = std::move(v); });
  h.Settle();
  REQUIRE(late.has_value());
  CHECK(late->status().code() == absl::StatusCode::kNotFound);
  CHECK_FALSE(updated.has_value());
  CHECK_FALSE(deleted.has_value());
  h.state.Release();
  REQUIRE(h.RunUntil([&] { return updated.has_value() && !h.driver.signals().empty(); }));
  CHECK(updated->status().code() == absl::StatusCode::kNotFound);  // the delete won
  h.driver.End(Id("api"), 0, SIGTERM);
  REQUIRE(h.RunUntil([&] { return deleted.has_value(); }));
  CHECK(deleted->ok());
  CHECK(h.state.log() ==
        std::vector<std::string>{"save api /srv/api", "save api /srv/api-v2", "remove api"});
  CHECK(h.state.durable().empty());
}

TEST_CASE("a failed write is the answer and changes nothing", "[supervisor][state]") {
  // A state whose writes fail, as a full disk makes them.
  struct Failing final : DesiredState {
    Status Save(const DeployedService&) override { return absl::UnavailableError("disk full"); }
    Status Remove(const std::string&, const std::string&, const std::string&) override {
      return absl::UnavailableError("disk full");
    }
    Result<std::vector<DeployedService>> LoadAll() override {
      return std::vector<DeployedService>{};
    }
  } failing;
  std::map<std::string, std::string> secrets;  // "ns/path" -> value, for env_secrets
  TempDir logs;
  FakeClock clock;
  FakeTimers timers{clock};
  boost::asio::io_context io;
  FakeDriver driver{io};
  SupervisorOptions options;
  options.logs_dir = logs.path();
  Supervisor supervisor(io, clock, timers, failing, driver, nullptr, "none", options);
  std::optional<Result<ServiceView>> created;
  supervisor.Create(Spec("api"), [&](Result<ServiceView> v) { created = std::move(v); });
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!created && std::chrono::steady_clock::now() < deadline) {
    io.restart();
    io.run_one_for(10ms);
  }
  REQUIRE(created.has_value());
  CHECK(created->status().code() == absl::StatusCode::kUnavailable);
  CHECK(std::string(created->status().message()) == "disk full");
  CHECK(driver.Starts(Id("api")) == 0);
}

// The io loop on a thread of its own, as in the daemon, with a real-time deadline on waits.
TEST_CASE("a crash restart completes while a desired-state write is held", "[supervisor][state]") {
  Harness h;
  ServiceSpec crasher = Spec("crasher");
  crasher.backoff.initial = 0ms;  // restarts at once: no timer involved
  REQUIRE(h.Create(crasher).ok());
  h.driver.Launch(Id("crasher"));
  h.Settle();
  h.state.Hold();
  std::promise<Result<ServiceView>> created;
  h.supervisor.Create(Spec("api"), [&](Result<ServiceView> v) { created.set_value(v); });
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work(
      h.io.get_executor());
  h.io.restart();
  std::thread loop([&] { h.io.run(); });
  const bool write_began = [&] {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!h.state.Began(2) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
    }
    return h.state.Began(2);
  }();
  CHECK(write_began);
  // The crash and its restart go through the io loop while the write is held.
  boost::asio::post(h.io, [&] { h.driver.End(Id("crasher"), 1); });
  bool restarted = false;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!restarted && std::chrono::steady_clock::now() < deadline) {
    restarted = h.driver.Starts(Id("crasher")) == 2;
    std::this_thread::sleep_for(1ms);
  }
  auto answer = created.get_future();
  CHECK(answer.wait_for(0s) == std::future_status::timeout);  // still held
  h.state.Release();
  CHECK(restarted);
  REQUIRE(answer.wait_for(10s) == std::future_status::ready);
  CHECK(answer.get().ok());
  work.reset();
  h.io.stop();
  loop.join();
}

}  // namespace
}  // namespace micro::runtime
