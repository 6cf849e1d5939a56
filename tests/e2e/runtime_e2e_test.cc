// The runtime through the real binary: `micro run/status/logs/update/kill` against a real
// daemon supervising real processes, and the daemon's restart (graceful and kill -9).
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "tests/support/micro_daemon.h"
#include "tests/support/temp_dir.h"

namespace micro::testing {
namespace {

using namespace std::chrono_literals;

// A marker unique to this test run, put into a service's environment.
std::string Marker(const std::string& what) {
  return "E2E_MARK=" + what + "-" + std::to_string(::getpid());
}

nlohmann::json Status(const MicroDaemon& daemon, const std::string& name = "") {
  std::vector<std::string> args{"status"};
  if (!name.empty()) args.push_back(name);
  args.insert(args.end(), {"--output", "json"});
  ProgramResult result = daemon.Cli(args);
  if (result.exit_code != 0) return nlohmann::json();
  return nlohmann::json::parse(result.out);
}

int Running(const MicroDaemon& daemon, const std::string& name) {
  auto status = Status(daemon, name);
  if (status.is_null() || status["services"].empty()) return -1;
  return status["services"][0].value("instances_running", 0);
}

TEST_CASE("run a prebuilt program, see it in status and logs, kill it", "[e2e][runtime]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  const std::string marker = Marker("web");
  ProgramResult run = daemon.Cli({"run", "--name", "web", "--instances", "2", "--env", marker, "--",
                                  "/bin/sh", "-c",
                                  "echo hello from $MICRO_SERVICE_NAME; setsid sleep 300 & "
                                  "sleep 300"});
  REQUIRE(run.exit_code == 0);
  CHECK(run.out.find("web") != std::string::npos);
  REQUIRE(WaitFor([&] { return Running(daemon, "web") == 2; }, 10s));

  auto status = Status(daemon, "web");
  const auto& service = status["services"][0];
  CHECK(service["status"] == "STATUS_RUNNING");
  CHECK(service["instances_desired"] == 2);
  REQUIRE(service["instances"].size() == 2);
  for (const auto& instance : service["instances"]) {
    CHECK(instance["pid"].get<int>() > 0);
    CHECK(std::filesystem::exists("/proc/" + std::to_string(instance["pid"].get<int>())));
  }
  ProgramResult table = daemon.Cli({"status"});
  CHECK(table.exit_code == 0);
  CHECK(table.out.find("running") != std::string::npos);

  REQUIRE(WaitFor(
      [&] {
        ProgramResult logs = daemon.Cli({"logs", "web"});
        size_t count = 0;
        for (size_t at = 0; (at = logs.out.find("hello from web", at)) != std::string::npos; ++at) {
          ++count;
        }
        return count == 2;
      },
      10s));
  ProgramResult one = daemon.Cli({"logs", "web", "--instance", "1", "--output", "json"});
  REQUIRE(one.exit_code == 0);
  CHECK(one.out.find("\"web-1\"") != std::string::npos);
  CHECK(one.out.find("\"web-0\"") == std::string::npos);

  // Three processes per instance: the shell, its sleep, and the sleep that escaped with setsid.
  REQUIRE(WaitFor([&] { return LivePidsWithEnv(marker).size() == 6; }, 10s));
  ProgramResult kill = daemon.Cli({"kill", "web"});
  CHECK(kill.exit_code == 0);
  // Kill returns once everything is gone: grandchildren that left the group too.
  CHECK(LivePidsWithEnv(marker).empty());
  CHECK(daemon.Cli({"status", "web"}).exit_code == 3);  // not found
  // The logs outlive the service.
  CHECK(daemon.Cli({"logs", "web"}).out.find("hello from web") != std::string::npos);
}

TEST_CASE("a dotted name and a dotted version are two services: killing one spares the other",
          "[e2e][runtime]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  const std::string marker_a = Marker("dotted-name"), marker_b = Marker("dotted-version");
  // Both used to become instance micro.api.v2.1.0: one cgroup, one driver entry.
  REQUIRE(daemon
              .Cli({"run", "--name", "api.v2", "--version", "1", "--env", marker_a, "--",
                    "/bin/sleep", "300"})
              .exit_code == 0);
  REQUIRE(daemon
              .Cli({"run", "--name", "api", "--version", "v2.1", "--env", marker_b, "--",
                    "/bin/sleep", "300"})
              .exit_code == 0);
  REQUIRE(WaitFor(
      [&] {
        return LivePidsWithEnv(marker_a).size() == 1 && LivePidsWithEnv(marker_b).size() == 1;
      },
      10s));
  const std::set<int> b_before = LivePidsWithEnv(marker_b);
  REQUIRE(daemon.Cli({"kill", "api.v2"}).exit_code == 0);
  CHECK(LivePidsWithEnv(marker_a).empty());
  CHECK(LivePidsWithEnv(marker_b) == b_before);
  auto status = Status(daemon, "api");
  REQUIRE(!status.is_null());
  REQUIRE(status["services"].size() == 1);
  CHECK(status["services"][0]["instances"][0].value("restarts", 0) == 0);
  CHECK(Running(daemon, "api") == 1);
}

// A unix socket that listens and never accepts: an engine that hangs.
class SilentSocket {
 public:
  SilentSocket() : path_(dir_.path() + "/docker.sock") {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path_.copy(addr.sun_path, sizeof addr.sun_path - 1);
    ok_ = fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
          ::listen(fd_, 64) == 0;
  }
  ~SilentSocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return ok_; }
  const std::string& path() const { return path_; }

