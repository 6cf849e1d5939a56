// A daemon that stops or dies leaves the services running, and the next one on the same data
// dir adopts them: the same processes, their output of the meantime, their restarts.
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "tests/support/micro_daemon.h"
#include "tests/support/temp_dir.h"

namespace micro::testing {
namespace {

using namespace std::chrono_literals;

nlohmann::json Instance(const MicroDaemon& daemon, const std::string& name) {
  ProgramResult status = daemon.Cli({"status", name, "-o", "json"});
  if (status.exit_code != 0) return nlohmann::json();
  nlohmann::json s = nlohmann::json::parse(status.out);
  if (s["services"].empty() || s["services"][0]["instances"].empty()) return nlohmann::json();
  return s["services"][0]["instances"][0];
}

// Whether an instance of `name` runs (with `pid`, unless 0).
bool RunningWithPid(const MicroDaemon& daemon, const std::string& name, int pid) {
  ProgramResult status = daemon.Cli({"status", name, "-o", "json"});
  if (status.exit_code != 0) return false;
  nlohmann::json s = nlohmann::json::parse(status.out);
  if (s["services"].empty()) return false;
  for (const auto& i : s["services"][0]["instances"]) {
    if (i["status"] == "STATUS_RUNNING" && (pid == 0 || i["pid"] == pid)) return true;
  }
  return false;
}

// Whether `pid` runs (a zombie does not: the test process may be its reaper).
bool Alive(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
}

// How often each "line N" appears in the service's log.
std::map<int, int> Lines(const MicroDaemon& daemon, const std::string& name) {
  std::map<int, int> seen;
  const std::string out = daemon.Cli({"logs", name, "--lines", "all"}).out;
  static const std::regex line(R"(\[stdout\] line (\d+))");
  for (auto it = std::sregex_iterator(out.begin(), out.end(), line); it != std::sregex_iterator();
       ++it) {
    ++seen[std::stoi((*it)[1].str())];
  }
  return seen;
}

TEST_CASE("kill -9 of the daemon: the next one adopts a chatty service and loses none of its lines",
          "[e2e][runtime][adopt]") {
  TempDir data;
  int pid = 0;
  {
    MicroDaemon daemon({"--data-dir", data.path()});
    REQUIRE(daemon.WaitUntilServing());
    REQUIRE(daemon
                .Cli({"run", "--name", "chatty", "--", "/bin/sh", "-c",
                      "i=0; while true; do i=$((i+1)); echo line $i; sleep 0.005; done"})
                .exit_code == 0);
    REQUIRE(WaitFor([&] { return RunningWithPid(daemon, "chatty", 0); }, 10s));
    pid = Instance(daemon, "chatty")["pid"];
    REQUIRE(WaitFor([&] { return Lines(daemon, "chatty").size() > 20; }, 10s));
    ::kill(daemon.process().pid(), SIGKILL);
    daemon.process().Wait(10s);
  }
  // A second without a daemon: the service goes on writing.
  std::this_thread::sleep_for(1s);
  REQUIRE(Alive(pid));
  MicroDaemon daemon({"--data-dir", data.path()});
  REQUIRE(daemon.WaitUntilServing());
  REQUIRE(WaitFor([&] { return RunningWithPid(daemon, "chatty", pid); }, 20s));
  // Every line from the first to the newest is in the log: those written while no daemon ran
  // too (about 100 of them). A line read just before the kill may be there twice.
  std::map<int, int> lines;
  REQUIRE(WaitFor(
      [&] {
        lines = Lines(daemon, "chatty");
        return !lines.empty() && lines.rbegin()->first > 200;
      },
      20s));
  const int newest = lines.rbegin()->first;
  int missing = 0, doubled = 0;
  for (int n = 1; n <= newest; ++n) {
    missing += lines.count(n) == 0;
    doubled += lines.count(n) && lines[n] > 1;
  }
  INFO("newest line " << newest);
  CHECK(missing == 0);
  CHECK(doubled <= 1);
  CHECK(Instance(daemon, "chatty")["restarts"] == 0);
  // Its crash after the adoption is a crash like any other: restarted, counted.
  REQUIRE(::kill(pid, SIGKILL) == 0);
  REQUIRE(WaitFor(
      [&] {
        nlohmann::json i = Instance(daemon, "chatty");
        return !i.is_null() && i["status"] == "STATUS_RUNNING" && i["pid"] != pid &&
               i["restarts"] == 1;
      },
      20s));
  CHECK(daemon.Cli({"logs", "chatty", "--lines", "all"}).out.find("exit status unknown") !=
        std::string::npos);
}

TEST_CASE("an instance that died while no daemon ran is restarted, counted as a crash",
          "[e2e][runtime][adopt]") {
  TempDir data;
  int pid = 0;
  {
    MicroDaemon daemon({"--data-dir", data.path()});
    REQUIRE(daemon.WaitUntilServing());
    REQUIRE(
        daemon.Cli({"run", "--name", "sleeper", "--", "/bin/sh", "-c", "echo up; exec sleep 300"})
            .exit_code == 0);
    REQUIRE(WaitFor([&] { return RunningWithPid(daemon, "sleeper", 0); }, 10s));
    pid = Instance(daemon, "sleeper")["pid"];
    ::kill(daemon.process().pid(), SIGKILL);
    daemon.process().Wait(10s);
  }
  REQUIRE(::kill(pid, SIGKILL) == 0);
  MicroDaemon daemon({"--data-dir", data.path()});
  REQUIRE(daemon.WaitUntilServing());
  REQUIRE(WaitFor(
      [&] {
        nlohmann::json i = Instance(daemon, "sleeper");
        return !i.is_null() && i["status"] == "STATUS_RUNNING" && i["pid"] != pid &&
               i["restarts"] == 1;
      },
      20s));
  CHECK(daemon.Cli({"logs", "sleeper"}).out.find("exited while no daemon was running") !=
        std::string::npos);
}

TEST_CASE("a graceful stop with --keep-services hands the services to a replaced binary",
          "[e2e][runtime][adopt]") {
  TempDir data, bin;
  // Two copies of the binary: the second daemon runs from another file, as after an upgrade.
  const std::string old_binary = bin.path() + "/micro-old", new_binary = bin.path() + "/micro-new";
  std::filesystem::copy_file(MicroBinary(), old_binary);
  std::filesystem::copy_file(MicroBinary(), new_binary);
  int pid = 0;
  {
    MicroDaemon daemon({"--data-dir", data.path(), "--keep-services"}, {}, old_binary);
    REQUIRE(daemon.WaitUntilServing());
    REQUIRE(daemon.Cli({"run", "--name", "kept", "--instances", "2", "--", "/bin/sleep", "300"})
                .exit_code == 0);
    REQUIRE(WaitFor([&] { return RunningWithPid(daemon, "kept", 0); }, 10s));
    pid = Instance(daemon, "kept")["pid"];
    CHECK(daemon.process().Stop(SIGTERM, 30s) == 0);
  }
  std::filesystem::remove(old_binary);
  REQUIRE(Alive(pid));  // still running without a daemon
  MicroDaemon daemon({"--data-dir", data.path()}, {}, new_binary);
  REQUIRE(daemon.WaitUntilServing());
  REQUIRE(WaitFor([&] { return RunningWithPid(daemon, "kept", pid); }, 20s));
  ProgramResult status = daemon.Cli({"status", "kept", "-o", "json"});
  nlohmann::json service = nlohmann::json::parse(status.out)["services"][0];
  CHECK(service["instances_running"] == 2);
  CHECK(service["restarts"] == 0);
  // Without --keep-services a graceful stop takes them down.
  CHECK(daemon.process().Stop(SIGTERM, 30s) == 0);
  CHECK_FALSE(Alive(pid));
}

}  // namespace
}  // namespace micro::testing
