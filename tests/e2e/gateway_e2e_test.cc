// The HTTP gateway end to end: helloworld deployed with `micro run`, called over HTTP with JSON,
// errors mapped to HTTP statuses, /health and /metrics (read by a Prometheus parser that is not
// ours), CORS, and clients that send garbage, too much, too slowly or nothing at all.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "tests/support/micro_daemon.h"
#include "tests/support/temp_dir.h"

namespace micro::testing {
namespace {

struct HttpResponse {
  int status = 0;                              // 0: no answer (the connection closed or failed)
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
  nlohmann::json Json() const { return nlohmann::json::parse(body, nullptr, false); }
};

// A TCP connection to HOST:PORT (IPv4), or -1.
int Connect(const std::string& address) {
  const size_t colon = address.rfind(':');
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
  ::inet_pton(AF_INET, address.substr(0, colon).c_str(), &addr.sin_addr);
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool SendAll(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

// Reads until the peer closes or `timeout` passes; true if it closed.
bool ReadUntilClosed(int fd, std::string* out, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  char buffer[65536];
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) return true;
    out->append(buffer, static_cast<size_t>(n));
  }
}

HttpResponse Parse(const std::string& raw) {
  HttpResponse response;
  const size_t head_end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.1 ", 0) != 0 || head_end == std::string::npos) return response;
  response.status = std::stoi(raw.substr(9, 3));
  size_t line = raw.find("\r\n") + 2;
  while (line < head_end) {
    const size_t next = raw.find("\r\n", line);
    const std::string header = raw.substr(line, next - line);
    const size_t colon = header.find(':');
    std::string name = header.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    response.headers[name] = header.substr(header.find_first_not_of(' ', colon + 1));
    line = next + 2;
  }
  response.body = raw.substr(head_end + 4);
  return response;
}

// One request on a connection of its own (Connection: close).
HttpResponse Http(const std::string& address, const std::string& method, const std::string& path,
                  const std::string& body = "",
                  const std::map<std::string, std::string>& headers = {}) {
  const int fd = Connect(address);
  if (fd < 0) return {};
  std::string request = method + " " + path + " HTTP/1.1\r\nHost: " + address +
                        "\r\nConnection: close\r\nContent-Length: " + std::to_string(body.size()) +
                        "\r\n";
  for (const auto& [name, value] : headers) request += name + ": " + value + "\r\n";
  request += "\r\n" + body;
  std::string raw;
  if (SendAll(fd, request)) ReadUntilClosed(fd, &raw, std::chrono::seconds(20));
  ::close(fd);
  return Parse(raw);
}

std::map<std::string, std::string> Bearer(const std::string& token) {
  return {{"Authorization", "Bearer " + token}, {"Content-Type", "application/json"}};
}

TEST_CASE("the HTTP gateway calls a deployed service with JSON and maps its errors",
          "[e2e][gateway]") {
  MicroDaemon daemon({"--http-cors-origins", "https://app.example.com"});
  REQUIRE(daemon.WaitUntilServing());
  const std::string http = daemon.http_address();
  REQUIRE(!http.empty());
  REQUIRE(daemon
              .Cli({"run", "--name", "helloworld", "--instances", "2", "--restart", "never", "--",
                    HELLOWORLD_BINARY})
              .exit_code == 0);
  REQUIRE(WaitFor([&] { return NodeCount(daemon, "helloworld") == 2; }, std::chrono::seconds(30)));
  const auto auth = Bearer(daemon.token());

  // The full path and micro's short one; the response is the service's message as JSON.
  HttpResponse full =
      Http(http, "POST", "/helloworld/helloworld.v1.Greeter/SayHello", R"({"name":"Ada"})", auth);
  INFO(full.body);
  REQUIRE(full.status == 200);
  CHECK(full.headers["content-type"] == "application/json");
  CHECK(full.Json()["message"] == "Hello Ada");
  CHECK(Http(http, "POST", "/helloworld/Greeter/SayHello", R"({"name":"B"})", auth)
            .Json()["message"] == "Hello B");
  CHECK(Http(http, "POST", "/helloworld/sayhello", R"({"name":"C"})", auth).Json()["message"] ==
        "Hello C");

  // `micro auth token` prints a token for such clients.
  ProgramResult printed = daemon.Cli({"auth", "token"});
  REQUIRE(printed.exit_code == 0);
  const std::string cli_token = printed.out.substr(0, printed.out.find('\n'));
  CHECK(Http(http, "POST", "/helloworld/sayhello", R"({"name":"D"})", Bearer(cli_token)).status ==
        200);
  CHECK(nlohmann::json::parse(daemon.Cli({"auth", "token", "-o", "json"}).out)["access_token"] ==
        cli_token);
  TempDir nobody;
  ProgramResult not_logged_in = RunProgram(
      {MicroBinary(), "auth", "token", "--address", daemon.address()}, {{"HOME", nobody.path()}});
  CHECK(not_logged_in.exit_code == 5);  // denied
  CHECK(not_logged_in.err.find("micro login") != std::string::npos);

  // Both instances take calls in turn.
  std::set<std::string> nodes;
  for (int i = 0; i < 6; ++i) {
    HttpResponse r = Http(http, "POST", "/helloworld/Greeter/SayHello", R"({"name":"x"})", auth);
    REQUIRE(r.status == 200);
    nodes.insert(r.Json()["node"].get<std::string>());
  }
  CHECK(nodes.size() == 2);

  // Errors: the gRPC code as an HTTP status and a JSON body.
  HttpResponse invalid = Http(http, "POST", "/helloworld/Greeter/SayHello", "{}", auth);
  CHECK(invalid.status == 400);
  CHECK(invalid.Json()["code"] == "INVALID_ARGUMENT");
  CHECK(invalid.Json()["message"] == "name is required");
  HttpResponse malformed = Http(http, "POST", "/helloworld/Greeter/SayHello", "{\"name\":", auth);
  CHECK(malformed.status == 400);
  CHECK(malformed.Json()["message"].get<std::string>().find(
            "not a helloworld.v1.HelloRequest in JSON") != std::string::npos);
  HttpResponse wrong_field =
      Http(http, "POST", "/helloworld/Greeter/SayHello", R"({"nam":"x"})", auth);
  CHECK(wrong_field.status == 400);
  HttpResponse no_service = Http(http, "POST", "/nobody/Greeter/SayHello", "{}", auth);
  CHECK(no_service.status == 404);
  CHECK(no_service.Json()["code"] == "NOT_FOUND");
  HttpResponse no_method = Http(http, "POST", "/helloworld/Greeter/Nope", "{}", auth);
  CHECK(no_method.status == 404);
  CHECK(no_method.Json()["message"].get<std::string>().find("has no method Nope") !=
        std::string::npos);
  HttpResponse no_endpoint = Http(http, "POST", "/helloworld/nope", "{}", auth);
  CHECK(no_endpoint.status == 404);
  CHECK(no_endpoint.Json()["message"].get<std::string>().find("Greeter.SayHello") !=
        std::string::npos);  // the endpoints it has
  CHECK(Http(http, "POST", "/helloworld/NoSuchService/SayHello", "{}", auth).status == 404);
  CHECK(Http(http, "POST", "/a/b/c/d", "{}", auth).status == 404);
  HttpResponse get = Http(http, "GET", "/helloworld/Greeter/SayHello", "", auth);
  CHECK(get.status == 405);
  CHECK(get.headers["allow"] == "POST");
  auto bad_timeout = auth;
  bad_timeout["Micro-Timeout"] = "soon";
  CHECK(Http(http, "POST", "/helloworld/Greeter/SayHello", R"({"name":"x"})", bad_timeout).status ==
        400);
  bad_timeout["Micro-Timeout"] = "2s";
  CHECK(Http(http, "POST", "/helloworld/Greeter/SayHello", R"({"name":"x"})", bad_timeout).status ==
        200);

  // Auth applies: no token, a forged one, another namespace without the right.
  HttpResponse anonymous = Http(http, "POST", "/helloworld/Greeter/SayHello", R"({"name":"x"})");
  CHECK(anonymous.status == 401);
  CHECK(anonymous.headers["www-authenticate"] == "Bearer");
  CHECK(anonymous.Json()["code"] == "UNAUTHENTICATED");
  CHECK(Http(http, "POST", "/helloworld/Greeter/SayHello", R"({"name":"x"})", Bearer("forged"))
            .status == 401);
  {
    const std::string secret = "bob-s3cret-value";
    REQUIRE(RunProgram({"/bin/sh", "-c",
                        "echo '" + secret + "' | '" + MicroBinary() +
                            "' auth create account bob -n other --secret-stdin --address " +
                            daemon.address()},
                       daemon.CliEnv())
                .exit_code == 0);
    TempDir home;
    REQUIRE(RunProgram({"/bin/sh", "-c",
                        "echo '" + secret + "' | '" + MicroBinary() +
                            "' login bob -n other --password-stdin --address " + daemon.address()},
                       {{"HOME", home.path()}})
                .exit_code == 0);
    std::string name = daemon.address();
    for (char& c : name) c = c == ':' ? '_' : c;
    std::ifstream tokens(home.path() + "/.micro/tokens/" + name + ".json");
    const std::string bob = nlohmann::json::parse(tokens)["access_token"].get<std::string>();
    auto other = Bearer(bob);
    CHECK(Http(http, "POST", "/helloworld/Greeter/SayHello", R"({"name":"x"})", other).status ==
          404);  // bob's own namespace has no helloworld
    other["Micro-Namespace"] = "micro";
    HttpResponse denied =
        Http(http, "POST", "/helloworld/Greeter/SayHello", R"({"name":"x"})", other);
    CHECK(denied.status == 403);
    CHECK(denied.Json()["code"] == "PERMISSION_DENIED");
  }

  // /health, and /metrics for admins only, in the Prometheus text format.
  HttpResponse health = Http(http, "GET", "/health");
  CHECK(health.status == 200);
  CHECK(health.Json()["status"] == "SERVING");
  CHECK(Http(http, "POST", "/health").status == 405);
  CHECK(Http(http, "GET", "/metrics").status == 401);
  HttpResponse metrics = Http(http, "GET", "/metrics", "", auth);
  REQUIRE(metrics.status == 200);
  CHECK(metrics.headers["content-type"].rfind("text/plain; version=0.0.4", 0) == 0);

  // CORS: the configured origin may call, with a preflight; another may not.
  HttpResponse preflight =
      Http(http, "OPTIONS", "/helloworld/Greeter/SayHello", "",
           {{"Origin", "https://app.example.com"}, {"Access-Control-Request-Method", "POST"}});
  CHECK(preflight.status == 204);
  CHECK(preflight.headers["access-control-allow-origin"] == "https://app.example.com");
  CHECK(preflight.headers["access-control-allow-headers"].find("Authorization") !=
        std::string::npos);
  CHECK(Http(http, "OPTIONS", "/helloworld/Greeter/SayHello", "",
             {{"Origin", "https://evil.example.com"}})
            .status == 403);
  auto from_app = auth;
  from_app["Origin"] = "https://app.example.com";
  CHECK(Http(http, "POST", "/helloworld/Greeter/SayHello", R"({"name":"x"})", from_app)
            .headers["access-control-allow-origin"] == "https://app.example.com");
  from_app["Origin"] = "https://evil.example.com";
  CHECK(Http(http, "POST", "/helloworld/Greeter/SayHello", R"({"name":"x"})", from_app)
            .headers.count("access-control-allow-origin") == 0);

  // An instance killed: once it deregisters (or its TTL ends) calls go to the other one only.
  std::vector<int> pids = Pids(daemon, "helloworld");
  REQUIRE(pids.size() == 2);
  ::kill(pids[0], SIGTERM);  // the SDK deregisters first, then drains
  REQUIRE(WaitFor([&] { return NodeCount(daemon, "helloworld") == 1; }, std::chrono::seconds(30)));
  for (int i = 0; i < 4; ++i) {
    HttpResponse r = Http(http, "POST", "/helloworld/sayhello", R"({"name":"y"})", auth);
    INFO(r.body);
    CHECK(r.status == 200);
  }
}

TEST_CASE("/metrics is read by the Prometheus client library's parser", "[e2e][gateway]") {
  MicroDaemon daemon;
  REQUIRE(daemon.WaitUntilServing());
  REQUIRE(daemon.Cli({"store", "write", "k", "v"}).exit_code == 0);
  HttpResponse metrics = Http(daemon.http_address(), "GET", "/metrics", "", Bearer(daemon.token()));
  REQUIRE(metrics.status == 200);
  TempDir dir;
  const std::string file = dir.path() + "/metrics.txt";
  std::ofstream(file) << metrics.body;
  ProgramResult parsed = RunProgram({"/usr/bin/python3", CHECK_PROMETHEUS_SCRIPT, file});
  INFO(parsed.out << parsed.err);
  CHECK(parsed.exit_code == 0);
  CHECK(parsed.out.find("micro_rpc_requests counter") != std::string::npos);  // _total dropped
  CHECK(parsed.out.find("micro_runtime_instances gauge") != std::string::npos);
  CHECK(metrics.body.find("method=\"/micro.store.v1.Store/Write\"") != std::string::npos);
}

TEST_CASE("the gateway survives garbage, big bodies, slow and silent clients and serves others",
          "[e2e][gateway]") {
  MicroDaemon daemon({"--http-max-body-bytes", "2048", "--http-request-timeout-seconds", "1",
                      "--http-max-connections", "20"});
  REQUIRE(daemon.WaitUntilServing());
  const std::string http = daemon.http_address();
  const auto auth = Bearer(daemon.token());

  // Keep-alive: two requests sent at once on one connection get two answers, in order.
  {
    const int fd = Connect(http);
    REQUIRE(fd >= 0);
    REQUIRE(SendAll(fd,
                    "GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /nowhere HTTP/1.1\r\n"
                    "Host: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));
    std::string raw;
    CHECK(ReadUntilClosed(fd, &raw, std::chrono::seconds(10)));
    CHECK(raw.find("HTTP/1.1 200 OK") == 0);
    CHECK(raw.find("HTTP/1.1 405", 10) != std::string::npos);  // GET on a call route
    ::close(fd);
  }

  // Too big a body: 413 before the body is read, and the connection ends.
  HttpResponse big = Http(http, "POST", "/helloworld/sayhello", std::string(4096, 'x'), auth);
  CHECK(big.status == 413);
  CHECK(big.Json()["code"] == "RESOURCE_EXHAUSTED");
  // Too big a header.
  auto huge = auth;
  huge["X-Padding"] = std::string(20000, 'p');
  CHECK(Http(http, "GET", "/health", "", huge).status == 431);
  // Not HTTP at all.
  {
    const int fd = Connect(http);
    REQUIRE(fd >= 0);
    REQUIRE(SendAll(fd, "HELLO THERE\r\n\r\n"));
    std::string raw;
    CHECK(ReadUntilClosed(fd, &raw, std::chrono::seconds(10)));
    CHECK(Parse(raw).status == 400);
    ::close(fd);
  }

  // A client that trickles its request a byte at a time is cut off after the request timeout.
  {
    const int fd = Connect(http);
    REQUIRE(fd >= 0);
    const std::string request = "POST /helloworld/sayhello HTTP/1.1\r\nHost: x\r\nX-A: ";
    const auto start = std::chrono::steady_clock::now();
    bool cut = false;
    for (int i = 0; i < 100 && !cut; ++i) {
      if (!SendAll(fd, request.substr(i % request.size(), 1))) cut = true;
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 100) > 0) {
        char c;
        if (::recv(fd, &c, 1, 0) <= 0) cut = true;
      }
      // Meanwhile others are served.
      if (i == 3) CHECK(Http(http, "GET", "/health").status == 200);
    }
    CHECK(cut);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(8));
    ::close(fd);
  }

