#include "runtime/container/container_driver.h"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <chrono>
#include <csignal>
#include <system_error>
#include <utility>

namespace micro::runtime {
namespace {

constexpr const char* kDefaultSocket = "/var/run/docker.sock";
constexpr int kRemovalPolls = 100;
constexpr std::chrono::milliseconds kRemovalPollInterval{100};

// Errors that only mean someone else (a SIGKILL, the engine) got there first.
bool AlreadyGone(const Status& status) {
  return absl::IsNotFound(status) || absl::IsFailedPrecondition(status);
}

}  // namespace

struct ContainerDriver::Instance {
  std::string id;  // the instance id, which is also the container's name
  LaunchCallbacks callbacks;
  std::thread thread;    // runs Run; guarded by mu_
  bool started = false;  // guarded by mu_; from then on signals go straight to the engine
  int signal = 0;        // guarded by mu_; the last signal asked for, 0 if none
};

ContainerDriver::ContainerDriver(boost::asio::io_context& io, std::string socket_path,
                                 std::string supervisor_id,
                                 std::chrono::milliseconds engine_timeout)
    : io_(io),
      supervisor_id_(std::move(supervisor_id)),
      client_(std::move(socket_path), engine_timeout) {}

ContainerDriver::~ContainerDriver() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  // Every blocking call (the log streams and waits above all) now fails at once, so the joins
  // below are quick; the containers themselves keep running.
  client_.Shutdown();
  control_.stop();
  control_.join();
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    threads = std::move(finished_);
    for (auto& [id, instance] : instances_) {
      if (instance->thread.joinable()) threads.push_back(std::move(instance->thread));
    }
  }
  for (std::thread& thread : threads) thread.join();
}

Result<std::string> ContainerDriver::DefaultSocket(const std::map<std::string, std::string>& env) {
  auto it = env.find("DOCKER_HOST");
  if (it == env.end() || it->second.empty()) return std::string(kDefaultSocket);
  const std::string& host = it->second;
  constexpr std::string_view kScheme = "unix://";
  if (host.compare(0, kScheme.size(), kScheme) != 0 || host.size() == kScheme.size()) {
    return absl::InvalidArgumentError(
        "DOCKER_HOST=" + host +
        " is not supported: the container driver reaches the engine on a unix socket only "
        "(DOCKER_HOST=unix:///path/to/docker.sock)");
  }
  return host.substr(kScheme.size());
}

Status ContainerDriver::Ping() { return client_.Ping(); }

void ContainerDriver::Start(const LaunchRequest& request, LaunchCallbacks callbacks) {
  Launch(request.instance_id, std::move(callbacks),
         [this, request](std::shared_ptr<Instance> instance) { Run(instance, request); });
}

void ContainerDriver::Attach(const std::string& instance_id, int64_t since_unix_ms,
                             LaunchCallbacks callbacks) {
  Launch(instance_id, std::move(callbacks),
         [this, since_unix_ms](std::shared_ptr<Instance> i) { RunAdopted(i, since_unix_ms); });
}

void ContainerDriver::Launch(const std::string& instance_id, LaunchCallbacks callbacks,
                             std::function<void(std::shared_ptr<Instance>)> body) {
  ReapFinishedThreads();
  auto instance = std::make_shared<Instance>();
  instance->id = instance_id;
  instance->callbacks = std::move(callbacks);
  Status refused;
  {
    std::lock_guard lock(mu_);
    if (!instances_.emplace(instance_id, instance).second) {
      refused = absl::AlreadyExistsError("instance " + instance_id + " is still running");
    } else {
      try {
        instance->thread = std::thread(std::move(body), instance);
      } catch (const std::system_error& error) {
        instances_.erase(instance_id);
        refused = absl::ResourceExhaustedError("cannot start a thread for instance " + instance_id +
                                               ": " + error.what());
      }
    }
  }
  if (!refused.ok()) {
    Post([on_started = instance->callbacks.on_started, refused] { on_started(refused); });
  }
}

void ContainerDriver::RunAdopted(std::shared_ptr<Instance> instance, int64_t since_unix_ms) {
  const std::string& name = instance->id;
  Result<std::unique_ptr<PendingWait>> wait = client_.BeginWait(name);
  Result<ContainerState> state = wait.ok() ? client_.Inspect(name) : wait.status();
  if (!state.ok()) {
    Finish(instance);
    Post([instance, error = state.status()] { instance->callbacks.on_started(error); });
    return;
  }
  Post([instance, launched = Launched{state->pid, state->id}] {
    instance->callbacks.on_started(launched);
  });
  Follow(instance, **wait, since_unix_ms);
}

