// Rolling updates end to end, with real processes: the status sampled while instances are
// replaced, a rollback by hand and by itself, and a client calling through the daemon's proxy
// during an update of the helloworld example.
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "helloworld/v1/helloworld.grpc.pb.h"
#include "tests/support/micro_daemon.h"
#include "tests/support/temp_dir.h"

namespace micro::testing {
namespace {

using namespace std::chrono_literals;

nlohmann::json Service(const MicroDaemon& daemon, const std::string& name) {
  ProgramResult result = daemon.Cli({"status", name, "-o", "json"});
  if (result.exit_code != 0) return nlohmann::json();
  nlohmann::json parsed = nlohmann::json::parse(result.out);
  return parsed["services"].empty() ? nlohmann::json() : parsed["services"][0];
}

// Instances running and healthy (STATUS_RUNNING: with a health check, it passed).
int Healthy(const nlohmann::json& service) {
  int healthy = 0;
  for (const auto& i : service["instances"]) healthy += i["status"] == "STATUS_RUNNING";
  return healthy;
}

std::string RolloutState(const nlohmann::json& service) {
  return service.is_null() ? "" : service["rollout"]["state"].get<std::string>();
}

// A manifest for a service of `instances` instances that runs `script`, checked healthy by a
// command, with a short min_healthy_time so that an update takes seconds.
void WriteManifest(const std::string& dir, const std::string& name, int instances,
                   const std::string& script) {
  std::ofstream(dir + "/micro.yaml")
      << "name: " << name << "\ncommand: /bin/sh\nargs: [-c, \"" << script << "\"]\n"
      << "instances: " << instances << "\ngrace_period: 2s\n"
      << "health_check: {type: command, command: [/bin/true], interval: 100ms}\n"
      << "update: {max_parallel: 1, min_healthy_time: 2s, healthy_deadline: 20s}\n";
}

TEST_CASE("a rolling update keeps 2 of 3 instances healthy in every sample, and goes back",
          "[e2e][runtime][rollout]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  TempDir dir;
  WriteManifest(dir.path(), "web", 3, "echo v1; exec sleep 1000");
  REQUIRE(daemon.Cli({"run", "--wait", dir.path()}).exit_code == 0);
  REQUIRE(WaitFor([&] { return Healthy(Service(daemon, "web")) == 3; }, 20s));

  WriteManifest(dir.path(), "web", 3, "echo v2; exec sleep 1000");
  ProgramResult update = daemon.Cli({"update", dir.path()});
  REQUIRE(update.exit_code == 0);
  CHECK(update.out.find("to revision 2: replacing 3 instance(s), 1 at a time") !=
        std::string::npos);
  // Sampled every 50 ms until the update ends (at most 60 s).
  int samples = 0, fewest = 3, mixed = 0;
  std::string state;
  const auto give_up = std::chrono::steady_clock::now() + 60s;
  while (std::chrono::steady_clock::now() < give_up) {
    const nlohmann::json service = Service(daemon, "web");
    REQUIRE_FALSE(service.is_null());
    ++samples;
    fewest = std::min(fewest, Healthy(service));
    std::set<std::string> revisions;
    for (const auto& i : service["instances"]) {
      if (i["status"] == "STATUS_RUNNING") revisions.insert(i["revision"].get<std::string>());
    }
    mixed += revisions.size() == 2;  // caught mid-update: old and new both serving
    state = RolloutState(service);
    if (state != "ROLLOUT_STATE_RUNNING") break;
    std::this_thread::sleep_for(50ms);
  }
  INFO("samples: " << samples << ", with both revisions running: " << mixed);
  CHECK(state == "ROLLOUT_STATE_SUCCEEDED");
  // Three steps of at least 2 s each: samples throughout (fewer with a sanitizer's slow CLI).
  CHECK(samples >= 3);
  CHECK(mixed >= 2);
  CHECK(fewest >= 2);
  nlohmann::json updated = Service(daemon, "web");
  CHECK(updated["revision"] == "2");  // int64 as a JSON string
  CHECK(Healthy(updated) == 3);
  for (const auto& i : updated["instances"]) CHECK(i["revision"] == "2");
  CHECK(daemon.Cli({"logs", "web"}).out.find("] v2") != std::string::npos);

  // By hand: back to revision 1, the same way.
  ProgramResult back = daemon.Cli({"rollback", "web", "--wait"});
  INFO(back.err);
  CHECK(back.exit_code == 0);
  CHECK(back.err.find("web: revision 1 runs on 3/3 instance(s)") != std::string::npos);
  nlohmann::json rolled = Service(daemon, "web");
  CHECK(rolled["revision"] == "1");
  CHECK(RolloutState(rolled) == "ROLLOUT_STATE_ROLLED_BACK");
  CHECK(rolled["previous_revision"] == "2");

  // A version whose instances exit at once: the update goes back by itself.
  WriteManifest(dir.path(), "web", 3, "echo broken; exit 1");
  ProgramResult broken = daemon.Cli({"update", dir.path(), "--wait", "-o", "json"});
  INFO(broken.err);
  CHECK(broken.exit_code == 1);
  CHECK(broken.err.find("the update failed and was rolled back to revision 1") !=
        std::string::npos);
  const nlohmann::json outcome = nlohmann::json::parse(broken.out);  // -o json ends with it
  CHECK(RolloutState(outcome) == "ROLLOUT_STATE_ROLLED_BACK");
  CHECK(outcome["rollout"]["reason"].get<std::string>().find("exited (exit code 1)") !=
        std::string::npos);
  REQUIRE(WaitFor([&] { return Healthy(Service(daemon, "web")) == 3; }, 20s));
  nlohmann::json after = Service(daemon, "web");
  CHECK(after["revision"] == "1");
  CHECK(after["options"]["args"][1].get<std::string>().find("v1") != std::string::npos);
  CHECK(after["instances"].size() == 3);
  ProgramResult status = daemon.Cli({"status", "web"});
  CHECK(status.out.find("revision 1, rolled back: revision 3 failed") != std::string::npos);
}

TEST_CASE("a client calling through the proxy during a rolling update sees no failed call",
          "[e2e][runtime][rollout][sdk]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  TempDir dir;
  std::ofstream(dir.path() + "/micro.yaml")
      << "name: hello\ncommand: " << HELLOWORLD_BINARY << "\ninstances: 3\n"
      << "health_check: {type: grpc, interval: 200ms, start_period: 20s}\n"
      << "update: {min_healthy_time: 500ms}\n";
  REQUIRE(daemon.Cli({"run", "--wait", dir.path()}).exit_code == 0);
  REQUIRE(WaitFor([&] { return NodeCount(daemon, "hello") == 3; }, 30s));

  std::atomic<bool> stop{false};
  std::atomic<int> calls{0};
  std::vector<std::string> failures;
  std::set<std::string> nodes;
  std::thread client([&] {
    auto stub = helloworld::v1::Greeter::NewStub(daemon.Channel());
    helloworld::v1::HelloRequest request;
    request.set_name("Ada");
    const auto give_up = std::chrono::steady_clock::now() + 90s;
    for (int i = 0; i < 50000 && !stop && std::chrono::steady_clock::now() < give_up; ++i) {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + 5s);
      helloworld::v1::HelloReply reply;
      grpc::Status status = stub->SayHello(&context, request, &reply);
      ++calls;
      if (!status.ok()) {
        failures.push_back(std::to_string(status.error_code()) + " " + status.error_message());
      } else {
        nodes.insert(reply.node());
      }
      std::this_thread::sleep_for(5ms);
    }
  });
  std::this_thread::sleep_for(300ms);
  ProgramResult update = daemon.Cli({"update", "hello", "--wait"});
  std::this_thread::sleep_for(300ms);
  stop = true;
  client.join();
  INFO(update.err);
  CHECK(update.exit_code == 0);
  INFO("calls: " << calls << ", first failure: " << (failures.empty() ? "" : failures[0]));
  CHECK(failures.empty());
  CHECK(calls > 100);
  CHECK(nodes.size() >= 6);  // three old instances and three new ones answered
}

}  // namespace
}  // namespace micro::testing
