// A container service through the real binary: `micro run` of a manifest with the container
// driver, against the real dockerd the `dockerd` CTest fixture starts (scripts/dockerd.sh).
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/support/micro_daemon.h"

namespace micro::testing {
namespace {

using namespace std::chrono_literals;

// The test dockerd's socket, or empty (with a warning) when there is none.
std::string DockerSocket() {
  const char* socket = std::getenv("MICRO_TEST_DOCKER_SOCKET");
  if (socket == nullptr || !std::filesystem::exists(socket)) return "";
  return socket;
}

// Containers of the test dockerd carrying `label` (KEY=VALUE), from the docker CLI.
std::string Containers(const std::string& socket, const std::string& label) {
  return RunProgram({"/usr/bin/docker", "-H", "unix://" + socket, "ps", "-a", "-q", "--filter",
                     "label=" + label})
      .out;
}

TEST_CASE("a container service runs, logs, restarts and is removed", "[e2e][container]") {
  const std::string socket = DockerSocket();
  if (socket.empty()) {
    WARN("SKIPPED: no dockerd (MICRO_TEST_DOCKER_SOCKET unset or missing)");
    return;
  }
  MicroDaemon daemon({"--runtime-docker-socket", socket});
  REQUIRE(daemon.WaitUntilServing());
  TempDir source;
  std::ofstream(source.path() + "/micro.yaml")
      << "name: boxed\n"
         "driver: container\n"
         "image: micro-test:latest\n"
         "command: /bin/sh\n"
         "args: [-c, 'echo hello from $MICRO_SERVICE_NAME in a container; exec sleep 300']\n"
         "instances: 2\n"
         "limits: {memory: 64MiB, processes: 32}\n"
         "grace_period: 2s\n";
  ProgramResult run = daemon.Cli({"run", source.path()});
  INFO(run.out << run.err);
  REQUIRE(run.exit_code == 0);
  nlohmann::json service;
  REQUIRE(WaitFor(
      [&] {
        ProgramResult status = daemon.Cli({"status", "boxed", "--output", "json"});
        if (status.exit_code != 0) return false;
        service = nlohmann::json::parse(status.out)["services"][0];
        return service.value("instances_running", 0) == 2;
      },
      60s));
  for (const auto& instance : service["instances"]) {
    CHECK_FALSE(instance.value("container_id", "").empty());
  }
  // Other tests share this dockerd: look only at this service's instances.
  const std::string boxed_0 = "micro.instance=micro.boxed.latest.0";
  const std::string boxed_1 = "micro.instance=micro.boxed.latest.1";
  CHECK_FALSE(Containers(socket, boxed_0).empty());
  CHECK_FALSE(Containers(socket, boxed_1).empty());
  REQUIRE(WaitFor(
      [&] {
        return daemon.Cli({"logs", "boxed"}).out.find("hello from boxed in a container") !=
               std::string::npos;
      },
      30s));
  // An update restarts the containers at once.
  REQUIRE(daemon.Cli({"update", "boxed"}).exit_code == 0);
  REQUIRE(WaitFor(
      [&] {
        ProgramResult status = daemon.Cli({"status", "boxed", "--output", "json"});
        return status.exit_code == 0 &&
               nlohmann::json::parse(status.out)["services"][0].value("instances_running", 0) == 2;
      },
      60s));
  ProgramResult kill = daemon.Cli({"kill", "boxed"});
  CHECK(kill.exit_code == 0);
  CHECK(Containers(socket, boxed_0).empty());
  CHECK(Containers(socket, boxed_1).empty());
}

TEST_CASE("a container service with a missing image reports the engine's error",
          "[e2e][container]") {
  const std::string socket = DockerSocket();
  if (socket.empty()) {
    WARN("SKIPPED: no dockerd (MICRO_TEST_DOCKER_SOCKET unset or missing)");
    return;
  }
  MicroDaemon daemon({"--runtime-docker-socket", socket});
  REQUIRE(daemon.WaitUntilServing());
  TempDir source;
  std::ofstream(source.path() + "/micro.yaml") << "name: noimage\n"
                                                  "driver: container\n"
                                                  "image: micro-no-such-image:1.0\n"
                                                  "restart: never\n";
  REQUIRE(daemon.Cli({"run", source.path()}).exit_code == 0);
  REQUIRE(WaitFor(
      [&] {
        ProgramResult status = daemon.Cli({"status", "noimage", "--output", "json"});
        return status.exit_code == 0 && nlohmann::json::parse(status.out)["services"][0]
                                                .value("error", "")
                                                .find("No such image") != std::string::npos;
      },
      30s));
  CHECK(daemon.Cli({"kill", "noimage"}).exit_code == 0);
}

TEST_CASE("without a Docker engine a container deploy says why", "[e2e][container]") {
  MicroDaemon daemon({"--runtime-docker-socket", "/nonexistent/docker.sock"});
  REQUIRE(daemon.WaitUntilServing());
  TempDir source;
  std::ofstream(source.path() + "/micro.yaml") << "name: nodocker\n"
                                                  "driver: container\n"
                                                  "image: busybox\n";
  ProgramResult run = daemon.Cli({"run", source.path()});
  CHECK(run.exit_code == 1);
  CHECK(run.err.find("cannot reach the Docker engine at /nonexistent/docker.sock") !=
        std::string::npos);
}

}  // namespace
}  // namespace micro::testing