void ContainerDriver::Recover(std::function<void(std::vector<Recovered>)> done) {
  boost::asio::post(control_, [this, done = std::move(done)]() mutable {
    std::vector<Recovered> found;
    Result<std::vector<ContainerSummary>> containers =
        client_.ListByLabel(kSupervisorLabel, supervisor_id_);
    if (containers.ok()) {
      for (const ContainerSummary& container : *containers) {
        auto instance = container.labels.find(kInstanceLabel);
        if (instance == container.labels.end()) continue;
        Recovered r;
        r.instance_id = instance->second;
        r.container = true;
        const std::string prefix = kLabelPrefix;
        for (const auto& [key, value] : container.labels) {
          if (key.compare(0, prefix.size(), prefix) == 0)
            r.labels[key.substr(prefix.size())] = value;
        }
        Result<ContainerState> state = client_.Inspect(container.id);
        r.pid = state.ok() && state->running ? state->pid : 0;
        found.push_back(std::move(r));
      }
    }
    Post([done = std::move(done), found = std::move(found)]() mutable { done(std::move(found)); });
  });
}

void ContainerDriver::Run(std::shared_ptr<Instance> instance, LaunchRequest request) {
  const std::string& name = instance->id;
  Result<std::unique_ptr<PendingWait>> wait = CreateContainer(request);
  if (wait.ok()) {
    Status started = client_.Start(name);
    if (!started.ok()) wait = started;
  }
  Result<ContainerState> state = wait.ok() ? client_.Inspect(name) : wait.status();
  if (!state.ok()) {
    // Whatever was created must not outlive the failed start.
    (void)client_.Remove(name, /*force=*/true);
    Finish(instance);
    Post([instance, error = state.status()] { instance->callbacks.on_started(error); });
    return;
  }
  // A container that already ended reports pid 0: its exit follows at once.
  Post([instance, launched = Launched{state->pid, state->id}] {
    instance->callbacks.on_started(launched);
  });
  Follow(instance, **wait, 0);
}

void ContainerDriver::Follow(const std::shared_ptr<Instance>& instance, PendingWait& wait,
                             int64_t since_unix_ms) {
  const std::string& name = instance->id;
  int pending = 0;
  {
    std::lock_guard lock(mu_);
    instance->started = true;
    pending = instance->signal;
  }
  if (pending != 0) SendSignal(name, pending);

  Exit exit = Supervise(instance, wait, since_unix_ms);
  if (Status removed = RemoveContainer(name); !removed.ok() && !absl::IsCancelled(removed)) {
    spdlog::warn("container driver: {}", std::string(removed.message()));
  }
  // Out of the map before on_exit, so that the engine may start the instance again at once.
  Finish(instance);
  Post([instance, exit = std::move(exit)] { instance->callbacks.on_exit(exit); });
}

Result<std::unique_ptr<PendingWait>> ContainerDriver::CreateContainer(
    const LaunchRequest& request) {
  if (request.image.empty()) {
    return absl::InvalidArgumentError("instance " + request.instance_id +
                                      ": the container driver needs an image");
  }
  ContainerConfig config;
  config.name = request.instance_id;
  config.image = request.image;
  // Without a command, args replace the image's CMD and keep its ENTRYPOINT, as `docker run`.
  if (!request.command.empty()) config.cmd.push_back(request.command);
  config.cmd.insert(config.cmd.end(), request.args.begin(), request.args.end());
  for (const auto& [key, value] : request.env) config.env.push_back(key + "=" + value);
  config.working_dir = request.working_dir;
  config.labels = {{kSupervisorLabel, supervisor_id_}, {kInstanceLabel, request.instance_id}};
  // What a next daemon needs to adopt it (Recover).
  for (const auto& [key, value] : request.labels) config.labels[kLabelPrefix + key] = value;
  config.memory_bytes = request.memory_bytes;
  config.pids_limit = request.max_processes;
  config.network_mode = request.network_mode.empty() ? "host" : request.network_mode;
  // An init above the command, so that signals act on it as on a process outside a container
  // (PID 1 ignores those it has no handler for, SIGTERM included) and orphans are reaped.
  config.init = true;

  Result<std::string> id = client_.Create(config);
  if (absl::IsAlreadyExists(id.status())) {
    // Left from an earlier run of this instance (a daemon killed before it could remove it):
    // nothing of ours runs in it any more.
    if (Status removed = client_.Remove(config.name, /*force=*/true); !removed.ok()) {
      return removed;
    }
    id = client_.Create(config);
  }
  if (!id.ok()) return id.status();
  // Registered before the start, so that an exit right after it cannot be missed.
  return client_.BeginWait(*id);
}