 private:
  TempDir dir_;
  std::string path_;
  int fd_ = -1;
  bool ok_ = false;
};

TEST_CASE("a Docker socket that never answers neither hangs the start nor the stop",
          "[e2e][runtime]") {
  SilentSocket engine;
  REQUIRE(engine.ok());
  MicroDaemon daemon({"--runtime-docker-socket", engine.path()});
  REQUIRE(daemon.WaitUntilServing(30s));
  CHECK(daemon.Cli({"status"}).exit_code == 0);
  TempDir source;
  std::ofstream(source.path() + "/micro.yaml") << "name: boxed\n"
                                                  "driver: container\n"
                                                  "image: alpine\n";
  ProgramResult boxed = daemon.Cli({"run", source.path()});
  CHECK(boxed.exit_code == 4);  // conflict
  CHECK(boxed.err.find("did not answer") != std::string::npos);
  CHECK(daemon.process().Stop(SIGTERM, 30s) == 0);
  CHECK(daemon.process().Stderr().find("did not answer") != std::string::npos);
}

TEST_CASE(
    "under a low open-file limit a deploy past the instance budget is refused and the "
    "daemon keeps answering",
    "[e2e][runtime]") {
  // 400 descriptors: 256 kept for the daemon, room for 72 instances of 2 each.
  TempDir dir;
  const std::string data_dir = dir.path() + "/data";
  ChildProcess server({"/usr/bin/prlimit", "--nofile=400:400", MicroBinary(), "server", "--address",
                       "127.0.0.1:0", "--data-dir", data_dir});
  std::string address;
  REQUIRE(WaitFor(
      [&] {
        std::ifstream in(data_dir + "/server.json");
        if (!in) return false;
        auto json = nlohmann::json::parse(in, nullptr, false);
        if (json.is_discarded() || !json.contains("grpc_address")) return false;
        address = json["grpc_address"].get<std::string>();
        return true;
      },
      20s));
  const std::string token = AdminToken(data_dir, address);
  auto cli = [&](std::vector<std::string> args) {
    args.insert(args.begin(), MicroBinary());
    auto end = std::find(args.begin(), args.end(), "--");
    args.insert(end, {"--address", address});
    return RunProgram(args, {{"MICRO_TOKEN", token}});
  };
  const std::string marker = Marker("fd-budget");
  for (const char* name : {"many-a", "many-b"}) {
    ProgramResult run = cli(
        {"run", "--name", name, "--instances", "30", "--env", marker, "--", "/bin/sleep", "300"});
    REQUIRE(run.exit_code == 0);
  }
  REQUIRE(WaitFor([&] { return LivePidsWithEnv(marker).size() == 60; }, 30s));
  ProgramResult refused = cli(
      {"run", "--name", "many-c", "--instances", "30", "--env", marker, "--", "/bin/sleep", "300"});
  CHECK(refused.exit_code == 1);
  CHECK(refused.err.find("RESOURCE_EXHAUSTED") != std::string::npos);
  CHECK(refused.err.find("ulimit -n") != std::string::npos);
  CHECK(refused.err.find("400") != std::string::npos);
  // What fits still deploys, and the daemon answers.
  CHECK(
      cli({"run", "--name", "few", "--instances", "12", "--env", marker, "--", "/bin/sleep", "300"})
          .exit_code == 0);
  TempDir source;
  std::ofstream(source.path() + "/micro.yaml") << "name: many-a\n"
                                                  "command: /bin/sleep\n"
                                                  "args: ['300']\n"
                                                  "instances: 31\n";
  ProgramResult grown = cli({"update", source.path()});
  CHECK(grown.exit_code == 1);
  CHECK(grown.err.find("RESOURCE_EXHAUSTED") != std::string::npos);
  ProgramResult status = cli({"status"});
  CHECK(status.exit_code == 0);
  CHECK(status.out.find("many-b") != std::string::npos);
  CHECK(server.Stop(SIGTERM, 30s) == 0);
  CHECK(WaitFor([&] { return LivePidsWithEnv(marker).empty(); }, 10s));
}

TEST_CASE("logs -f -n 0 prints only the lines written after it started", "[e2e][runtime]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  REQUIRE(daemon
              .Cli({"run", "--name", "ticker", "--", "/bin/sh", "-c",
                    "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.05; done"})
              .exit_code == 0);
  auto last_tick = [](const std::string& text) {
    int last = -1;
    for (size_t at = 0; (at = text.find("tick ", at)) != std::string::npos; at += 5) {
      last = std::max(last, std::atoi(text.c_str() + at + 5));
    }
    return last;
  };
  auto first_tick = [](const std::string& text) {
    const size_t at = text.find("tick ");
    return at == std::string::npos ? -1 : std::atoi(text.c_str() + at + 5);
  };
  REQUIRE(WaitFor([&] { return last_tick(daemon.Cli({"logs", "ticker"}).out) >= 5; }, 10s));
  const int seen = last_tick(daemon.Cli({"logs", "ticker", "--lines", "all"}).out);
  // -n is the namespace here too, as in every command.
  CHECK(daemon.Cli({"logs", "ticker", "-n", "micro", "--tail", "1"}).exit_code == 0);
  CHECK(daemon.Cli({"logs", "ticker", "-n", "elsewhere"}).exit_code == 3);  // not found
  ChildProcess follower(
      {MicroBinary(), "logs", "ticker", "-f", "--tail", "0", "--address", daemon.address()},
      daemon.CliEnv());
  REQUIRE(WaitFor([&] { return last_tick(follower.Stdout()) >= seen + 5; }, 10s));
  CHECK(first_tick(follower.Stdout()) > seen);
  CHECK(follower.Stop(SIGINT) == 0);
}

