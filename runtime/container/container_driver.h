#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "runtime/container/docker_client.h"
#include "runtime/driver.h"

namespace micro::runtime {

// Runs instances as Docker containers through the Engine API on a unix socket. A container is
// named after its instance and labelled micro.supervisor=<supervisor id> and
// micro.instance=<instance id>; the label is how a later daemon finds leftovers.
//
// The Engine API is blocking HTTP, so none of it runs on the io_context: each instance has a
// thread of its own (create, start, follow the logs, wait, remove) and signals and leftover
// removal run on a small pool. Every callback is posted to the io_context.
//
// Containers run with the engine's init (docker-init) above the command, so that signals reach
// the command as they would outside a container; Launched.pid is that init, as seen from the
// host. Without a command, the image's is used (args, if any, replace its CMD). The network
// mode defaults to "host". Output is read from the engine's log stream, so the engine's log
// driver must support reading (json-file, local: the defaults).
//
// Destruction interrupts every call in progress and joins the threads without waiting for any
// container: containers still running then are left behind, for RemoveLeftovers of the next
// daemon with the same supervisor id. No callback is posted once destruction has begun.
class ContainerDriver final : public Driver {
 public:
  static constexpr const char* kSupervisorLabel = "micro.supervisor";
  static constexpr const char* kInstanceLabel = "micro.instance";

  // `engine_timeout` bounds every engine call (see DockerClient).
  ContainerDriver(boost::asio::io_context& io, std::string socket_path, std::string supervisor_id,
                  std::chrono::milliseconds engine_timeout = DockerClient::kDefaultTimeout);
  ~ContainerDriver() override;
  ContainerDriver(const ContainerDriver&) = delete;
  ContainerDriver& operator=(const ContainerDriver&) = delete;

  // The engine's socket from the environment: DOCKER_HOST=unix:///path, else
  // /var/run/docker.sock. INVALID_ARGUMENT for any other DOCKER_HOST (tcp://, ssh://, ...).
  [[nodiscard]] static Result<std::string> DefaultSocket(
      const std::map<std::string, std::string>& env);

  // Blocking: reaches the engine and negotiates the API version, so that the daemon can report
  // a missing or unreachable engine at start-up (UNAVAILABLE, naming the socket).
  [[nodiscard]] Status Ping();

  void Start(const LaunchRequest& request, LaunchCallbacks callbacks) override;
  // SIGKILL also force-removes the container. The exit is then reported as that signal.
  void Signal(const std::string& instance_id, int signal) override;
  // Containers of this supervisor an earlier daemon started (the labels micro.label.*).
  void Recover(std::function<void(std::vector<Recovered>)> done) override;
  // Follows the container's output from `since_unix_ms` on (the engine keeps its log) and waits
  // for its exit, whose status the engine knows.
  void Attach(const std::string& instance_id, int64_t since_unix_ms,
              LaunchCallbacks callbacks) override;
  void RemoveLeftovers(const std::set<std::string>& keep, std::function<void()> done) override;

  static constexpr const char* kLabelPrefix = "micro.label.";

 private:
  struct Instance;

  // Registers an instance and runs `body` on a thread of its own; false (after on_started with
  // the reason) if it cannot.
  void Launch(const std::string& instance_id, LaunchCallbacks callbacks,
              std::function<void(std::shared_ptr<Instance>)> body);
  void Run(std::shared_ptr<Instance> instance, LaunchRequest request);
  void RunAdopted(std::shared_ptr<Instance> instance, int64_t since_unix_ms);
  // Creates the container (replacing a leftover of the same name) and registers a wait on it.
  Result<std::unique_ptr<PendingWait>> CreateContainer(const LaunchRequest& request);
  Exit Supervise(const std::shared_ptr<Instance>& instance, PendingWait& wait,
                 int64_t since_unix_ms = 0);
  // After on_started: pending signals, Supervise, removal, on_exit.
  void Follow(const std::shared_ptr<Instance>& instance, PendingWait& wait, int64_t since_unix_ms);
  // Force-removes a container, waiting out a removal already under way.
  Status RemoveContainer(const std::string& name);
  void SendSignal(const std::string& instance_id, int signal);
  void Finish(const std::shared_ptr<Instance>& instance);
  void ReapFinishedThreads();
  // Posts `handler` to the io_context unless destruction has begun.
  void Post(std::function<void()> handler);

  boost::asio::io_context& io_;
  const std::string supervisor_id_;
  DockerClient client_;
  boost::asio::thread_pool control_{2};  // signals and leftovers: short calls

  std::mutex mu_;
  bool stopping_ = false;
  std::map<std::string, std::shared_ptr<Instance>> instances_;  // by instance id
  std::vector<std::thread> finished_;  // threads done with their instance, to be joined
};

}  // namespace micro::runtime
