// The SDK end to end: the helloworld example deployed with `micro run`, found and called by
// name through micro::Client, calling another service itself, and skipped once it is gone.
#include <arpa/inet.h>
#include <grpcpp/create_channel.h>
#include <micro/client.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <set>

#include "helloworld/v1/helloworld.grpc.pb.h"
#include "tests/support/micro_daemon.h"

namespace micro::testing {
namespace {

// A client of the test's daemon, as its admin.
micro::ClientOptions AdminOptions(const MicroDaemon& daemon) {
  micro::ClientOptions options;
  options.daemon = daemon.address();
  options.ns = "micro";
  options.token = daemon.token();
  return micro::ClientOptions::FromEnvironment(options);
}

TEST_CASE("helloworld deployed twice: called by name in turn, calling another, skipped when gone",
          "[e2e][sdk]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  REQUIRE(daemon
              .Cli({"run", "--name", "helloworld", "--instances", "2", "--restart", "on-failure",
                    "--", HELLOWORLD_BINARY})
              .exit_code == 0);
  REQUIRE(WaitFor([&] { return NodeCount(daemon, "helloworld") == 2; }, std::chrono::seconds(30)));
  const std::string listed = daemon.Cli({"services", "helloworld", "-o", "json"}).out;
  CHECK(listed.find("Greeter.SayHello") != std::string::npos);  // endpoints from the server
  CHECK(listed.find("Greeter.Relay") != std::string::npos);

  // micro call: JSON in and out, the types from the service's reflection.
  ProgramResult called =
      daemon.Cli({"call", "helloworld", "Greeter.SayHello", "{\"name\": \"Ada\"}"});
  CHECK(called.exit_code == 0);
  CHECK(nlohmann::json::parse(called.out)["message"] == "Hello Ada");
  ProgramResult invalid = daemon.Cli({"call", "helloworld", "Greeter.SayHello", "{}"});
  CHECK(invalid.exit_code == 2);  // usage
  CHECK(invalid.err.find("INVALID_ARGUMENT: name is required") != std::string::npos);
  ProgramResult unknown_method = daemon.Cli({"call", "helloworld", "Greeter.Nope", "{}"});
  CHECK(unknown_method.err.find("has no method Nope; it has SayHello, Relay") != std::string::npos);
  ProgramResult bad_json =
      daemon.Cli({"call", "helloworld", "helloworld.v1.Greeter.SayHello", "{\"nam\": 1}"});
  CHECK(bad_json.exit_code == 2);
  CHECK(bad_json.err.find("not a helloworld.v1.HelloRequest") != std::string::npos);
  CHECK(daemon.Cli({"call", "nobody", "Greeter.SayHello"}).err.find("NOT_FOUND") !=
        std::string::npos);
  ProgramResult streamed =
      daemon.Cli({"stream", "helloworld", "Greeter.SayHello", "{\"name\": \"x\"}"});
  CHECK(streamed.out.find("{\"message\":\"Hello x\"") == 0);

  micro::Client client(AdminOptions(daemon));
  helloworld::v1::HelloRequest request;
  request.set_name("Ada");
  std::set<std::string> nodes;
  for (int i = 0; i < 6; ++i) {
    helloworld::v1::HelloReply reply;
    grpc::Status status =
        client.Call("helloworld", "/helloworld.v1.Greeter/SayHello", request, &reply);
    INFO(status.error_message());
    REQUIRE(status.ok());
    CHECK(reply.message() == "Hello Ada");
    nodes.insert(reply.node());
  }
  CHECK(nodes.size() == 2);  // round robin over both instances