  // Many connections that send nothing: past the limit the longest-waiting ones are closed, and
  // a real request still gets through.
  std::vector<int> idle;
  for (int i = 0; i < 60; ++i) {
    const int fd = Connect(http);
    REQUIRE(fd >= 0);
    idle.push_back(fd);
  }
  HttpResponse served = Http(http, "GET", "/health");
  CHECK(served.status == 200);
  int closed_by_gateway = 0;
  for (int fd : idle) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 0) > 0) {
      char c;
      if (::recv(fd, &c, 1, MSG_DONTWAIT) == 0) ++closed_by_gateway;
    }
  }
  CHECK(closed_by_gateway >= 40);  // 60 opened, at most 20 kept
  // And the silent ones still open go after the request timeout.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  int still_open = 0;
  for (int fd : idle) {
    char c;
    if (::recv(fd, &c, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN) ++still_open;
    ::close(fd);
  }
  CHECK(still_open == 0);
  CHECK(daemon.process().running());
  CHECK(Http(http, "GET", "/health").status == 200);
}

TEST_CASE("the gateway can be turned off and refuses an exposed address without --insecure",
          "[e2e][gateway]") {
  MicroDaemon off({"--http-address", "off"});
  REQUIRE(off.WaitUntilServing());
  CHECK(off.http_address().empty());
  TempDir dir;
  ProgramResult exposed = RunProgram({MicroBinary(), "server", "--address", "127.0.0.1:0",
                                      "--http-address", "0.0.0.0:0", "--data-dir", dir.path()});
  CHECK(exposed.exit_code != 0);
  CHECK(exposed.err.find("plain HTTP") != std::string::npos);
}

}  // namespace
}  // namespace micro::testing
