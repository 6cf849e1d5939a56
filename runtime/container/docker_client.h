#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "runtime/driver.h"

namespace micro::runtime {

// What POST /containers/create needs from us; everything else is the engine's default.
struct ContainerConfig {
  std::string name;
  std::string image;
  std::vector<std::string> cmd;  // empty: the image's
  std::vector<std::string> env;  // "K=V"
  std::string working_dir;       // empty: the image's
  std::map<std::string, std::string> labels;
  int64_t memory_bytes = 0;  // 0: no limit
  int64_t pids_limit = 0;    // 0: no limit
  std::string network_mode;  // empty: the engine's default
  bool init = false;         // run the engine's init (tini) as PID 1, above the command
};

// The parts of GET /containers/{id}/json that the driver and its tests read.
struct ContainerState {
  std::string id;
  std::string name;  // without the leading '/'
  int pid = 0;       // 0 unless running
  bool running = false;
  int exit_code = 0;
  bool oom_killed = false;
  int64_t memory_bytes = 0;  // HostConfig.Memory
  int64_t pids_limit = 0;    // HostConfig.PidsLimit (null: 0)
  std::string network_mode;  // HostConfig.NetworkMode
  std::vector<std::string> env;
  std::map<std::string, std::string> labels;
};

struct ContainerSummary {
  std::string id;
  std::string name;  // the first of Names, without the leading '/'
  std::map<std::string, std::string> labels;
};

// How a container ended, as POST /containers/{id}/wait reports it.
struct ContainerExit {
  int status_code = 0;
  std::string error;  // the engine's Error.Message, if any
};

// Splits the stream of GET /containers/{id}/logs (no TTY) into its frames: an 8-byte header
// (stream type, three zero bytes, big-endian length) then the payload. Input may be cut
// anywhere; payloads are delivered as they arrive, possibly in several pieces.
class MultiplexedStreamDecoder {
 public:
  using Sink = std::function<void(OutputStream, std::string_view)>;
  explicit MultiplexedStreamDecoder(Sink sink) : sink_(std::move(sink)) {}

  void Feed(std::string_view data);
  // True between frames: nothing was cut short.
  bool at_frame_boundary() const { return header_size_ == 0 && remaining_ == 0; }

 private:
  Sink sink_;
  unsigned char header_[8] = {};
  size_t header_size_ = 0;
  uint32_t remaining_ = 0;  // payload bytes still to come in the current frame
  OutputStream stream_ = OutputStream::kStdout;
};

// A wait registered with the engine (its response headers arrived) whose result is still to
// come. Registering before the start means an exit right after it cannot be missed.
class PendingWait {
 public:
  virtual ~PendingWait() = default;
  // Blocks until the container exits (or the client is shut down: CANCELLED).
  [[nodiscard]] virtual Result<ContainerExit> Finish() = 0;
};

// A blocking client of the Docker Engine API over a unix socket, one HTTP/1.1 connection per
// call. The API version is negotiated on first use: the lower of the engine's and kApiVersion.
// Errors: UNAVAILABLE when the engine cannot be reached (naming the socket), otherwise the
// engine's HTTP status mapped to a code (404 NOT_FOUND, 409 FAILED_PRECONDITION or, for create,
// ALREADY_EXISTS, 400 INVALID_ARGUMENT, 5xx INTERNAL/UNAVAILABLE), with a message
// "docker <operation>: <the engine's message>". DEADLINE_EXCEEDED when the engine does not
// answer in time: every call (connect, request, response) must be done within `timeout`, Stop
// within its grace period more; the body of a wait and of a log stream may take as long as the
// container runs. Every method is thread-safe.
class DockerClient {
 public:
  static constexpr const char* kApiVersion = "1.41";
  static constexpr std::chrono::milliseconds kDefaultTimeout = std::chrono::seconds(30);
  // Ping is what the daemon's start-up waits on: it gets at most this long.
  static constexpr std::chrono::milliseconds kPingTimeout = std::chrono::seconds(5);

  explicit DockerClient(std::string socket_path,
                        std::chrono::milliseconds timeout = kDefaultTimeout);
  ~DockerClient();
  DockerClient(const DockerClient&) = delete;
  DockerClient& operator=(const DockerClient&) = delete;

  const std::string& socket_path() const { return socket_path_; }
  std::chrono::milliseconds timeout() const { return timeout_; }

  // Asks the engine for its version (always, not cached) and negotiates ours, within
  // kPingTimeout (or the client's timeout if that is shorter).
  [[nodiscard]] Status Ping();
  // The negotiated version, e.g. "1.41"; negotiates first if needed.
  [[nodiscard]] Result<std::string> ApiVersion();

  // Returns the new container's id.
  [[nodiscard]] Result<std::string> Create(const ContainerConfig& config);
  [[nodiscard]] Status Start(const std::string& id);
  [[nodiscard]] Status Stop(const std::string& id, int grace_seconds);
  [[nodiscard]] Status Kill(const std::string& id, int signal);
  [[nodiscard]] Status Remove(const std::string& id, bool force);
  [[nodiscard]] Result<ContainerState> Inspect(const std::string& id);
  // Registers a wait for the container's next exit; see PendingWait.
  [[nodiscard]] Result<std::unique_ptr<PendingWait>> BeginWait(const std::string& id);
  // Follows stdout and stderr (containers without a TTY) from the start until the stream ends,
  // which the engine does once the container has stopped and all of its output was sent.
  // `since_unix_ms` > 0: only what was written from then on.
  [[nodiscard]] Status FollowLogs(const std::string& id,
                                  const std::function<void(OutputStream, std::string_view)>& sink,
                                  int64_t since_unix_ms = 0);
  // Containers (running or not) carrying the label key=value.
  [[nodiscard]] Result<std::vector<ContainerSummary>> ListByLabel(const std::string& key,
                                                                  const std::string& value);

  // Makes every call in progress fail at once (CANCELLED) and every later call too, by shutting
  // down the open sockets. For destructors that must not wait on long polls.
  void Shutdown();

 private:
  class Connection;
  class Wait;
  struct Response;

  // One request on a fresh connection; `path` is unversioned ("/containers/create?...").
  Result<Response> Call(std::string_view operation, std::string_view method,
                        const std::string& path, const std::string& body,
                        std::chrono::milliseconds extra_time = {});
  // A call whose response matters only as success or failure.
  Status CallForStatus(std::string_view operation, std::string_view method, const std::string& path,
                       std::chrono::milliseconds extra_time = {});
  Result<std::string> VersionedPath(const std::string& path);
  Status Negotiate(std::chrono::milliseconds timeout);

  // Sockets that Shutdown must interrupt; false once shut down (the caller must not proceed).
  bool Register(int fd);
  void Unregister(int fd);
  bool shut_down() const;

  const std::string socket_path_;
  const std::chrono::milliseconds timeout_;
  mutable std::mutex mu_;
  std::string api_version_;  // empty until negotiated
  std::set<int> open_fds_;
  bool shut_down_ = false;
};

}  // namespace micro::runtime
