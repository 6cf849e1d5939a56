#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "runtime/spec.h"

namespace micro::runtime {

enum class OutputStream { kStdout, kStderr };

// One instance to start, as a driver needs it: the engine has resolved everything else.
struct LaunchRequest {
  std::string instance_id;  // unique on this machine: [A-Za-z0-9_.-]
  std::string command;      // process: path or name on PATH; container: empty = image default
  std::vector<std::string> args;
  Env env;                    // the complete environment (the process driver passes nothing else)
  std::string working_dir;    // empty: inherit (process) or the image's (container)
  std::string image;          // container only
  std::string network_mode;   // container only; empty: host
  int64_t memory_bytes = 0;   // 0: no limit
  int64_t max_processes = 0;  // 0: no limit
  // Kept with a process instance for a next daemon to adopt it (Recover hands them back).
  std::map<std::string, std::string> labels;
};

// An instance an earlier daemon started that a driver found again (Recover).
struct Recovered {
  std::string instance_id;
  bool container = false;  // found by the container driver
  int pid = 0;             // 0: it has exited since (its output may still wait in the spool)
  std::map<std::string, std::string> labels;  // LaunchRequest::labels
};

struct Launched {
  int pid = 0;               // the main process, as seen from the host
  std::string container_id;  // container only
};

// How an instance ended. `error` is set when the driver lost track of it (the engine treats it
// as a failed run).
struct Exit {
  int code = -1;   // exit code, -1 if killed by a signal
  int signal = 0;  // the signal that ended it, 0 if none
  std::string error;
};

// Every callback runs on the engine's io_context thread, never inline from Start.
struct LaunchCallbacks {
  // Once. On failure (the reason names the OS or engine error) nothing else is called.
  std::function<void(Result<Launched>)> on_started;
  // Output as it arrives, in chunks that need not end at a line break.
  std::function<void(OutputStream, std::string_view)> on_output;
  // Once, after a successful on_started, when the instance has ended and all of its output has
  // been delivered.
  std::function<void(Exit)> on_exit;
};

// Starts instances and signals them. Implementations: process (fork/exec, process groups,
// cgroups) and container (Docker Engine API). Methods are called on the io_context thread.
class Driver {
 public:
  virtual ~Driver() = default;

  virtual void Start(const LaunchRequest& request, LaunchCallbacks callbacks) = 0;

  // Sends `signal` to every process of a started instance. SIGKILL also takes whatever the
  // instance left behind (grandchildren, the container). No-op for an unknown instance.
  virtual void Signal(const std::string& instance_id, int signal) = 0;

  // The instances an earlier daemon with the same data dir started and that the driver can take
  // over (Attach), alive or not. The default: none.
  virtual void Recover(std::function<void(std::vector<Recovered>)> done) { done({}); }

  // Takes over a recovered instance as if Start had started it: on_started with its pid, its
  // output from where the earlier daemon stopped reading (for a driver that cannot tell, the
  // output from `since_unix_ms` on: the engine's record of the last line received), on_exit
  // when it ends (at once if it already has; with Exit::error set if its status is unknown).
  virtual void Attach(const std::string& /*instance_id*/, int64_t /*since_unix_ms*/,
                      LaunchCallbacks callbacks) {
    callbacks.on_started(absl::UnimplementedError("this driver does not adopt instances"));
  }

  // Kills whatever an earlier daemon with the same data dir left running (after a crash or a
  // kill -9), but the instances in `keep` (being attached), so nothing runs twice; `done` runs on
  // the io_context thread when all are gone.
  virtual void RemoveLeftovers(const std::set<std::string>& keep, std::function<void()> done) = 0;
};

}  // namespace micro::runtime
