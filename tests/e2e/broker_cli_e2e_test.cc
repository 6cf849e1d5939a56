// `micro broker` against a real daemon: subscribe in one process, publish from another, queue
// groups, namespaces, errors, help and Ctrl-C.
#include <signal.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/support/micro_daemon.h"

namespace micro::testing {
namespace {

// `micro broker subscribe <args>` running against the daemon, once its subscription is live.
struct Subscriber {
  Subscriber(const MicroDaemon& daemon, std::vector<std::string> args)
      : process(
            [&] {
              args.insert(args.begin(), {MicroBinary(), "broker", "subscribe"});
              args.insert(args.end(), {"--address", daemon.address()});
              return args;
            }(),
            daemon.CliEnv()) {
    live = WaitFor([&] { return process.Stderr().find("subscribed to") != std::string::npos; },
                   std::chrono::seconds(15));
  }

  // The lines printed so far.
  std::vector<std::string> Lines() const {
    std::vector<std::string> lines;
    std::istringstream in(process.Stdout());
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }
  bool WaitForLines(size_t n) {
    return WaitFor([&] { return Lines().size() >= n; }, std::chrono::seconds(15));
  }

  ChildProcess process;
  bool live = false;
};

ProgramResult Publish(const MicroDaemon& daemon, std::vector<std::string> args) {
  args.insert(args.begin(), {"broker", "publish"});
  return daemon.Cli(std::move(args));
}

TEST_CASE("micro broker subscribe prints what micro broker publish sends, until Ctrl-C",
          "[e2e][broker]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  Subscriber table(daemon, {"orders.*"});
  Subscriber json(daemon, {"orders.>", "-o", "json"});
  REQUIRE(table.live);
  REQUIRE(json.live);

  ProgramResult published =
      Publish(daemon, {"orders.created", "order 42", "--header", "b=2", "-H", "a=1"});
  CHECK(published.exit_code == 0);
  CHECK(published.out.empty());
  CHECK(Publish(daemon, {"orders.created.eu", "deep"}).exit_code == 0);
  CHECK(Publish(daemon, {"orders.updated", "plain"}).exit_code == 0);

  REQUIRE(table.WaitForLines(2));
  CHECK(table.Lines() ==
        std::vector<std::string>{"orders.created [a=1 b=2] order 42", "orders.updated plain"});
  REQUIRE(json.WaitForLines(3));
  auto first = nlohmann::json::parse(json.Lines()[0]);
  CHECK(first["topic"] == "orders.created");
  CHECK(first["body"] == "order 42");
  CHECK(first["header"]["a"] == "1");
  CHECK(nlohmann::json::parse(json.Lines()[1])["topic"] == "orders.created.eu");

  CHECK(table.process.Stop(SIGINT) == 0);  // Ctrl-C is the normal end
  CHECK(json.process.Stop(SIGTERM) == 0);
}

TEST_CASE("micro broker subscribers in one queue share the messages", "[e2e][broker]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  Subscriber a(daemon, {"jobs", "--queue", "workers"});
  Subscriber b(daemon, {"jobs", "-q", "workers"});
  Subscriber other_ns(daemon, {"jobs", "-n", "team-b"});
  REQUIRE(a.live);
  REQUIRE(b.live);
  REQUIRE(other_ns.live);
  for (int i = 0; i < 6; ++i) {
    REQUIRE(Publish(daemon, {"jobs", "job" + std::to_string(i)}).exit_code == 0);
  }
  REQUIRE(
      WaitFor([&] { return a.Lines().size() + b.Lines().size() >= 6; }, std::chrono::seconds(15)));
  CHECK(a.Lines().size() == 3);  // round robin over the two members
  CHECK(b.Lines().size() == 3);
  CHECK(other_ns.Lines().empty());  // another namespace sees nothing
  CHECK(Publish(daemon, {"jobs", "for-b", "-n", "team-b"}).exit_code == 0);
  REQUIRE(other_ns.WaitForLines(1));
  CHECK(other_ns.Lines()[0] == "jobs for-b");
}

TEST_CASE("micro broker reports bad topics and headers, and usage errors exit 2", "[e2e][broker]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  ProgramResult wildcard = Publish(daemon, {"orders.*", "x"});
  CHECK(wildcard.exit_code == 2);  // usage
  CHECK(wildcard.err.rfind("error: INVALID_ARGUMENT: topic 'orders.*' has the wildcard '*'", 0) ==
        0);
  ProgramResult reserved = Publish(daemon, {"t", "x", "--header", "micro-dropped=1"});
  CHECK(reserved.exit_code == 2);  // usage
  CHECK(reserved.err.find("reserved for the broker") != std::string::npos);
  ProgramResult bad_sub = daemon.Cli({"broker", "subscribe", "a.>.b"});
  CHECK(bad_sub.exit_code == 2);  // usage
  CHECK(bad_sub.err.find("INVALID_ARGUMENT") != std::string::npos);
  CHECK(bad_sub.err.find("subscribed") == std::string::npos);

  CHECK(Publish(daemon, {"t", "x", "--header", "novalue"}).exit_code == 2);
  CHECK(Publish(daemon, {"t"}).exit_code == 2);
  CHECK(daemon.Cli({"broker", "subscribe"}).exit_code == 2);
  CHECK(daemon.Cli({"broker", "frob"}).exit_code == 2);
  CHECK(RunProgram({MicroBinary(), "broker"}).exit_code == 2);
  CHECK(RunProgram({MicroBinary(), "broker", "--help"}).exit_code == 0);
  for (const char* sub : {"publish", "subscribe"}) {
    ProgramResult help = RunProgram({MicroBinary(), "broker", sub, "--help"});
    CHECK(help.exit_code == 0);
    CHECK(help.out.rfind(std::string("Usage: micro broker ") + sub, 0) == 0);
  }
}

TEST_CASE("micro broker subscribe ends with an error when the daemon stops", "[e2e][broker]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  Subscriber sub(daemon, {">"});
  REQUIRE(sub.live);
  REQUIRE(daemon.process().Stop(SIGTERM) == 0);
  CHECK(sub.process.Wait(std::chrono::seconds(15)) == 6);
  CHECK(sub.process.Stderr().find("UNAVAILABLE") != std::string::npos);
}

}  // namespace
}  // namespace micro::testing