Exit ContainerDriver::Supervise(const std::shared_ptr<Instance>& instance, PendingWait& wait,
                                int64_t since_unix_ms) {
  // The log stream ends once the container has stopped and everything it wrote was sent, so
  // reading it to the end before the exit status is what delivers all output before on_exit.
  auto forward = [this, instance](OutputStream stream, std::string_view data) {
    Post([instance, stream, text = std::string(data)] {
      instance->callbacks.on_output(stream, text);
    });
  };
  Status logs = client_.FollowLogs(instance->id, forward, since_unix_ms);
  if (!logs.ok() && !absl::IsCancelled(logs)) {
    spdlog::warn("container driver: instance {}: {}", instance->id, std::string(logs.message()));
  }
  Result<ContainerExit> ended = wait.Finish();
  if (!ended.ok()) return Exit{-1, 0, std::string(ended.status().message())};
  Exit exit{ended->status_code, 0, ended->error};
  bool signaled = false;
  {
    std::lock_guard lock(mu_);
    signaled = instance->signal != 0;
  }
  if (!signaled && exit.code > 128) {
    // The kernel's OOM killer is the other way a container dies of a signal (SIGKILL).
    Result<ContainerState> state = client_.Inspect(instance->id);
    signaled = state.ok() && state->oom_killed;
  }
  // The init reports a command killed by signal N as 128 + N, like a shell.
  if (signaled && exit.code > 128 && exit.code < 128 + NSIG) {
    exit.signal = exit.code - 128;
    exit.code = -1;
  }
  return exit;
}

Status ContainerDriver::RemoveContainer(const std::string& name) {
  // A SIGKILL's removal may be under way (409): on_exit must still find the container gone.
  for (int attempt = 0; attempt < kRemovalPolls; ++attempt) {
    Status removed = client_.Remove(name, /*force=*/true);
    if (removed.ok() || absl::IsNotFound(removed)) return absl::OkStatus();
    if (!absl::IsFailedPrecondition(removed)) return removed;
    std::this_thread::sleep_for(kRemovalPollInterval);
  }
  return absl::DeadlineExceededError("docker remove: " + name + " is still being removed");
}

void ContainerDriver::Signal(const std::string& instance_id, int signal) {
  {
    std::lock_guard lock(mu_);
    auto it = instances_.find(instance_id);
    if (it == instances_.end()) return;
    it->second->signal = signal;
    // Not started yet: Run sends it once the container runs, since the engine cannot signal a
    // container before that.
    if (!it->second->started) return;
  }
  boost::asio::post(control_, [this, instance_id, signal] { SendSignal(instance_id, signal); });
}

void ContainerDriver::SendSignal(const std::string& instance_id, int signal) {
  Status sent = client_.Kill(instance_id, signal);
  if (signal == SIGKILL) {
    // Whatever the kill left behind goes with the container; Run then finds it gone.
    Status removed = client_.Remove(instance_id, /*force=*/true);
    if (sent.ok() || AlreadyGone(sent)) sent = removed;
  }
  if (!sent.ok() && !AlreadyGone(sent) && !absl::IsCancelled(sent)) {
    spdlog::warn("container driver: instance {}: {}", instance_id, std::string(sent.message()));
  }
}

void ContainerDriver::RemoveLeftovers(const std::set<std::string>& keep,
                                      std::function<void()> done) {
  boost::asio::post(control_, [this, keep, done = std::move(done)] {
    Result<std::vector<ContainerSummary>> containers =
        client_.ListByLabel(kSupervisorLabel, supervisor_id_);
    if (!containers.ok()) {
      spdlog::warn("container driver: cannot look for leftover containers: {}",
                   std::string(containers.status().message()));
    } else {
      for (const ContainerSummary& container : *containers) {
        {
          // Ours, from this daemon: not a leftover.
          std::lock_guard lock(mu_);
          auto label = container.labels.find(kInstanceLabel);
          if (label != container.labels.end() &&
              (instances_.count(label->second) > 0 || keep.count(label->second) > 0)) {
            continue;
          }
        }
        Status removed = client_.Remove(container.id, /*force=*/true);
        if (!removed.ok() && !AlreadyGone(removed)) {
          spdlog::warn("container driver: leftover {}: {}", container.name,
                       std::string(removed.message()));
        }
      }
    }
    Post(done);
  });
}

void ContainerDriver::Finish(const std::shared_ptr<Instance>& instance) {
  std::lock_guard lock(mu_);
  finished_.push_back(std::move(instance->thread));
  auto it = instances_.find(instance->id);
  if (it != instances_.end() && it->second == instance) instances_.erase(it);
}

void ContainerDriver::ReapFinishedThreads() {
  std::vector<std::thread> finished;
  {
    std::lock_guard lock(mu_);
    finished.swap(finished_);
  }
  // Each of them is past its last use of the driver, so these joins return at once.
  for (std::thread& thread : finished) {
    if (thread.joinable()) thread.join();
  }
}

void ContainerDriver::Post(std::function<void()> handler) {
  std::lock_guard lock(mu_);
  if (!stopping_) boost::asio::post(io_, std::move(handler));
}

}  // namespace micro::runtime
