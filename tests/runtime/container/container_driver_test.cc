// The container driver and its Docker client against a real dockerd, which the CTest fixture
// `dockerd` (scripts/dockerd.sh) starts with the image micro-test:latest (busybox) and passes
// in MICRO_TEST_DOCKER_SOCKET. Without it the tests that need it warn and pass vacuously.
#include "runtime/container/container_driver.h"

#include <unistd.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "runtime/container/docker_client.h"

namespace micro::runtime {
namespace {

constexpr auto kDeadline = std::chrono::seconds(30);
constexpr const char* kImage = "micro-test:latest";

// The fixture's socket, or empty (with a warning) when there is no dockerd to test against.
std::string DockerSocket() {
  const char* socket = std::getenv("MICRO_TEST_DOCKER_SOCKET");
  if (socket == nullptr || !std::filesystem::exists(socket)) {
    WARN("SKIPPED: no dockerd (MICRO_TEST_DOCKER_SOCKET="
         << (socket ? socket : "unset")
         << "); run through ctest, whose fixture starts one with scripts/dockerd.sh");
    return "";
  }
  return socket;
}

// A name no other test (or test run) uses, for supervisor ids and instance ids alike.
std::string UniqueName(const std::string& what) {
  static std::atomic<int> counter{0};
  auto now = std::chrono::steady_clock::now().time_since_epoch().count();
  return "micro-test-" + what + "-" + std::to_string(::getpid()) + "-" +
         std::to_string(now % 1000000) + "-" + std::to_string(counter++);
}

// The engine's io_context, run on a thread of its own for the length of a test.
class IoThread {
 public:
  IoThread() : thread_([this] { io_.run(); }) {}
  ~IoThread() {
    guard_.reset();
    io_.stop();
    thread_.join();
  }
  boost::asio::io_context& io() { return io_; }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_{
      io_.get_executor()};
  std::thread thread_;
};

// Everything the driver reported for one instance, readable from the test thread.
class Recorder {
 public:
  LaunchCallbacks Callbacks() {
    LaunchCallbacks callbacks;
    callbacks.on_started = [this](Result<Launched> launched) {
      Update([&] { started_ = std::move(launched); });
    };
    callbacks.on_output = [this](OutputStream stream, std::string_view data) {
      Update([&] {
        if (exit_) output_after_exit_ = true;
        (stream == OutputStream::kStdout ? out_ : err_).append(data);
      });
    };
    callbacks.on_exit = [this](Exit exit) { Update([&] { exit_ = std::move(exit); }); };
    return callbacks;
  }

  // Waits (bounded) for on_started and returns what it carried.
  Result<Launched> Started() {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, kDeadline, [&] { return started_.has_value(); })) {
      return absl::DeadlineExceededError("no on_started within the deadline");
    }
    return *started_;
  }

  // Waits (bounded) for on_exit.
  std::optional<Exit> Exited(std::chrono::milliseconds timeout = kDeadline) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return exit_.has_value(); });
    return exit_;
  }

  std::string out() {
    std::lock_guard lock(mu_);
    return out_;
  }
  std::string err() {
    std::lock_guard lock(mu_);
    return err_;
  }
  bool output_after_exit() {
    std::lock_guard lock(mu_);
    return output_after_exit_;
  }

 private:
  void Update(const std::function<void()>& change) {
    std::lock_guard lock(mu_);
    change();
    cv_.notify_all();
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<Result<Launched>> started_;
  std::string out_;
  std::string err_;
  std::optional<Exit> exit_;
  bool output_after_exit_ = false;
};

LaunchRequest ShellRequest(const std::string& script) {
  LaunchRequest request;
  request.instance_id = UniqueName("instance");
  request.image = kImage;
  request.command = "sh";
  request.args = {"-c", script};
  return request;
}

bool Gone(DockerClient& client, const std::string& container) {
  return absl::IsNotFound(client.Inspect(container).status());
}

