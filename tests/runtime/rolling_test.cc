// Rolling updates on a fake clock and a fake driver: each new instance starts beside the old
// ones, counts after min_healthy_time, and only then is an old one stopped; a new instance that
// exits or misses the healthy deadline takes the service back to its previous options.
#include <signal.h>

#include <catch2/catch.hpp>

#include "tests/runtime/supervisor_harness.h"

namespace micro::runtime {
namespace {

using Signalled = FakeDriver::Signalled;
using Catch::Matchers::Contains;

std::string IdOf(const std::string& name, int n) {
  return "micro." + name + ".latest." + std::to_string(n);
}

int Running(const ServiceView& view) {
  int running = 0;
  for (const InstanceView& i : view.instances) running += i.status == Phase::kRunning;
  return running;
}

// The driver id of the instance of `revision` that is starting (exactly one).
std::string Starting(const ServiceView& view, int64_t revision) {
  std::string found;
  for (const InstanceView& i : view.instances) {
    if (i.revision == revision && i.status == Phase::kStarting) {
      REQUIRE(found.empty());
      found = IdOf(view.spec.name, std::stoi(i.id.substr(i.id.rfind('-') + 1)));
    }
  }
  REQUIRE_FALSE(found.empty());
  return found;
}

Result<ServiceView> Update(Harness& h, const std::string& name, std::optional<ServiceSpec> spec) {
  std::optional<Result<ServiceView>> out;
  h.supervisor.Update("micro", name, "latest", std::move(spec),
                      [&](Result<ServiceView> v) { out = std::move(v); });
  REQUIRE(h.RunUntil([&] { return out.has_value(); }));
  return *out;
}

Result<ServiceView> Rollback(Harness& h, const std::string& name) {
  std::optional<Result<ServiceView>> out;
  h.supervisor.Rollback("micro", name, "latest",
                        [&](Result<ServiceView> v) { out = std::move(v); });
  REQUIRE(h.RunUntil([&] { return out.has_value(); }));
  return *out;
}

// Three running instances of `name`, min_healthy_time 2 s, healthy_deadline 5 s.
ServiceSpec Deployed(Harness& h, const std::string& name, int instances = 3) {
  ServiceSpec spec = Spec(name);
  spec.instances = instances;
  spec.update.min_healthy_time = 2s;
  spec.update.healthy_deadline = 5s;
  REQUIRE(h.Create(spec).ok());
  for (int n = 0; n < instances; ++n) h.driver.Launch(IdOf(name, n));
  h.Settle();
  REQUIRE(Running(h.Read(name)) == instances);
  return spec;
}

// The durable state of the only service, once `ready` holds for it.
template <typename Predicate>
DeployedService Durable(Harness& h, Predicate ready) {
  std::optional<DeployedService> out;
  REQUIRE(h.RunUntil([&] {
    auto all = h.state.durable();
    if (all.size() == 1 && ready(all[0])) out = all[0];
    return out.has_value();
  }));
  return *out;
}

TEST_CASE("a rolling update stops an old instance only after a new one was healthy long enough",
          "[supervisor][rollout]") {
  Harness h;
  ServiceSpec v1 = Deployed(h, "web");
  ServiceSpec v2 = v1;
  v2.command = "/srv/web-v2";
  Result<ServiceView> answer = Update(h, "web", v2);
  REQUIRE(answer.ok());
  CHECK(answer->revision == 2);
  CHECK(answer->rollout.state == RolloutState::kRunning);
  for (int step = 0; step < 3; ++step) {
    INFO("step " << step);
    const std::string fresh = Starting(h.Read("web"), 2);
    CHECK(h.driver.Request(fresh).command == "/srv/web-v2");
    CHECK(Running(h.Read("web")) == 3);  // never fewer than before
    h.driver.Launch(fresh, 5000 + step);
    h.Settle();
    CHECK(Running(h.Read("web")) == 4);
    h.Advance(1999ms);
    CHECK(h.driver.signals().size() == static_cast<size_t>(step));  // no old one stopped yet
    h.Advance(1ms);
    REQUIRE(h.driver.signals().size() == static_cast<size_t>(step + 1));
    CHECK(h.driver.signals().back() == Signalled{IdOf("web", step), SIGTERM});
    CHECK(h.Read("web").rollout.instances_updated == step + 1);
    h.driver.End(IdOf("web", step), 0);
    h.Settle();
  }
  const ServiceView done = h.Read("web");
  CHECK(done.rollout.state == RolloutState::kSucceeded);
  CHECK(done.rollout.finished_unix_ms > 0);
  REQUIRE(done.instances.size() == 3);
  for (const InstanceView& i : done.instances) {
    CHECK(i.revision == 2);
    CHECK(i.status == Phase::kRunning);
  }
  CHECK(done.spec.command == "/srv/web-v2");
  REQUIRE(done.previous.has_value());
  CHECK(done.previous->command == "/srv/web");
  CHECK(done.previous_revision == 1);
  const DeployedService saved = Durable(
      h, [](const DeployedService& d) { return d.rollout.state == RolloutState::kSucceeded; });
  CHECK(saved.revision == 2);
  CHECK(saved.spec.command == "/srv/web-v2");
  CHECK(saved.previous->command == "/srv/web");
}

TEST_CASE("max_parallel new instances start at once, no more", "[supervisor][rollout]") {
  Harness h;
  ServiceSpec v1 = Spec("wide");
  v1.instances = 4;
  v1.update.max_parallel = 2;
  REQUIRE(h.Create(v1).ok());
  for (int n = 0; n < 4; ++n) h.driver.Launch(IdOf("wide", n));
  h.Settle();
  ServiceSpec v2 = v1;
  v2.command = "/srv/wide-v2";
  REQUIRE(Update(h, "wide", v2).ok());
  CHECK(h.driver.Starts(IdOf("wide", 4)) == 1);
  CHECK(h.driver.Starts(IdOf("wide", 5)) == 1);
  CHECK(h.driver.Starts(IdOf("wide", 6)) == 0);
  CHECK(h.Read("wide").instances.size() == 6);
}

TEST_CASE("a new instance that exits before it counts takes the service back by itself",
          "[supervisor][rollout]") {
  Harness h;
  Deployed(h, "web");
  ServiceSpec broken = Spec("web");
  broken.instances = 3;
  broken.command = "/srv/broken";
  REQUIRE(Update(h, "web", broken).ok());
  const std::string fresh = Starting(h.Read("web"), 2);
  h.driver.Launch(fresh);
  h.driver.End(fresh, 1);
  h.Settle();
  const ServiceView view = h.Read("web");
  CHECK(view.rollout.state == RolloutState::kRolledBack);
  CHECK_THAT(view.rollout.reason, Contains("revision 2 failed") &&
                                      Contains("exited (exit code 1) before it was healthy"));
  CHECK(view.spec.command == "/srv/web");
  CHECK(view.revision == 1);
  REQUIRE(view.previous.has_value());
  CHECK(view.previous->command == "/srv/broken");  // what `micro rollback` would go to
  CHECK(view.previous_revision == 2);
  REQUIRE(view.instances.size() == 3);  // the failed one is gone
  CHECK(Running(view) == 3);
  CHECK(h.driver.signals().empty());   // the old ones never stopped
  CHECK(h.driver.Starts(fresh) == 1);  // nor is the broken one restarted
  const DeployedService saved = Durable(
      h, [](const DeployedService& d) { return d.rollout.state == RolloutState::kRolledBack; });
  CHECK(saved.spec.command == "/srv/web");
  CHECK(saved.revision == 1);
}

TEST_CASE("a new instance that is not healthy by the deadline takes the service back",
          "[supervisor][rollout]") {
  Harness h;
  Deployed(h, "web");
  ServiceSpec slow = Spec("web");
  slow.instances = 3;
  slow.command = "/srv/slow";
  slow.update.min_healthy_time = 2s;
  slow.update.healthy_deadline = 5s;
  REQUIRE(Update(h, "web", slow).ok());
  const std::string fresh = Starting(h.Read("web"), 2);
  h.driver.Launch(fresh);
  h.Settle();
  // Running, but it exits 100 ms before it would count.
  h.Advance(1900ms);
  h.driver.End(fresh, 0);
  h.Settle();
  CHECK(h.Read("web").rollout.state == RolloutState::kRolledBack);  // an exit fails it at once
  CHECK(h.Read("web").spec.command == "/srv/web");

  // Now one that never gets going: the driver does not report its start within 5 s.
  REQUIRE(Update(h, "web", slow).ok());
  const ServiceView updating = h.Read("web");
  CHECK(updating.revision == 3);  // the revisions only go up
  std::string never;
  for (const InstanceView& i : updating.instances) {
    if (i.revision == 3) never = IdOf("web", std::stoi(i.id.substr(i.id.rfind('-') + 1)));
  }
  REQUIRE(h.driver.Request(never).command == "/srv/slow");
  h.Advance(4999ms);
  CHECK(h.Read("web").rollout.state == RolloutState::kRunning);
  h.Advance(1ms);
  const ServiceView back = h.Read("web");
  CHECK(back.rollout.state == RolloutState::kRollingBack);  // it waits for the start to stop it
  CHECK_THAT(back.rollout.reason, Contains("not healthy within the healthy deadline (5 s)"));
  h.driver.Launch(never);
  h.Settle();
  CHECK(h.driver.signals().back() == Signalled{never, SIGTERM});
  h.driver.End(never, 0);
  h.Settle();
  CHECK(h.Read("web").rollout.state == RolloutState::kRolledBack);
  CHECK(Running(h.Read("web")) == 3);
}

TEST_CASE("without auto_revert a failed update stops where it is", "[supervisor][rollout]") {
  Harness h;
  Deployed(h, "web");
  ServiceSpec broken = Spec("web");
  broken.instances = 3;
  broken.command = "/srv/broken";
  broken.update.auto_revert = false;
  REQUIRE(Update(h, "web", broken).ok());
  const std::string fresh = Starting(h.Read("web"), 2);
  h.driver.Launch(fresh);
  h.driver.End(fresh, 1);
  h.Settle();
  const ServiceView view = h.Read("web");
  CHECK(view.rollout.state == RolloutState::kFailed);
  CHECK(view.spec.command == "/srv/broken");
  CHECK(view.instances.size() == 4);  // three old, the failed new one in backoff
  CHECK(Running(view) == 3);
  h.Advance(100ms);
  CHECK(h.driver.Starts(fresh) == 2);  // restarted by its policy, no further replacements
  CHECK(h.Read("web").instances.size() == 4);
}

TEST_CASE("micro rollback goes back to the previous options the same way",
          "[supervisor][rollout]") {
  Harness h;
  ServiceSpec v1 = Deployed(h, "one", 1);
  CHECK(Rollback(h, "one").status().code() == absl::StatusCode::kFailedPrecondition);
  ServiceSpec v2 = v1;
  v2.command = "/srv/one-v2";
  REQUIRE(Update(h, "one", v2).ok());
  std::string fresh = Starting(h.Read("one"), 2);
  h.driver.Launch(fresh);
  h.Advance(2s);
  h.driver.End(IdOf("one", 0), 0);
  h.Settle();
  REQUIRE(h.Read("one").rollout.state == RolloutState::kSucceeded);

  Result<ServiceView> back = Rollback(h, "one");
  REQUIRE(back.ok());
  CHECK(back->rollout.state == RolloutState::kRollingBack);
  CHECK(back->revision == 1);
  fresh = Starting(h.Read("one"), 1);
  CHECK(h.driver.Request(fresh).command == "/srv/one");
  CHECK(Running(h.Read("one")) == 1);  // the v2 instance serves meanwhile
  h.driver.Launch(fresh);
  h.Advance(2s);
  CHECK(h.driver.signals().back().signal == SIGTERM);
  h.driver.End(h.driver.signals().back().id, 0);
  h.Settle();
  const ServiceView view = h.Read("one");
  CHECK(view.rollout.state == RolloutState::kRolledBack);
  CHECK_THAT(view.rollout.reason, Contains("by hand"));
  CHECK(view.spec.command == "/srv/one");
  CHECK(view.previous->command == "/srv/one-v2");  // a second rollback goes forward again
  REQUIRE(view.instances.size() == 1);
  CHECK(view.instances[0].revision == 1);
}

TEST_CASE("a daemon that starts mid-update takes the update up again, and goes back if it fails",
          "[supervisor][rollout]") {
  Harness h;
  DeployedService saved;
  saved.spec = Spec("web");
  saved.spec.instances = 2;
  saved.spec.command = "/srv/web-v2";
  saved.revision = 2;
  saved.previous = Spec("web");
  saved.previous->instances = 2;
  saved.previous_revision = 1;
  saved.rollout = {RolloutState::kRunning, "", 2, 1, 0};
  REQUIRE(h.state.Save(saved).ok());
  std::optional<Status> restored;
  h.supervisor.Restore([&](Status s) { restored = s; });
  REQUIRE(h.RunUntil([&] { return restored.has_value(); }));
  // Nothing runs after a restart: both new instances start at once, gated.
  CHECK(h.driver.Request(IdOf("web", 0)).command == "/srv/web-v2");
  CHECK(h.driver.Request(IdOf("web", 1)).command == "/srv/web-v2");
  h.driver.Launch(IdOf("web", 0));
  h.driver.FailLaunch(IdOf("web", 1), absl::InternalError("exec failed"));
  h.Settle();
  const ServiceView view = h.Read("web");
  CHECK(view.rollout.state == RolloutState::kRollingBack);
  CHECK_THAT(view.rollout.reason, Contains("cannot start: exec failed"));
  // The v2 instance that never counted is stopped; two of v1 start.
  CHECK(h.driver.signals() == std::vector<Signalled>{{IdOf("web", 0), SIGTERM}});
  CHECK(h.driver.Request(IdOf("web", 1)).command == "/srv/web");
  CHECK(h.driver.Request(IdOf("web", 2)).command == "/srv/web");
}

TEST_CASE("old instances waiting to restart leave at once, and a smaller update still ends",
          "[supervisor][rollout]") {
  Harness h;
  ServiceSpec v1 = Spec("shrink");
  v1.instances = 3;
  v1.backoff.initial = 60s;
  v1.update.min_healthy_time = 1s;
  REQUIRE(h.Create(v1).ok());
  for (int n = 0; n < 3; ++n) h.driver.Launch(IdOf("shrink", n));
  h.driver.End(IdOf("shrink", 1), 1);  // two of them wait a minute to restart
  h.driver.End(IdOf("shrink", 2), 1);
  h.Settle();
  ServiceSpec v2 = v1;
  v2.instances = 1;
  v2.command = "/srv/shrink-v2";
  REQUIRE(Update(h, "shrink", v2).ok());
  const std::string fresh = Starting(h.Read("shrink"), 2);
  h.driver.Launch(fresh);
  h.Advance(1s);
  // The two waiting ones are gone without a signal; the running one is asked to stop.
  ServiceView view = h.Read("shrink");
  CHECK(view.instances.size() == 2);
  CHECK(h.driver.signals() == std::vector<Signalled>{{IdOf("shrink", 0), SIGTERM}});
  CHECK(view.rollout.state == RolloutState::kRunning);
  h.driver.End(IdOf("shrink", 0), 0);
  h.Settle();
  view = h.Read("shrink");
  CHECK(view.rollout.state == RolloutState::kSucceeded);
  REQUIRE(view.instances.size() == 1);
  CHECK(view.instances[0].revision == 2);
}

TEST_CASE("max_parallel 0 replaces every instance at once", "[supervisor][rollout]") {
  Harness h;
  ServiceSpec v1 = Spec("all");
  v1.instances = 2;
  v1.update.max_parallel = 0;
  REQUIRE(h.Create(v1).ok());
  for (int n = 0; n < 2; ++n) h.driver.Launch(IdOf("all", n));
  h.Settle();
  ServiceSpec v2 = v1;
  v2.command = "/srv/all-v2";
  std::optional<Result<ServiceView>> out;
  h.supervisor.Update("micro", "all", "latest", v2,
                      [&](Result<ServiceView> v) { out = std::move(v); });
  REQUIRE(h.RunUntil([&] { return h.driver.signals().size() == 2; }));  // both stop at once
  h.driver.End(IdOf("all", 0), 0);
  h.driver.End(IdOf("all", 1), 0);
  REQUIRE(h.RunUntil([&] { return out.has_value(); }));
  REQUIRE(out->ok());
  CHECK((*out)->rollout.state == RolloutState::kNone);
  CHECK(h.driver.Request(IdOf("all", 0)).command == "/srv/all-v2");
  CHECK(h.driver.Request(IdOf("all", 1)).command == "/srv/all-v2");
  CHECK(h.Read("all").previous->command == "/srv/all");
}

}  // namespace
}  // namespace micro::runtime