TEST_CASE("bad deploys get clear errors and change nothing", "[e2e][runtime]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  ProgramResult missing =
      daemon.Cli({"run", "--name", "ghost", "--restart", "never", "--", "/no/such/binary"});
  // Either the CLI refuses it at once, or the daemon reports the exec error in the status.
  if (missing.exit_code == 0) {
    REQUIRE(WaitFor(
        [&] { return Status(daemon, "ghost")["services"][0]["status"] == "STATUS_ERROR"; }, 10s));
    CHECK(Status(daemon, "ghost")["services"][0]["error"] ==
          "exec /no/such/binary: No such file or directory");
  } else {
    CHECK(missing.err.find("/no/such/binary") != std::string::npos);
  }
  ProgramResult bad_name = daemon.Cli({"run", "--name", "bad name", "--", "/bin/true"});
  CHECK(bad_name.exit_code != 0);
  CHECK(bad_name.err.find("name") != std::string::npos);
  ProgramResult unknown = daemon.Cli({"kill", "nothing-here"});
  CHECK(unknown.exit_code == 3);  // not found
  CHECK(unknown.err.find("not deployed") != std::string::npos);
  REQUIRE(daemon.Cli({"run", "--name", "dup", "--", "/bin/sleep", "300"}).exit_code == 0);
  ProgramResult dup = daemon.Cli({"run", "--name", "dup", "--", "/bin/sleep", "300"});
  CHECK(dup.exit_code == 4);  // conflict
  CHECK(dup.err.find("already deployed") != std::string::npos);
}