// A bounded wait for something the engine does on its own time.
bool Eventually(const std::function<bool()>& condition) {
  auto deadline = std::chrono::steady_clock::now() + kDeadline;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

TEST_CASE("the client negotiates an API version no newer than ours", "[container]") {
  std::string socket = DockerSocket();
  if (socket.empty()) return;
  DockerClient client(socket);
  REQUIRE(client.Ping().ok());
  Result<std::string> version = client.ApiVersion();
  REQUIRE(version.ok());
  int major = 0;
  int minor = 0;
  REQUIRE(std::sscanf(version->c_str(), "%d.%d", &major, &minor) == 2);
  CHECK(major == 1);
  CHECK(minor <= 41);
  CHECK(minor >= 24);  // the oldest the engine API still documents
}

TEST_CASE("a container runs to its end: live pid, stdout and stderr apart, exit code, removed",
          "[container]") {
  std::string socket = DockerSocket();
  if (socket.empty()) return;
  Recorder recorder;  // first: outlives the io thread, which may still hold its callbacks
  IoThread io;
  DockerClient client(socket);
  ContainerDriver driver(io.io(), socket, UniqueName("supervisor"));
  // Enough output that delivery before on_exit is not luck, then a pause to look at the pid.
  LaunchRequest request = ShellRequest(
      "echo out-line; echo err-line >&2; i=0; while [ $i -lt 2000 ]; do echo line$i; "
      "i=$((i+1)); done; sleep 2; exit 3");
  driver.Start(request, recorder.Callbacks());

  Result<Launched> launched = recorder.Started();
  REQUIRE(launched.ok());
  CHECK(launched->pid > 0);
  CHECK(std::filesystem::exists("/proc/" + std::to_string(launched->pid)));
  CHECK_FALSE(launched->container_id.empty());

  std::optional<Exit> exit = recorder.Exited();
  REQUIRE(exit.has_value());
  CHECK(exit->code == 3);
  CHECK(exit->signal == 0);
  CHECK(exit->error.empty());
  std::string out = recorder.out();
  CHECK(out.rfind("out-line\nline0\nline1\n", 0) == 0);
  CHECK(out.size() > 10);
  CHECK(out.substr(out.size() - 10) == "\nline1999\n");
  CHECK(recorder.err() == "err-line\n");
  CHECK_FALSE(recorder.output_after_exit());
  CHECK(Gone(client, request.instance_id));
  CHECK(Gone(client, launched->container_id));
}

TEST_CASE("the environment and working directory reach the container", "[container]") {
  std::string socket = DockerSocket();
  if (socket.empty()) return;
  Recorder recorder;  // first: outlives the io thread, which may still hold its callbacks
  IoThread io;
  ContainerDriver driver(io.io(), socket, UniqueName("supervisor"));
  LaunchRequest request = ShellRequest("env; echo cwd=$(pwd)");
  request.env = {{"GREETING", "hello there"}, {"MICRO_SERVICE", "greeter"}};
  request.working_dir = "/tmp";
  driver.Start(request, recorder.Callbacks());

  REQUIRE(recorder.Started().ok());
  std::optional<Exit> exit = recorder.Exited();
  REQUIRE(exit.has_value());
  CHECK(exit->code == 0);
  std::string out = recorder.out();
  CHECK(out.find("GREETING=hello there\n") != std::string::npos);
  CHECK(out.find("MICRO_SERVICE=greeter\n") != std::string::npos);
  CHECK(out.find("cwd=/tmp\n") != std::string::npos);
}

TEST_CASE("memory and process limits, network mode and labels are set on the container",
          "[container]") {
  std::string socket = DockerSocket();
  if (socket.empty()) return;
  Recorder recorder;  // first: outlives the io thread, which may still hold its callbacks
  IoThread io;
  DockerClient client(socket);
  std::string supervisor = UniqueName("supervisor");
  ContainerDriver driver(io.io(), socket, supervisor);
  LaunchRequest request;
  request.instance_id = UniqueName("limits");
  request.image = kImage;
  request.command = "sleep";
  request.args = {"60"};
  request.memory_bytes = 64 << 20;
  request.max_processes = 32;
  driver.Start(request, recorder.Callbacks());
  REQUIRE(recorder.Started().ok());

  Result<ContainerState> state = client.Inspect(request.instance_id);
  REQUIRE(state.ok());
  CHECK(state->running);
  CHECK(state->memory_bytes == 64 << 20);
  CHECK(state->pids_limit == 32);
  CHECK(state->network_mode == "host");
  CHECK(state->labels["micro.supervisor"] == supervisor);
  CHECK(state->labels["micro.instance"] == request.instance_id);

  driver.Signal(request.instance_id, SIGKILL);
  REQUIRE(recorder.Exited().has_value());
}

TEST_CASE("SIGTERM ends a sleeping container and the exit names the signal", "[container]") {
  std::string socket = DockerSocket();
  if (socket.empty()) return;
  Recorder recorder;  // first: outlives the io thread, which may still hold its callbacks
  IoThread io;
  DockerClient client(socket);
  ContainerDriver driver(io.io(), socket, UniqueName("supervisor"));
  LaunchRequest request;
  request.instance_id = UniqueName("term");
  request.image = kImage;
  request.command = "sleep";
  request.args = {"600"};
  driver.Start(request, recorder.Callbacks());
  REQUIRE(recorder.Started().ok());

  auto signaled_at = std::chrono::steady_clock::now();
  driver.Signal(request.instance_id, SIGTERM);
  std::optional<Exit> exit = recorder.Exited();
  REQUIRE(exit.has_value());
  CHECK(exit->code == -1);
  CHECK(exit->signal == SIGTERM);
  CHECK(exit->error.empty());
  // Not the engine's stop timeout: the signal itself ended it.
  CHECK(std::chrono::steady_clock::now() - signaled_at < std::chrono::seconds(8));
  CHECK(Gone(client, request.instance_id));
}

TEST_CASE("SIGKILL ends a sleeping container and removes it", "[container]") {
  std::string socket = DockerSocket();
  if (socket.empty()) return;
  Recorder recorder;  // first: outlives the io thread, which may still hold its callbacks
  IoThread io;
  DockerClient client(socket);
  ContainerDriver driver(io.io(), socket, UniqueName("supervisor"));
  // A shell that ignores SIGTERM: only SIGKILL ends it.
  LaunchRequest request = ShellRequest("trap '' TERM; echo ready; sleep 600 & wait");
  driver.Start(request, recorder.Callbacks());
  REQUIRE(recorder.Started().ok());
  REQUIRE(Eventually([&] { return recorder.out() == "ready\n"; }));

  driver.Signal(request.instance_id, SIGKILL);
  std::optional<Exit> exit = recorder.Exited();
  REQUIRE(exit.has_value());
  CHECK(exit->code == -1);
  CHECK(exit->signal == SIGKILL);
  CHECK(Gone(client, request.instance_id));
}

TEST_CASE("a signal sent before the container runs still reaches it", "[container]") {
  std::string socket = DockerSocket();
  if (socket.empty()) return;
  Recorder recorder;  // first: outlives the io thread, which may still hold its callbacks
  IoThread io;
  ContainerDriver driver(io.io(), socket, UniqueName("supervisor"));
  LaunchRequest request = ShellRequest("sleep 600");
  driver.Start(request, recorder.Callbacks());
  driver.Signal(request.instance_id, SIGKILL);  // on the test thread, as the engine would do

  REQUIRE(recorder.Started().ok());
  std::optional<Exit> exit = recorder.Exited();
  REQUIRE(exit.has_value());
  CHECK(exit->signal == SIGKILL);
}

TEST_CASE("a missing image fails the start with an error naming the image", "[container]") {
  std::string socket = DockerSocket();
  if (socket.empty()) return;
  Recorder recorder;  // first: outlives the io thread, which may still hold its callbacks
  IoThread io;
  DockerClient client(socket);
  ContainerDriver driver(io.io(), socket, UniqueName("supervisor"));
  LaunchRequest request = ShellRequest("true");
  request.image = "micro-no-such-image:1.0";
  driver.Start(request, recorder.Callbacks());

  Result<Launched> launched = recorder.Started();
  REQUIRE_FALSE(launched.ok());
  CHECK(absl::IsNotFound(launched.status()));
  std::string message(launched.status().message());
  CHECK(message.find("docker create") != std::string::npos);
  CHECK(message.find("micro-no-such-image:1.0") != std::string::npos);
  CHECK(Gone(client, request.instance_id));
}

TEST_CASE("a leftover container with the instance's name is replaced", "[container]") {
  std::string socket = DockerSocket();
  if (socket.empty()) return;
  Recorder recorder;  // first: outlives the io thread, which may still hold its callbacks
  IoThread io;
  DockerClient client(socket);
  ContainerDriver driver(io.io(), socket, UniqueName("supervisor"));
  LaunchRequest request = ShellRequest("echo fresh");
  ContainerConfig leftover;
  leftover.name = request.instance_id;
  leftover.image = kImage;
  leftover.cmd = {"sleep", "600"};
  Result<std::string> old_id = client.Create(leftover);
  REQUIRE(old_id.ok());
  REQUIRE(client.Start(*old_id).ok());

  driver.Start(request, recorder.Callbacks());
  Result<Launched> launched = recorder.Started();
  REQUIRE(launched.ok());
  CHECK(launched->container_id != *old_id);
  REQUIRE(recorder.Exited().has_value());
  CHECK(recorder.out() == "fresh\n");
  CHECK(Gone(client, *old_id));
}

TEST_CASE("RemoveLeftovers removes this supervisor's containers and no others", "[container]") {
  std::string socket = DockerSocket();
  if (socket.empty()) return;
  std::atomic<bool> done{false};  // first: outlives the io thread, which may still run `done`
  IoThread io;
  DockerClient client(socket);
  std::string supervisor = UniqueName("supervisor");
  auto create = [&](const std::map<std::string, std::string>& labels, bool start) {
    ContainerConfig config;
    config.name = UniqueName("leftover");
    config.image = kImage;
    config.cmd = {"sleep", "600"};
    config.labels = labels;
    Result<std::string> id = client.Create(config);
    REQUIRE(id.ok());
    if (start) REQUIRE(client.Start(*id).ok());
    return *id;
  };
  std::string running = create({{"micro.supervisor", supervisor}}, true);
  std::string created = create({{"micro.supervisor", supervisor}}, false);
  std::string other = create({{"micro.supervisor", supervisor + "-other"}}, true);
  std::string unlabelled = create({}, false);

  ContainerDriver driver(io.io(), socket, supervisor);
  driver.RemoveLeftovers({}, [&] { done = true; });
  REQUIRE(Eventually([&] { return done.load(); }));
  CHECK(Gone(client, running));
  CHECK(Gone(client, created));
  CHECK_FALSE(Gone(client, other));
  CHECK_FALSE(Gone(client, unlabelled));
  CHECK(client.Remove(other, true).ok());
  CHECK(client.Remove(unlabelled, true).ok());
}

TEST_CASE("destroying the driver leaves running containers to the next RemoveLeftovers",
          "[container]") {
  std::string socket = DockerSocket();
  if (socket.empty()) return;
  std::atomic<bool> done{false};
  Recorder recorder;  // first: outlives the io thread, which may still hold its callbacks
  IoThread io;
  DockerClient client(socket);
  std::string supervisor = UniqueName("supervisor");
  auto driver = std::make_unique<ContainerDriver>(io.io(), socket, supervisor);
  LaunchRequest request = ShellRequest("sleep 600");
  driver->Start(request, recorder.Callbacks());
  REQUIRE(recorder.Started().ok());

  auto destroying = std::chrono::steady_clock::now();
  driver.reset();
  CHECK(std::chrono::steady_clock::now() - destroying < std::chrono::seconds(5));
  Result<ContainerState> state = client.Inspect(request.instance_id);
  REQUIRE(state.ok());
  CHECK(state->running);

  ContainerDriver next(io.io(), socket, supervisor);
  next.RemoveLeftovers({}, [&] { done = true; });
  REQUIRE(Eventually([&] { return done.load(); }));
  CHECK(Gone(client, request.instance_id));
  CHECK_FALSE(recorder.Exited(std::chrono::milliseconds(100)).has_value());
}

TEST_CASE("an unreachable engine is UNAVAILABLE, naming the socket", "[container]") {
  const std::string socket = "/nonexistent-micro-test/docker.sock";
  DockerClient client(socket);
  Status ping = client.Ping();
  CHECK(absl::IsUnavailable(ping));
  CHECK(std::string(ping.message()) ==
        "cannot reach the Docker engine at " + socket + ": No such file or directory");
  CHECK(absl::IsUnavailable(client.Inspect("anything").status()));

  Recorder recorder;  // first: outlives the io thread, which may still hold its callbacks
  IoThread io;
  ContainerDriver driver(io.io(), socket, UniqueName("supervisor"));
  CHECK(absl::IsUnavailable(driver.Ping()));
  driver.Start(ShellRequest("true"), recorder.Callbacks());
  Result<Launched> launched = recorder.Started();
  CHECK(absl::IsUnavailable(launched.status()));
  CHECK(std::string(launched.status().message()).find(socket) != std::string::npos);
}

TEST_CASE("DOCKER_HOST chooses the socket, and only unix sockets are accepted", "[container]") {
  CHECK(*ContainerDriver::DefaultSocket({}) == "/var/run/docker.sock");
  CHECK(*ContainerDriver::DefaultSocket({{"DOCKER_HOST", ""}}) == "/var/run/docker.sock");
  CHECK(*ContainerDriver::DefaultSocket({{"DOCKER_HOST", "unix:///run/user/1000/docker.sock"}}) ==
        "/run/user/1000/docker.sock");
  Result<std::string> tcp =
      ContainerDriver::DefaultSocket({{"DOCKER_HOST", "tcp://10.0.0.1:2375"}});
  CHECK(absl::IsInvalidArgument(tcp.status()));
  CHECK(std::string(tcp.status().message()).find("tcp://10.0.0.1:2375") != std::string::npos);
}

TEST_CASE("the log decoder splits frames cut at any byte", "[container]") {
  auto frame = [](char stream, const std::string& payload) {
    std::string header = {stream, 0, 0, 0, 0, 0, 0, static_cast<char>(payload.size())};
    return header + payload;
  };
  std::string wire = frame(1, "hello ") + frame(2, "oops\n") + frame(1, "") + frame(1, "world\n");
  for (size_t piece = 1; piece <= wire.size(); ++piece) {
    std::string out;
    std::string err;
    MultiplexedStreamDecoder decoder([&](OutputStream stream, std::string_view data) {
      (stream == OutputStream::kStdout ? out : err).append(data);
    });
    for (size_t at = 0; at < wire.size(); at += piece) decoder.Feed(wire.substr(at, piece));
    CHECK(out == "hello world\n");
    CHECK(err == "oops\n");
    CHECK(decoder.at_frame_boundary());
  }
}

}  // namespace
}  // namespace micro::runtime