  // Errors keep their codes; an unknown service is NOT_FOUND.
  helloworld::v1::HelloReply reply;
  helloworld::v1::HelloRequest empty;
  CHECK(client.Call("helloworld", "/helloworld.v1.Greeter/SayHello", empty, &reply).error_code() ==
        grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(client.Call("nobody", "/helloworld.v1.Greeter/SayHello", request, &reply).error_code() ==
        grpc::StatusCode::NOT_FOUND);

  // Through the daemon's own port (the proxy): a client that knows only the daemon's address.
  auto through_daemon = helloworld::v1::Greeter::NewStub(daemon.Channel());
  {
    grpc::ClientContext context;
    helloworld::v1::HelloReply proxied;
    grpc::Status status = through_daemon->SayHello(&context, request, &proxied);
    INFO(status.error_message());
    CHECK(status.ok());
    CHECK(proxied.message() == "Hello Ada");
  }
  {
    grpc::ClientContext context;
    helloworld::v1::HelloReply proxied;
    CHECK(through_daemon->SayHello(&context, empty, &proxied).error_code() ==
          grpc::StatusCode::INVALID_ARGUMENT);  // the service's own answer
  }
  {
    auto anonymous = helloworld::v1::Greeter::NewStub(
        grpc::CreateChannel(daemon.address(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    helloworld::v1::HelloReply proxied;
    CHECK(anonymous->SayHello(&context, request, &proxied).error_code() ==
          grpc::StatusCode::UNAUTHENTICATED);  // auth applies to proxied calls too
  }

  // A second service calls the first by name, logged in as its own service account.
  REQUIRE(daemon.Cli({"run", "--name", "relay", "--", HELLOWORLD_BINARY}).exit_code == 0);
  REQUIRE(WaitFor([&] { return NodeCount(daemon, "relay") == 1; }, std::chrono::seconds(30)));
  helloworld::v1::RelayRequest relay;
  relay.set_service("helloworld");
  relay.set_name("Grace");
  grpc::Status relayed = client.Call("relay", "/helloworld.v1.Greeter/Relay", relay, &reply);
  INFO(relayed.error_message());
  CHECK(relayed.ok());
  CHECK(reply.message() == "Hello Grace");
  // Two services now serve Greeter.SayHello: the proxy needs to be told which.
  {
    grpc::ClientContext context;
    helloworld::v1::HelloReply proxied;
    grpc::Status ambiguous = through_daemon->SayHello(&context, request, &proxied);
    CHECK(ambiguous.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
    CHECK(ambiguous.error_message().find("micro-service") != std::string::npos);
    grpc::ClientContext named;
    named.AddMetadata("micro-service", "relay");
    CHECK(through_daemon->SayHello(&named, request, &proxied).ok());
    CHECK(proxied.node().find("relay") != std::string::npos);
  }

  // kill -9 of one instance: its node stays registered until its TTL, and calls go on through
  // the other (UNAVAILABLE is retried on the next node).
  std::vector<int> pids = Pids(daemon, "helloworld");
  REQUIRE(pids.size() == 2);
  REQUIRE(::kill(pids[0], SIGKILL) == 0);
  for (int i = 0; i < 6; ++i) {
    grpc::Status status =
        client.Call("helloworld", "/helloworld.v1.Greeter/SayHello", request, &reply);
    INFO(status.error_message());
    CHECK(status.ok());
  }
  // SIGTERM: the instance deregisters before it stops (and on-failure does not restart a clean
  // exit), so the registry shows one node fewer at once.
  REQUIRE(WaitFor([&] { return Pids(daemon, "helloworld").size() == 2; },
                  std::chrono::seconds(30)));  // the killed one is back
  REQUIRE(WaitFor([&] { return NodeCount(daemon, "helloworld") == 2; }, std::chrono::seconds(30)));
  // The killed one's node stayed registered: the count says nothing of its successor, which
  // may not listen yet. Both answer before the next step.
  std::set<std::string> answering;
  REQUIRE(WaitFor(
      [&] {
        if (client.Call("helloworld", "/helloworld.v1.Greeter/SayHello", request, &reply).ok()) {
          answering.insert(reply.node());
        }
        return answering.size() == 2;
      },
      std::chrono::seconds(30)));
  pids = Pids(daemon, "helloworld");
  REQUIRE(::kill(pids[1], SIGTERM) == 0);
  CHECK(WaitFor([&] { return NodeCount(daemon, "helloworld") == 1; }, std::chrono::seconds(5)));
  for (int i = 0; i < 4; ++i) {
    grpc::Status status =
        client.Call("helloworld", "/helloworld.v1.Greeter/SayHello", request, &reply);
    INFO(status.error_code() << " " << status.error_message());
    CHECK(status.ok());
  }
}

TEST_CASE("the proxy gives up on a node that never answers, at the caller's deadline",
          "[e2e][sdk][proxy]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  // A socket that takes connections into its backlog and never speaks.
  const int silent = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(silent, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(silent, 16) == 0);
  socklen_t len = sizeof addr;
  ::getsockname(silent, reinterpret_cast<sockaddr*>(&addr), &len);
  const std::string address = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  auto registry = micro::registry::v1::Registry::NewStub(daemon.Channel());
  micro::registry::v1::RegisterRequest request;
  request.mutable_service()->set_name("silent");
  request.mutable_service()->add_endpoints()->set_name("Greeter.SayHello");
  auto* node = request.mutable_service()->add_nodes();
  node->set_id("silent-1");
  node->set_address(address);
  grpc::ClientContext register_context;
  micro::registry::v1::RegisterResponse registered;
  REQUIRE(registry->Register(&register_context, request, &registered).ok());

  auto stub = helloworld::v1::Greeter::NewStub(daemon.Channel());
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  helloworld::v1::HelloRequest hello;
  hello.set_name("x");
  helloworld::v1::HelloReply reply;
  const auto start = std::chrono::steady_clock::now();
  CHECK(stub->SayHello(&context, hello, &reply).error_code() ==
        grpc::StatusCode::DEADLINE_EXCEEDED);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));
  // The daemon still serves others.
  CHECK(daemon.Cli({"services"}).exit_code == 0);
  ::close(silent);
}

TEST_CASE("a Python service (proto/ only) and the C++ one call each other by name",
          "[e2e][sdk][python]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  REQUIRE(daemon.Cli({"run", "--name", "helloworld", "--", HELLOWORLD_BINARY}).exit_code == 0);
  ProgramResult python =
      daemon.Cli({"run", std::string(MICRO_SOURCE_DIR) + "/examples/helloworld-python"});
  INFO(python.err);
  REQUIRE(python.exit_code == 0);
  REQUIRE(WaitFor([&] { return NodeCount(daemon, "helloworld") == 1; }, std::chrono::seconds(30)));
  INFO(daemon.Cli({"logs", "helloworld-python"}).out);
  REQUIRE(WaitFor([&] { return NodeCount(daemon, "helloworld-python") == 1; },
                  std::chrono::seconds(60)));

  micro::Client client(AdminOptions(daemon));
  helloworld::v1::HelloRequest hello;
  hello.set_name("Ada");
  helloworld::v1::HelloReply reply;
  grpc::Status direct =
      client.Call("helloworld-python", "/helloworld.v1.Greeter/SayHello", hello, &reply);
  INFO(direct.error_message());
  CHECK(direct.ok());
  CHECK(reply.node().find("helloworld-python") != std::string::npos);
  // Python calls C++, logged in as its own service account.
  helloworld::v1::RelayRequest relay;
  relay.set_service("helloworld");
  relay.set_name("Grace");
  grpc::Status to_cpp =
      client.Call("helloworld-python", "/helloworld.v1.Greeter/Relay", relay, &reply);
  INFO(to_cpp.error_message());
  CHECK(to_cpp.ok());
  CHECK(reply.message() == "Hello Grace");
  CHECK(reply.node().find("micro.helloworld.latest") != std::string::npos);
  // C++ calls Python.
  relay.set_service("helloworld-python");
  grpc::Status to_python = client.Call("helloworld", "/helloworld.v1.Greeter/Relay", relay, &reply);
  INFO(to_python.error_message());
  CHECK(to_python.ok());
  CHECK(reply.node().find("helloworld-python") != std::string::npos);
  // Errors cross the languages with their codes.
  relay.set_name("");
  CHECK(client.Call("helloworld", "/helloworld.v1.Greeter/Relay", relay, &reply).error_code() ==
        grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_CASE("under automatic TLS a deployed service registers over TLS, verifying the daemon's CA",
          "[e2e][sdk][tls]") {
  MicroDaemon daemon({"--tls-auto", "true"});
  REQUIRE(daemon.WaitUntilServing());
  REQUIRE(daemon.Cli({"run", "--name", "helloworld", "--", HELLOWORLD_BINARY}).exit_code == 0);
  CHECK(WaitFor([&] { return NodeCount(daemon, "helloworld") == 1; }, std::chrono::seconds(30)));
  // The SDK's client, given the CA, reaches the daemon; without it, it does not.
  micro::ClientOptions options = AdminOptions(daemon);
  options.tls_ca_file = daemon.data_dir() + "/tls/ca.pem";
  micro::Client client(options);
  grpc::Status status;
  CHECK(client.Nodes("helloworld", &status).size() == 1);
  CHECK(status.ok());
  micro::ClientOptions plain = AdminOptions(daemon);
  plain.tls_ca_file.clear();
  micro::Client refused(plain);
  refused.Nodes("helloworld", &status);
  CHECK(status.error_code() == grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace micro::testing