TEST_CASE("a manifest folder with a build command deploys as it is", "[e2e][runtime]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  TempDir source;
  std::ofstream(source.path() + "/micro.yaml")
      << "name: built\n"
         "version: v2\n"
         "build: printf '#!/bin/sh\\necho built ok\\nexec sleep 300\\n' > app && chmod +x app\n"
         "command: ./app\n"
         "instances: 1\n";
  ProgramResult run = daemon.Cli({"run", source.path()});
  REQUIRE(run.exit_code == 0);
  REQUIRE(WaitFor([&] { return Running(daemon, "built") == 1; }, 15s));
  auto service = Status(daemon, "built")["services"][0];
  CHECK(service["version"] == "v2");
  REQUIRE(WaitFor(
      [&] {
        return daemon.Cli({"logs", "built"}).out.find("built ok") != std::string::npos;
      },
      10s));
  CHECK(daemon.Cli({"logs", "built", "--instance", "build"}).out.find("building") !=
        std::string::npos);
  CHECK(daemon.Cli({"kill", "built"}).exit_code == 0);
}

TEST_CASE("a grpc health check against a live server makes the service running", "[e2e][runtime]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  TempDir source;
  // The daemon itself serves grpc.health.v1.Health: a probe of it must pass.
  std::ofstream(source.path() + "/micro.yaml")
      << "name: probed\n"
         "command: /bin/sleep\n"
         "args: ['300']\n"
         "health_check: {type: grpc, address: '"
      << daemon.address() << "', interval: 200ms, timeout: 150ms}\n";
  REQUIRE(daemon.Cli({"run", source.path()}).exit_code == 0);
  CHECK(WaitFor([&] { return Running(daemon, "probed") == 1; }, 10s));
  CHECK(daemon.Cli({"kill", "probed"}).exit_code == 0);
}

TEST_CASE("while leftovers of a killed daemon are cleaned up, runtime calls wait",
          "[e2e][runtime]") {
  TempDir data;
  const std::string marker = Marker("restoring");
  {
    MicroDaemon daemon({"--data-dir", data.path()});
    REQUIRE(daemon.WaitUntilServing());
    // Ignores SIGTERM: the next daemon needs its 5 s SIGKILL deadline to clean it up.
    REQUIRE(daemon
                .Cli({"run", "--name", "deaf", "--env", marker, "--", "/bin/sh", "-c",
                      "trap '' TERM; while true; do sleep 1; done"})
                .exit_code == 0);
    REQUIRE(WaitFor([&] { return Running(daemon, "deaf") == 1; }, 10s));
    ::kill(daemon.process().pid(), SIGKILL);
    daemon.process().Wait(10s);
  }
  // Without its record the instance cannot be adopted: it is a leftover to remove.
  for (const auto& entry : std::filesystem::directory_iterator(data.path() + "/runtime")) {
    if (entry.path().extension() == ".instance") std::filesystem::remove(entry.path());
  }
  MicroDaemon daemon({"--data-dir", data.path()});
  REQUIRE(daemon.WaitUntilServing());
  ProgramResult early = daemon.Cli({"run", "--name", "deaf", "--", "/bin/sleep", "300"});
  CHECK(early.exit_code == 6);  // unreachable
  CHECK(early.err.find("still restoring") != std::string::npos);
  REQUIRE(WaitFor([&] { return Running(daemon, "deaf") == 1; }, 20s));
  // The restored instance and nothing else (its shell, and at times that shell's sleep): the
  // early run changed nothing.
  CHECK(WaitFor(
      [&] {
        int shells = 0;
        for (int pid : LivePidsWithEnv(marker)) {
          std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
          std::string name;
          comm >> name;
          shells += name == "sh";
        }
        return shells == 1;
      },
      5s));
  // It ignores SIGTERM: kill waits out its 10 s grace period, and the CLI waits with it.
  CHECK(daemon.Cli({"kill", "deaf"}).exit_code == 0);
  CHECK(LivePidsWithEnv(marker).empty());
}

