// The `micro` CLI against a real daemon: output, errors and help.
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "micro/registry/v1/registry.grpc.pb.h"
#include "tests/support/micro_daemon.h"
#include "tests/support/temp_dir.h"

namespace micro::testing {
namespace {

namespace v1 = micro::registry::v1;

void RegisterGreeter(const MicroDaemon& daemon, const std::string& ns = "") {
  auto stub = v1::Registry::NewStub(daemon.Channel());
  for (const char* version : {"1.0.0", "2.0.0"}) {
    v1::RegisterRequest request;
    v1::Service* s = request.mutable_service();
    s->set_name("greeter");
    s->set_version(version);
    (*s->mutable_metadata())["team"] = "core";
    (*s->add_endpoints()->mutable_metadata())["stream"] = "false";
    s->mutable_endpoints(0)->set_name("Greeter.Hello");
    for (const char* id : {"g-1", "g-2", "g-3"}) {
      v1::Node* n = s->add_nodes();
      n->set_id(id);
      n->set_address("10.0.0.1:7000");
      (*n->mutable_metadata())["zone"] = "eu-1";
    }
    grpc::ClientContext context;
    if (!ns.empty()) context.AddMetadata("micro-namespace", ns);
    v1::RegisterResponse response;
    REQUIRE(stub->Register(&context, request, &response).ok());
  }
}

// A loopback port with nothing listening on it.
int UnusedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

TEST_CASE("micro services lists services as a table and as JSON", "[e2e][cli]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  ProgramResult empty = daemon.Cli({"services"});
  CHECK(empty.exit_code == 0);
  CHECK(empty.out == "no services registered\n");

  RegisterGreeter(daemon);
  ProgramResult table = daemon.Cli({"services"});
  CHECK(table.exit_code == 0);
  CHECK(table.out ==
        "NAME     VERSION  NODES\n"
        "greeter  1.0.0    3\n"
        "greeter  2.0.0    3\n");

  ProgramResult json = daemon.Cli({"services", "--output", "json"});
  REQUIRE(json.exit_code == 0);
  auto parsed = nlohmann::json::parse(json.out);
  REQUIRE(parsed["services"].size() == 2);
  CHECK(parsed["services"][0]["name"] == "greeter");
  CHECK(parsed["services"][1]["nodes"][2]["id"] == "g-3");
}

TEST_CASE("micro services NAME shows versions, nodes, endpoints and metadata", "[e2e][cli]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  RegisterGreeter(daemon);
  ProgramResult one = daemon.Cli({"services", "greeter", "--version", "2.0.0"});
  CHECK(one.exit_code == 0);
  CHECK(one.out ==
        "service   greeter\n"
        "version   2.0.0\n"
        "metadata  team=core\n"
        "\n"
        "ENDPOINT       METADATA\n"
        "Greeter.Hello  stream=false\n"
        "\n"
        "ID   ADDRESS        METADATA\n"
        "g-1  10.0.0.1:7000  zone=eu-1\n"
        "g-2  10.0.0.1:7000  zone=eu-1\n"
        "g-3  10.0.0.1:7000  zone=eu-1\n");

  ProgramResult both = daemon.Cli({"services", "greeter"});
  CHECK(both.out.find("version   1.0.0") != std::string::npos);
  CHECK(both.out.find("version   2.0.0") != std::string::npos);

  ProgramResult missing = daemon.Cli({"services", "ghost"});
  CHECK(missing.exit_code == 3);  // not found
  CHECK(missing.err ==
        "error: NOT_FOUND: service 'ghost' is not registered in namespace 'micro'\n");
}

TEST_CASE("the namespace comes from --namespace or MICRO_NAMESPACE", "[e2e][cli]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  RegisterGreeter(daemon, "team-b");
  CHECK(daemon.Cli({"services"}).out == "no services registered\n");
  CHECK(daemon.Cli({"services", "-n", "team-b"}).out.find("greeter") != std::string::npos);
  std::map<std::string, std::string> vars = daemon.CliEnv();
  vars["MICRO_ADDRESS"] = daemon.address();
  vars["MICRO_NAMESPACE"] = "team-b";
  ProgramResult env = RunProgram({MicroBinary(), "services"}, vars);
  CHECK(env.exit_code == 0);
  CHECK(env.out.find("greeter") != std::string::npos);
  ProgramResult bad = daemon.Cli({"services", "-n", "Team B"});
  CHECK(bad.exit_code == 2);  // usage
  CHECK(bad.err.rfind("error: INVALID_ARGUMENT: namespace 'Team B'", 0) == 0);
}

TEST_CASE("micro health shows the daemon's status and version", "[e2e][cli]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  ProgramResult table = daemon.Cli({"health"});
  CHECK(table.exit_code == 0);
  CHECK(table.out.rfind("STATUS", 0) == 0);
  CHECK(table.out.find("SERVING") != std::string::npos);
  CHECK(table.out.find(daemon.address()) != std::string::npos);

  ProgramResult json = daemon.Cli({"health", "-o", "json"});
  REQUIRE(json.exit_code == 0);
  auto parsed = nlohmann::json::parse(json.out);
  CHECK(parsed["status"] == "SERVING");
  CHECK(parsed["server"]["pid"] == daemon.process().pid());
  CHECK(parsed["server"]["version"] ==
        nlohmann::json::parse(RunProgram({MicroBinary(), "version", "-o", "json"}).out)["version"]);
}

TEST_CASE("with no daemon the CLI says where it looked and how to start one", "[e2e][cli]") {
  const std::string address = "127.0.0.1:" + std::to_string(UnusedPort());
  for (const char* command : {"services", "health"}) {
    INFO(command);
    ProgramResult result = RunProgram({MicroBinary(), command, "--address", address});
    CHECK(result.exit_code == 6);  // unreachable
    CHECK(result.err ==
          "error: UNAVAILABLE: no micro server answered at " + address +
              " (from --address); start one with 'micro server', or point --address / "
              "MICRO_ADDRESS at a running one\n");
  }
}

TEST_CASE("every command has --help, and usage errors exit 2", "[e2e][cli]") {
  for (const char* command : {"server", "services", "health", "version"}) {
    INFO(command);
    ProgramResult help = RunProgram({MicroBinary(), command, "--help"});
    CHECK(help.exit_code == 0);
    CHECK(help.out.rfind(std::string("Usage: micro ") + command, 0) == 0);
    CHECK(help.out.find("--help") != std::string::npos);
    ProgramResult bad = RunProgram({MicroBinary(), command, "--no-such-flag"});
    CHECK(bad.exit_code == 2);
    CHECK(bad.err.rfind("error: unknown flag --no-such-flag", 0) == 0);
  }
  ProgramResult top = RunProgram({MicroBinary(), "--help"});
  CHECK(top.exit_code == 0);
  CHECK(top.out.find("services") != std::string::npos);
  CHECK(RunProgram({MicroBinary()}).exit_code == 2);
  ProgramResult unknown = RunProgram({MicroBinary(), "deploy"});
  CHECK(unknown.exit_code == 2);
  CHECK(unknown.err.find("unknown command 'deploy'") != std::string::npos);
  CHECK(RunProgram({MicroBinary(), "services", "a", "b"}).exit_code == 2);
  CHECK(RunProgram({MicroBinary(), "services", "-o", "yaml"}).exit_code == 2);
  ProgramResult version = RunProgram({MicroBinary(), "version"});
  CHECK(version.exit_code == 0);
  CHECK(version.out.rfind("micro ", 0) == 0);
}

}  // namespace
}  // namespace micro::testing

