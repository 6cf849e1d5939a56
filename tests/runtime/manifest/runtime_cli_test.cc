// `micro run / update / kill / status / logs` through the real binary, for what needs no running
// service: help, usage errors, local validation of a manifest, and status of an empty daemon.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/support/micro_daemon.h"

namespace micro::testing {
namespace {

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

ProgramResult Micro(std::vector<std::string> args) {
  args.insert(args.begin(), MicroBinary());
  return RunProgram(args);
}

// 127.0.0.1:PORT where nothing listens: a port the kernel just handed out and took back.
std::string UnusedAddress() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof addr;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) == 0);
  ::close(fd);
  return "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
}

// The folder `dir`/`name` holding micro.yaml with `text`.
std::string Manifest(const TempDir& dir, const std::string& name, const std::string& text) {
  const std::string folder = dir.path() + "/" + name;
  std::filesystem::create_directories(folder);
  std::ofstream(folder + "/micro.yaml") << text;
  return folder;
}

// Checks that `result` is a local error (exit 2) saying `what`, without calling the daemon.
void CheckLocalError(const ProgramResult& result, const std::string& what) {
  CHECK(result.exit_code == 2);
  CHECK_THAT(result.err, StartsWith("error: "));
  CHECK_THAT(result.err, Contains(what));
  CHECK_THAT(result.err, !Contains("no micro server answered"));
  CHECK(result.out.empty());
}

TEST_CASE("every runtime command has --help with an example", "[e2e][runtime_cli]") {
  for (const std::string command : {"run", "update", "kill", "status", "logs"}) {
    INFO(command);
    ProgramResult help = Micro({command, "--help"});
    CHECK(help.exit_code == 0);
    CHECK_THAT(help.out, StartsWith("Usage: micro " + command));
    CHECK_THAT(help.out, Contains("Example"));
    CHECK_THAT(help.out, Contains("--address"));
    CHECK(help.err.empty());
  }
  CHECK_THAT(Micro({"run", "--help"}).out, Contains("-e, --env KEY=VALUE ..."));
  CHECK_THAT(Micro({"logs", "--help"}).out, Contains("    --lines N"));
  CHECK_THAT(Micro({"logs", "--help"}).out,
             Contains("-n, --namespace NS"));  // -n: namespace everywhere
  ProgramResult usage = Micro({"--help"});
  for (const char* command : {"run", "update", "kill", "status", "logs"}) {
    CHECK_THAT(usage.out, Contains(std::string("\n  ") + command + " "));
  }
}

TEST_CASE("micro run refuses a bad manifest locally with exit 2, naming the field",
          "[e2e][runtime_cli]") {
  TempDir dir;
  const std::string address = UnusedAddress();
  const std::string typo = Manifest(dir, "typo", "name: hello\n\ncomand: ./hello\n");
  CheckLocalError(Micro({"run", typo, "--address", address}),
                  "micro.yaml:3: unknown field 'comand' (did you mean 'command'?)");

  const std::string zero = Manifest(dir, "zero", "name: hello\ncommand: ./hello\ninstances: 0\n");
  CheckLocalError(Micro({"run", zero, "--address", address}), "instances must be 1 to 1000");
  CheckLocalError(Micro({"run", zero, "--instances", "1001", "--address", address}),
                  "instances must be 1 to 1000, not 1001");

  const std::string fine = Manifest(dir, "fine", "name: hello\ncommand: ./hello\n");
  CheckLocalError(Micro({"run", fine, "--env", "MICRO_SERVICE_NAME=x", "--address", address}),
                  "env key 'MICRO_SERVICE_NAME' is reserved");
  // --env is repeatable: the first of several is checked too, not only the last.
  CheckLocalError(
      Micro({"run", fine, "-e", "MICRO_INSTANCE=1", "--env", "A=1", "--address", address}),
      "env key 'MICRO_INSTANCE' is reserved");
  CheckLocalError(Micro({"run", fine, "--env", "NOEQUALS", "--address", address}),
                  "--env takes KEY=VALUE");
  CheckLocalError(Micro({"run", dir.path() + "/missing", "--address", address}), "does not exist");
  CheckLocalError(Micro({"update", dir.path() + "/missing", "--address", address}),
                  "does not exist");
  CheckLocalError(Micro({"update", zero, "--address", address}), "instances must be 1 to 1000");
}

TEST_CASE("micro run needs PATH or --name with -- COMMAND", "[e2e][runtime_cli]") {
  const std::string address = UnusedAddress();
  CheckLocalError(Micro({"run", "--name", "x", "--address", address}), "missing COMMAND");
  CheckLocalError(Micro({"run", "--address", address}), "missing PATH");
  CheckLocalError(Micro({"run", "--address", address, "--", "/bin/true"}), "--name is required");
  CheckLocalError(Micro({"run", ".", "--name", "x", "--address", address, "--", "/bin/true"}),
                  "not both");
  CheckLocalError(Micro({"run", "--name", "x", "--restart", "sometimes", "--address", address, "--",
                         "/bin/true"}),
                  "--restart must be always, on-failure or never");
  CheckLocalError(Micro({"run", "--name", "bad name", "--address", address, "--", "/bin/true"}),
                  "name 'bad name'");
  CheckLocalError(Micro({"run", "/bin/true", "--address", address}), "is a program");
  CheckLocalError(Micro({"logs", "x", "--since", "soon", "--address", address}), "--since");
  CheckLocalError(Micro({"logs", "x", "--lines", "abc", "--address", address}), "--lines");
  CheckLocalError(Micro({"logs", "--address", address}), "missing NAME");
  CheckLocalError(Micro({"kill", "--address", address}), "missing NAME");
}

TEST_CASE("a valid call to a daemon that is not running says how to start one",
          "[e2e][runtime_cli]") {
  const std::string address = UnusedAddress();
  for (std::vector<std::string> args : {std::vector<std::string>{"status"},
                                        {"kill", "x"},
                                        {"logs", "x"},
                                        {"update", "x"},
                                        {"run", "--name", "x", "--", "/bin/true"}}) {
    INFO(args[0]);
    args.insert(args.begin() + 1, {"--address", address});  // before any "--"

    ProgramResult result = Micro(args);
    CHECK(result.exit_code == 6);  // unreachable
    CHECK_THAT(result.err, Contains("no micro server answered at " + address));
  }
}

// Needs the daemon's runtime service (micro.runtime.v1.Runtime) wired into `micro server`.
TEST_CASE("micro status of a daemon with nothing deployed says how to deploy",
          "[e2e][runtime_cli]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  ProgramResult status = daemon.Cli({"status"});
  CHECK(status.err.empty());
  CHECK(status.exit_code == 0);
  CHECK(status.out == "no services deployed; deploy one with 'micro run PATH'\n");
  ProgramResult json = daemon.Cli({"status", "-o", "json"});
  REQUIRE(json.exit_code == 0);
  CHECK(nlohmann::json::parse(json.out)["services"] == nlohmann::json::array());
  ProgramResult missing = daemon.Cli({"kill", "nothing"});
  CHECK(missing.exit_code == 3);  // not found
  CHECK_THAT(missing.err, StartsWith("error: NOT_FOUND: "));
}

}  // namespace
}  // namespace micro::testing