TEST_CASE("a service that writes without pause does not stall the daemon", "[e2e][runtime]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  TempDir source;
  std::ofstream(source.path() + "/micro.yaml") << "name: chatty\n"
                                                  "command: /usr/bin/yes\n"
                                                  "logs: {max_file_size: 1MiB, max_files: 1}\n";
  REQUIRE(daemon.Cli({"run", source.path()}).exit_code == 0);
  // Its output spool takes disk only for what the daemon has not read yet: `yes` writes far
  // faster than anything can record it, and the daemon skips ahead (a note in the log) rather
  // than let the spool grow with it.
  std::this_thread::sleep_for(1s);
  uintmax_t written = 0, allocated = 0;
  for (const auto& entry : std::filesystem::directory_iterator(daemon.data_dir() + "/runtime")) {
    struct stat st {};
    if (entry.path().extension() != ".out" || ::stat(entry.path().c_str(), &st) != 0) continue;
    written += uintmax_t(st.st_size);
    allocated += uintmax_t(st.st_blocks) * 512;
  }
  INFO("written " << written << ", on disk " << allocated);
  CHECK(written > (64u << 20));
  CHECK(allocated < written / 2);
  CHECK(daemon.Cli({"logs", "chatty", "--lines", "all"}).out.find("bytes of output skipped") !=
        std::string::npos);
  const auto before = std::chrono::steady_clock::now();
  CHECK(Running(daemon, "chatty") == 1);
  CHECK(daemon.Cli({"kill", "chatty"}).exit_code == 0);
  CHECK(std::chrono::steady_clock::now() - before < 10s);
  // Rotation kept the disk use to the current file and one rotated file.
  uintmax_t bytes = 0;
  for (const auto& entry :
       std::filesystem::recursive_directory_iterator(daemon.data_dir() + "/logs")) {
    if (entry.is_regular_file()) bytes += entry.file_size();
  }
  CHECK(bytes <= 2u * (1 << 20) + (64 << 10));
}

TEST_CASE("a second signal stops the daemon and its services at once", "[e2e][runtime]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  const std::string marker = Marker("second-signal");
  REQUIRE(daemon
              .Cli({"run", "--name", "stubborn", "--env", marker, "--", "/bin/sh", "-c",
                    "trap '' TERM; sleep 300 & wait; sleep 300"})
              .exit_code == 0);
  REQUIRE(WaitFor([&] { return Running(daemon, "stubborn") == 1; }, 10s));
  ::kill(daemon.process().pid(), SIGTERM);
  std::this_thread::sleep_for(300ms);
  CHECK(daemon.process().running());  // waiting out the service's 10 s grace period
  const auto before = std::chrono::steady_clock::now();
  CHECK(daemon.process().Stop(SIGTERM, 10s) == 0);
  CHECK(std::chrono::steady_clock::now() - before < 5s);
  CHECK(LivePidsWithEnv(marker).empty());
}

TEST_CASE("logs -f follows across a restart", "[e2e][runtime]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  // Each run prints its pid and crashes after a moment; backoff is short.
  TempDir source;
  std::ofstream(source.path() + "/micro.yaml") << "name: flaky\n"
                                                  "command: /bin/sh\n"
                                                  "args: [-c, 'echo run $$; sleep 0.3; exit 1']\n"
                                                  "backoff: {initial: 100ms, max: 200ms}\n";
  REQUIRE(daemon.Cli({"run", source.path()}).exit_code == 0);
  ChildProcess follower({MicroBinary(), "logs", "flaky", "-f", "--address", daemon.address()},
                        daemon.CliEnv());
  REQUIRE(WaitFor(
      [&] {
        const std::string out = follower.Stdout();
        size_t runs = 0;
        for (size_t at = 0; (at = out.find("run ", at)) != std::string::npos; ++at) ++runs;
        return runs >= 3;
      },
      15s));
  CHECK(follower.running());
  // Removing the service ends the stream cleanly.
  REQUIRE(daemon.Cli({"kill", "flaky"}).exit_code == 0);
  CHECK(follower.Wait(10s) == 0);
}