namespace micro::testing {
namespace {

TEST_CASE("global flags before the command, typo hints, server.json discovery, exit classes",
          "[e2e][cli]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  const auto env = daemon.CliEnv();

  // Flags before the command, as kubectl and docker take them.
  ProgramResult before = RunProgram(
      {MicroBinary(), "--address", daemon.address(), "-o", "json", "store", "write", "k", "v"},
      env);
  CHECK(before.exit_code == 0);
  ProgramResult read = RunProgram(
      {MicroBinary(), "--address=" + daemon.address(), "store", "read", "k", "-o", "json"}, env);
  CHECK(read.exit_code == 0);
  CHECK(read.out.find("\"key\"") != std::string::npos);

  // The address from the data dir's server.json when neither flag nor variable gives one.
  auto found = env;
  found["MICRO_HOME"] = daemon.data_dir();
  ProgramResult discovered = RunProgram({MicroBinary(), "store", "read", "k"}, found);
  INFO(discovered.err);
  CHECK(discovered.exit_code == 0);
  ProgramResult by_flag =
      RunProgram({MicroBinary(), "health", "--data-dir", daemon.data_dir()}, env);
  CHECK(by_flag.exit_code == 0);

  // Exit codes by class, and errors as JSON with -o json.
  CHECK(daemon.Cli({"store", "read", "missing"}).exit_code == 3);                 // not found
  CHECK(daemon.Cli({"store", "write", "k", "v", "--if-absent"}).exit_code == 4);  // conflict
  ProgramResult json_error = daemon.Cli({"store", "read", "missing", "-o", "json"});
  CHECK(json_error.exit_code == 3);
  auto error = nlohmann::json::parse(json_error.err, nullptr, false);
  REQUIRE(error.is_object());
  CHECK(error["error"]["code"] == "NOT_FOUND");
  CHECK(error["error"]["exit_code"] == 3);
  TempDir nobody;
  ProgramResult anonymous =
      RunProgram({MicroBinary(), "store", "read", "k", "--address", daemon.address()},
                 {{"HOME", nobody.path()}});
  CHECK(anonymous.exit_code == 5);  // unauthenticated

  // Typos get a suggestion, and exit 2.
  ProgramResult typo = RunProgram({MicroBinary(), "stauts"});
  CHECK(typo.exit_code == 2);
  CHECK(typo.err.find("did you mean 'status'?") != std::string::npos);
  ProgramResult sub = RunProgram({MicroBinary(), "store", "raed"});
  CHECK(sub.exit_code == 2);
  CHECK(sub.err.find("did you mean 'read'?") != std::string::npos);
  ProgramResult flag = daemon.Cli({"store", "read", "k", "--namespce", "x"});
  CHECK(flag.exit_code == 2);
  CHECK(flag.err.find("did you mean --namespace?") != std::string::npos);
}

TEST_CASE("a stale server.json (its daemon gone) is not used", "[e2e][cli]") {
  TempDir home;
  std::ofstream(home.path() + "/server.json")
      << R"({"grpc_address": "127.0.0.1:1", "pid": 999999999})";
  ProgramResult result = RunProgram({MicroBinary(), "health", "--timeout", "2"},
                                    {{"MICRO_HOME", home.path()}, {"HOME", home.path()}});
  CHECK(result.exit_code == 6);  // unreachable, at the default address
  CHECK(result.err.find("127.0.0.1:8081 (from default)") != std::string::npos);
}

TEST_CASE("micro completion bash completes commands, subcommands and flags", "[e2e][cli]") {
  const std::string bin = MicroBinary();
  const std::string dir = bin.substr(0, bin.rfind('/'));
  const std::string script =
      "export PATH='" + dir +
      "':$PATH; source <(micro completion bash); "
      "complete_at() { COMP_WORDS=(\"$@\"); COMP_CWORD=$(($# - 1)); _micro; "
      "echo \"${COMPREPLY[*]}\"; }; "
      "complete_at micro sta; complete_at micro store r; complete_at micro store read --ta; "
      "complete_at micro logs x --ta";
  ProgramResult completed = RunProgram({"/bin/bash", "-c", script});
  INFO(completed.err);
  CHECK(completed.exit_code == 0);
  CHECK(completed.out == "status\nread restore\n--table\n--tail\n");
  CHECK(RunProgram({MicroBinary(), "completion", "zsh"}).out.find("bashcompinit") !=
        std::string::npos);
  CHECK(RunProgram({MicroBinary(), "completion", "fish"}).exit_code == 2);
}

TEST_CASE("with -o json every command's answer is JSON, and so is its error", "[e2e][cli]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  const std::vector<std::vector<std::string>> commands = {
      {"health"},
      {"services"},
      {"status"},
      {"store", "write", "k", "v"},
      {"store", "read", "k"},
      {"store", "list"},
      {"store", "databases"},
      {"store", "tables"},
      {"config", "set", "a", "1"},
      {"config", "get", "a"},
      {"config", "del", "a"},
      {"broker", "publish", "t", "hi"},
      {"events", "publish", "t", "hi"},
      {"events", "topics"},
      {"events", "read", "t"},
      {"auth", "list", "accounts"},
      {"auth", "list", "rules"},
      {"auth", "token"},
      {"run", "-o", "json", "--name", "s", "--", "/bin/sleep", "100"},
      {"logs", "s"},
      {"kill", "s"}};
  for (std::vector<std::string> args : commands) {
    if (args[0] != "run") args.insert(args.end(), {"-o", "json"});
    ProgramResult result = daemon.Cli(args);
    INFO(args[0] << " " << (args.size() > 1 ? args[1] : "") << ": " << result.out << result.err);
    CHECK(result.exit_code == 0);
    // One JSON document, or one per line (logs, events).
    bool json = nlohmann::json::accept(result.out);
    if (!json) {
      json = true;
      std::istringstream lines(result.out);
      for (std::string line; std::getline(lines, line);) {
        json = json && (line.empty() || nlohmann::json::accept(line));
      }
    }
    CHECK(json);
  }
  ProgramResult missing = daemon.Cli({"status", "nobody", "-o", "json"});
  CHECK(missing.exit_code == 3);
  CHECK(nlohmann::json::parse(missing.err)["error"]["code"] == "NOT_FOUND");
}

}  // namespace
}  // namespace micro::testing
