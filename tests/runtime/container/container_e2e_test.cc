// A container service through the real binary: `micro run` of a manifest with the container
// driver, against the real dockerd the `dockerd` CTest fixture starts (scripts/dockerd.sh).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

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

// A unix socket that passes every connection through to the real engine until Freeze; from
// then on it accepts connections and holds them, passing nothing either way: an engine that
// stops answering while the daemon uses it.
class FreezableProxy {
 public:
  explicit FreezableProxy(std::string engine)
      : engine_(std::move(engine)), path_(dir_.path() + "/docker.sock") {
    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const sockaddr_un addr = Address(path_);
    ok_ = listen_fd_ >= 0 && ::pipe2(wake_, O_CLOEXEC) == 0 &&
          ::bind(listen_fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0 &&
          ::listen(listen_fd_, 64) == 0;
    if (ok_) thread_ = std::thread([this] { Run(); });
  }
  ~FreezableProxy() {
    stop_ = true;
    Wake();
    if (thread_.joinable()) thread_.join();
    for (int fd : open_) ::close(fd);
    for (int fd : {listen_fd_, wake_[0], wake_[1]}) {
      if (fd >= 0) ::close(fd);
    }
  }
  bool ok() const { return ok_; }
  const std::string& path() const { return path_; }
  void Freeze() {
    frozen_ = true;
    Wake();
  }

 private:
  static sockaddr_un Address(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path.copy(addr.sun_path, sizeof addr.sun_path - 1);
    return addr;
  }
  void Wake() {
    if (wake_[1] >= 0) (void)!::write(wake_[1], "x", 1);
  }
  static bool WriteAll(int fd, const char* data, ssize_t n) {
    while (n > 0) {
      const ssize_t written = ::write(fd, data, n);
      if (written <= 0) return false;
      data += written;
      n -= written;
    }
    return true;
  }
  // One poll loop: passes bytes between each client and its engine connection while not frozen.
  void Run() {
    std::vector<std::pair<int, int>> pairs;  // client, engine; -1 once closed
    char buffer[64 << 10];
    while (!stop_) {
      std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
      if (!frozen_) {
        for (const auto& [client, engine] : pairs) {
          fds.push_back({client, POLLIN, 0});
          fds.push_back({engine, POLLIN, 0});
        }
      }
      if (::poll(fds.data(), fds.size(), 200) <= 0) continue;
      if (fds[1].revents != 0) (void)!::read(wake_[0], buffer, sizeof buffer);
      if (frozen_) {
        if (fds[0].revents != 0) {
          const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
          if (client >= 0) open_.push_back(client);  // held, never answered
        }
        continue;
      }
      for (size_t k = 0; k < pairs.size(); ++k) {
        auto& [client, engine] = pairs[k];
        for (const auto& [from, to] : {std::pair{client, engine}, std::pair{engine, client}}) {
          if (client < 0 || fds[2 + 2 * k + (from == engine)].revents == 0) continue;
          const ssize_t n = ::read(from, buffer, sizeof buffer);
          if (n <= 0 || !WriteAll(to, buffer, n)) {
            ::close(client);
            ::close(engine);
            client = engine = -1;
          }
        }
      }
      pairs.erase(std::remove(pairs.begin(), pairs.end(), std::pair<int, int>{-1, -1}),
                  pairs.end());
      if (fds[0].revents != 0) {
        const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (client < 0) continue;
        const int engine = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        const sockaddr_un addr = Address(engine_);
        if (::connect(engine, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
          ::close(client);
          ::close(engine);
          continue;
        }
        pairs.emplace_back(client, engine);
      }
    }
    for (const auto& [client, engine] : pairs) {
      open_.push_back(client);
      open_.push_back(engine);
    }
  }

  TempDir dir_;
  const std::string engine_;
  const std::string path_;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  bool ok_ = false;
  std::atomic<bool> frozen_{false};
  std::atomic<bool> stop_{false};
  std::vector<int> open_;  // the proxy thread's, until it has ended
  std::thread thread_;
};

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

TEST_CASE("a rolling update of containers starts each new one before an old one stops",
          "[e2e][container][rollout]") {
  const std::string socket = DockerSocket();
  if (socket.empty()) {
    WARN("SKIPPED: no dockerd (MICRO_TEST_DOCKER_SOCKET unset or missing)");
    return;
  }
  MicroDaemon daemon({"--runtime-docker-socket", socket});
  REQUIRE(daemon.WaitUntilServing());
  TempDir source;
  const auto manifest = [&](const std::string& version) {
    std::ofstream(source.path() + "/micro.yaml")
        << "name: rolled\n"
           "driver: container\n"
           "image: micro-test:latest\n"
           "command: /bin/sh\n"
           "args: [-c, 'echo "
        << version
        << "; exec sleep 300']\n"
           "instances: 2\n"
           "grace_period: 2s\n"
           "update: {min_healthy_time: 500ms, healthy_deadline: 30s}\n";
  };
  manifest("v1");
  REQUIRE(daemon.Cli({"run", "--wait", source.path()}).exit_code == 0);
  manifest("v2");
  REQUIRE(daemon.Cli({"update", source.path()}).exit_code == 0);
  int fewest = 2, samples = 0;
  nlohmann::json service;
  const auto give_up = std::chrono::steady_clock::now() + 90s;
  while (std::chrono::steady_clock::now() < give_up) {
    ProgramResult status = daemon.Cli({"status", "rolled", "--output", "json"});
    REQUIRE(status.exit_code == 0);
    service = nlohmann::json::parse(status.out)["services"][0];
    int running = 0;
    for (const auto& i : service["instances"]) running += i["status"] == "STATUS_RUNNING";
    fewest = std::min(fewest, running);
    ++samples;
    if (service["rollout"]["state"] != "ROLLOUT_STATE_RUNNING") break;
    std::this_thread::sleep_for(100ms);
  }
  INFO("samples: " << samples);
  CHECK(service["rollout"]["state"] == "ROLLOUT_STATE_SUCCEEDED");
  CHECK(fewest == 2);  // an old container stops only after a new one has run 500 ms
  REQUIRE(service["instances"].size() == 2);
  for (const auto& instance : service["instances"]) {
    CHECK(instance["revision"] == "2");
    const std::string id = instance["id"];
    const std::string n = id.substr(id.rfind('-') + 1);
    CHECK_FALSE(Containers(socket, "micro.instance=micro.rolled.latest." + n).empty());
  }
  // The old containers are gone: new ones took the numbers 2 and 3.
  CHECK(Containers(socket, "micro.instance=micro.rolled.latest.0").empty());
  CHECK(Containers(socket, "micro.instance=micro.rolled.latest.1").empty());
  CHECK(daemon.Cli({"kill", "rolled"}).exit_code == 0);
}

TEST_CASE("kill -9 of the daemon: the next one adopts the running container and its output",
          "[e2e][container][adopt]") {
  const std::string socket = DockerSocket();
  if (socket.empty()) {
    WARN("SKIPPED: no dockerd (MICRO_TEST_DOCKER_SOCKET unset or missing)");
    return;
  }
  TempDir data, source;
  std::ofstream(source.path() + "/micro.yaml")
      << "name: ticker\n"
         "driver: container\n"
         "image: micro-test:latest\n"
         "command: /bin/sh\n"
         "args: [-c, 'i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.05; done']\n"
         "grace_period: 1s\n";
  const auto status = [](const MicroDaemon& daemon) {
    ProgramResult result = daemon.Cli({"status", "ticker", "--output", "json"});
    return result.exit_code == 0 ? nlohmann::json::parse(result.out)["services"][0]
                                 : nlohmann::json();
  };
  const auto ticks = [](const MicroDaemon& daemon) {
    std::set<int> seen;
    std::istringstream out(daemon.Cli({"logs", "ticker", "--lines", "all"}).out);
    std::string line;
    while (std::getline(out, line)) {
      const size_t at = line.find("[stdout] tick ");
      if (at != std::string::npos) seen.insert(std::stoi(line.substr(at + 14)));
    }
    return seen;
  };
  std::string container;
  {
    MicroDaemon daemon({"--data-dir", data.path(), "--runtime-docker-socket", socket});
    REQUIRE(daemon.WaitUntilServing());
    REQUIRE(daemon.Cli({"run", source.path()}).exit_code == 0);
    REQUIRE(WaitFor([&] { return ticks(daemon).size() > 5; }, 60s));
    container = status(daemon)["instances"][0]["container_id"];
    ::kill(daemon.process().pid(), SIGKILL);
    daemon.process().Wait(10s);
  }
  std::this_thread::sleep_for(1s);  // about 20 ticks with no daemon
  MicroDaemon daemon({"--data-dir", data.path(), "--runtime-docker-socket", socket});
  REQUIRE(daemon.WaitUntilServing());
  REQUIRE(WaitFor(
      [&] {
        nlohmann::json s = status(daemon);
        return !s.is_null() && s["instances"][0]["status"] == "STATUS_RUNNING" &&
               s["instances"][0]["container_id"] == container;
      },
      30s));
  // The ticks written while no daemon ran came from the engine's log.
  std::set<int> seen;
  REQUIRE(WaitFor(
      [&] {
        seen = ticks(daemon);
        return !seen.empty() && *seen.rbegin() > 40;
      },
      30s));
  const int newest = *seen.rbegin();
  INFO("newest tick " << newest << ", ticks seen " << seen.size());
  CHECK(static_cast<int>(seen.size()) >= newest - 2);  // at most a line or two at the kill
  CHECK(
      daemon.Cli({"logs", "ticker", "--lines", "all"}).out.find("adopted from an earlier daemon") !=
      std::string::npos);
  // Its end is seen as for a container of its own: removed by the engine, restarted.
  RunProgram({"/usr/bin/docker", "-H", "unix://" + socket, "kill", container});
  REQUIRE(WaitFor(
      [&] {
        nlohmann::json s = status(daemon);
        return !s.is_null() && s["instances"][0]["status"] == "STATUS_RUNNING" &&
               s["instances"][0]["container_id"] != container && s["restarts"] == 1;
      },
      60s));
  CHECK(daemon.Cli({"kill", "ticker"}).exit_code == 0);
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

TEST_CASE(
    "an engine that stops answering during the stop: the second signal ends the daemon within "
    "its hard deadline",
    "[e2e][container]") {
  const std::string socket = DockerSocket();
  if (socket.empty()) {
    WARN("SKIPPED: no dockerd (MICRO_TEST_DOCKER_SOCKET unset or missing)");
    return;
  }
  FreezableProxy proxy(socket);
  REQUIRE(proxy.ok());
  // Engine calls may take an hour: only the hard deadline can end this stop.
  MicroDaemon daemon(
      {"--runtime-docker-socket", proxy.path(), "--runtime-docker-timeout-seconds", "3600"});
  REQUIRE(daemon.WaitUntilServing());
  TempDir source;
  std::ofstream(source.path() + "/micro.yaml") << "name: frozen\n"
                                                  "driver: container\n"
                                                  "image: micro-test:latest\n"
                                                  "command: /bin/sleep\n"
                                                  "args: ['300']\n"
                                                  "grace_period: 60s\n";
  ProgramResult run = daemon.Cli({"run", source.path()});
  INFO(run.out << run.err);
  REQUIRE(run.exit_code == 0);
  REQUIRE(WaitFor(
      [&] {
        ProgramResult status = daemon.Cli({"status", "frozen", "--output", "json"});
        return status.exit_code == 0 &&
               nlohmann::json::parse(status.out)["services"][0].value("instances_running", 0) == 1;
      },
      60s));
  proxy.Freeze();
  const pid_t pid = daemon.process().pid();
  REQUIRE(::kill(pid, SIGTERM) == 0);
  CHECK(daemon.process().Wait(2s) == -2);  // the stop of the container hangs in the engine
  const auto second = std::chrono::steady_clock::now();
  REQUIRE(::kill(pid, SIGTERM) == 0);
  const int code = daemon.process().Wait(30s);
  const auto took = std::chrono::steady_clock::now() - second;
  INFO(daemon.process().Stderr());
  CHECK(code == 1);
  CHECK(took < 15s);  // the hard deadline is 5 s after the second signal
  CHECK(daemon.process().Stderr().find("after the second signal") != std::string::npos);
  // The container the frozen engine never stopped; the next daemon would remove it.
  std::istringstream ids(Containers(socket, "micro.instance=micro.frozen.latest.0"));
  for (std::string id; ids >> id;) {
    RunProgram({"/usr/bin/docker", "-H", "unix://" + socket, "rm", "-f", id});
  }
}

TEST_CASE("without a Docker engine a container deploy says why", "[e2e][container]") {
  MicroDaemon daemon({"--runtime-docker-socket", "/nonexistent/docker.sock"});
  REQUIRE(daemon.WaitUntilServing());
  TempDir source;
  std::ofstream(source.path() + "/micro.yaml") << "name: nodocker\n"
                                                  "driver: container\n"
                                                  "image: busybox\n";
  ProgramResult run = daemon.Cli({"run", source.path()});
  CHECK(run.exit_code == 4);  // conflict
  CHECK(run.err.find("cannot reach the Docker engine at /nonexistent/docker.sock") !=
        std::string::npos);
}

}  // namespace
}  // namespace micro::testing