TEST_CASE("after kill -9 of the daemon the next one adopts the services, without duplicates",
          "[e2e][runtime]") {
  TempDir data;
  const std::string marker_a = Marker("restore-a"), marker_b = Marker("restore-b");
  std::set<int> before_a, before_b;
  {
    MicroDaemon daemon({"--data-dir", data.path()});
    REQUIRE(daemon.WaitUntilServing());
    REQUIRE(daemon
                .Cli({"run", "--name", "alpha", "--instances", "3", "--env", marker_a, "--",
                      "/bin/sleep", "300"})
                .exit_code == 0);
    REQUIRE(daemon
                .Cli({"run", "--name", "beta", "--env", marker_b, "--", "/bin/sh", "-c",
                      "sleep 300 & wait"})
                .exit_code == 0);
    REQUIRE(WaitFor([&] { return Running(daemon, "alpha") == 3 && Running(daemon, "beta") == 1; },
                    10s));
    before_a = LivePidsWithEnv(marker_a);
    before_b = LivePidsWithEnv(marker_b);
    REQUIRE(before_a.size() == 3);
    REQUIRE(before_b.size() == 2);
    ::kill(daemon.process().pid(), SIGKILL);
    daemon.process().Wait(10s);
    // The instances live on without a daemon.
    CHECK(LivePidsWithEnv(marker_a).size() == 3);
  }
  MicroDaemon daemon({"--data-dir", data.path()});
  REQUIRE(daemon.WaitUntilServing());
  const bool restored =
      WaitFor([&] { return Running(daemon, "alpha") == 3 && Running(daemon, "beta") == 1; }, 20s);
  INFO("status: " << Status(daemon).dump() << "\ndaemon log: " << daemon.process().Stderr());
  REQUIRE(restored);
  // Exactly the processes that ran before: adopted, not started again.
  const std::set<int> after_a = LivePidsWithEnv(marker_a), after_b = LivePidsWithEnv(marker_b);
  CHECK(after_a == before_a);
  CHECK(after_b == before_b);
  CHECK(daemon.Cli({"logs", "alpha"}).out.find("adopted from an earlier daemon") !=
        std::string::npos);
  auto status = Status(daemon);
  CHECK(status["services"].size() == 2);

  // A graceful stop takes the services down with the daemon...
  CHECK(daemon.process().Stop(SIGTERM, 30s) == 0);
  CHECK(LivePidsWithEnv(marker_a).empty());
  CHECK(LivePidsWithEnv(marker_b).empty());
  // ...and the next daemon starts them again.
  MicroDaemon next({"--data-dir", data.path()});
  REQUIRE(next.WaitUntilServing());
  CHECK(WaitFor([&] { return Running(next, "alpha") == 3 && Running(next, "beta") == 1; }, 20s));
  CHECK(WaitFor(
      [&] {
        return LivePidsWithEnv(marker_a).size() == 3 && LivePidsWithEnv(marker_b).size() == 2;
      },
      10s));
  CHECK(next.process().Stop(SIGTERM, 30s) == 0);
  CHECK(LivePidsWithEnv(marker_a).empty());
}

TEST_CASE("acknowledged deploys and removals survive kill -9 of the daemon", "[e2e][runtime]") {
  TempDir data;
  const std::string kept = Marker("durable-kept"), gone = Marker("durable-gone");
  {
    MicroDaemon daemon({"--data-dir", data.path()});
    REQUIRE(daemon.WaitUntilServing());
    REQUIRE(
        daemon.Cli({"run", "--name", "gone", "--env", gone, "--", "/bin/sleep", "300"}).exit_code ==
        0);
    REQUIRE(daemon.Cli({"kill", "gone"}).exit_code == 0);
    REQUIRE(
        daemon.Cli({"run", "--name", "kept", "--env", kept, "--", "/bin/sleep", "300"}).exit_code ==
        0);
    // At once, without waiting for it to run: the answer alone says it is on disk.
    ::kill(daemon.process().pid(), SIGKILL);
    daemon.process().Wait(10s);
  }
  MicroDaemon daemon({"--data-dir", data.path()});
  REQUIRE(daemon.WaitUntilServing());
  const bool restored = WaitFor([&] { return Running(daemon, "kept") == 1; }, 20s);
  INFO("status: " << Status(daemon).dump() << "\ndaemon log: " << daemon.process().Stderr());
  REQUIRE(restored);
  CHECK(Status(daemon)["services"].size() == 1);  // the killed one stays gone
  CHECK(LivePidsWithEnv(gone).empty());
  CHECK(daemon.process().Stop(SIGTERM, 30s) == 0);
  CHECK(LivePidsWithEnv(kept).empty());
}

TEST_CASE("micro run --wait follows the deploy to running, or to its failure with the reason",
          "[e2e][runtime]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  ProgramResult ok = daemon.Cli({"run", "--wait", "--name", "ok", "--", "/bin/sleep", "1000"});
  CHECK(ok.exit_code == 0);
  CHECK(ok.err.find("ok: 1/1 instance(s) running") != std::string::npos);

  ProgramResult crash = daemon.Cli({"run", "--wait", "--name", "bad", "--restart", "never", "--",
                                    "/bin/sh", "-c", "echo boom; exit 3"});
  CHECK(crash.exit_code == 1);
  CHECK(crash.err.find("error: bad did not start") != std::string::npos);
  CHECK(crash.out.find("[stdout] boom") != std::string::npos);  // its last lines

  TempDir dir;
  std::ofstream(dir.path() + "/micro.yaml")
      << "name: b\ncommand: ./x\nbuild: echo compiling; echo oops >&2; exit 1\n";
  ProgramResult build = daemon.Cli({"run", "--wait", dir.path()});
  CHECK(build.exit_code == 1);
  CHECK(build.out.find("[stdout] compiling") != std::string::npos);  // the build output
  CHECK(build.out.find("[stderr] oops") != std::string::npos);
  CHECK(build.err.find("build failed") != std::string::npos);

  ProgramResult slow = daemon.Cli({"update", "ok", "--wait", "--wait-timeout", "30"});
  CHECK(slow.exit_code == 0);
  CHECK(daemon.Cli({"run", "--wait", "--wait-timeout", "0", "--name", "z", "--", "/bin/true"})
            .exit_code == 2);
}

TEST_CASE("a long stop shows its progress on a terminal and nothing in a pipe", "[e2e][runtime]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  TempDir dir;
  std::ofstream(dir.path() + "/micro.yaml")
      << "name: stubborn\ncommand: /bin/sh\nargs: [-c, \"trap '' TERM; while true; do sleep "
         "0.2; done\"]\ngrace_period: 3\n";
  REQUIRE(daemon.Cli({"run", "--wait", dir.path()}).exit_code == 0);
  // `script` gives the command a terminal: the seconds of the grace period are shown.
  std::string command = "'" + MicroBinary() + "' kill stubborn --address " + daemon.address();
  ProgramResult on_terminal =
      RunProgram({"/usr/bin/script", "-qec", command, "/dev/null"}, daemon.CliEnv());
  CHECK(on_terminal.exit_code == 0);
  CHECK(on_terminal.out.find("stopping stubborn... 1 s") != std::string::npos);
  CHECK(on_terminal.out.find("stopped and removed stubborn") != std::string::npos);
  REQUIRE(daemon.Cli({"run", "--wait", dir.path()}).exit_code == 0);
  ProgramResult piped = daemon.Cli({"kill", "stubborn"});
  CHECK(piped.exit_code == 0);
  CHECK(piped.err.empty());
  CHECK(piped.out == "stopped and removed stubborn\n");
}

}  // namespace
}  // namespace micro::testing
