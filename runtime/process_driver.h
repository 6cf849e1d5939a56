#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <map>
#include <memory>
#include <string>

#include "runtime/cgroups.h"
#include "runtime/driver.h"

namespace micro::runtime {

// Runs instances as local processes. Each gets its own process group and, where cgroups can be
// written, its own cgroup (limits, and every descendant tracked); stdin is /dev/null, stdout and
// stderr are pipes read on the io_context. Exits arrive through SIGCHLD on the io_context, not
// by polling; scans of /proc run on a thread of their own. The daemon becomes a child subreaper, so
// orphaned grandchildren are reaped here. Every process carries MICRO_SUPERVISOR_ID in its
// environment, which is how leftovers of a daemon that was killed are found again.
class ProcessDriver final : public Driver {
 public:
  // One per process: it owns SIGCHLD. `supervisor_id` names this data dir's supervisor.
  // `use_cgroups` false: process groups and /proc scans only, as where no cgroup is writable.
  ProcessDriver(boost::asio::io_context& io, std::string supervisor_id, bool use_cgroups = true);
  ~ProcessDriver() override;

  void Start(const LaunchRequest& request, LaunchCallbacks callbacks) override;
  void Signal(const std::string& instance_id, int signal) override;
  void RemoveLeftovers(std::function<void()> done) override;

  // "cgroup v1 (pids, memory)", "cgroup v2", or "process groups (no writable cgroups)".
  std::string isolation() const;

 private:
  struct Child;
  enum class PipeState { kEmpty, kMore, kClosed };
  void WatchPipe(const std::shared_ptr<Child>& child, int index);
  void DrainPipe(const std::shared_ptr<Child>& child, int index);
  // Reads up to `budget` bytes and hands them on; says whether the pipe is drained, may have
  // more, or is closed.
  PipeState ReadPipe(const std::shared_ptr<Child>& child, int index, size_t budget);
  void OnSigchld();
  void AwaitEmptyCgroup(const std::shared_ptr<Child>& child, Exit exit, int polls);
  void Adopt(const std::string& instance_id, pid_t pid, int out_fd, int err_fd,
             LaunchCallbacks callbacks);
  void KillInstance(const std::string& instance_id, pid_t pgid, int signal);
  // On the scanner thread: finds the processes whose environment holds `marker`, sends them
  // `signal` (0: none), then runs `then` with them on the io_context.
  void KillMarked(std::string marker, int signal, std::function<void(std::vector<pid_t>)> then);
  void RemoveLeftovers(std::vector<pid_t> pids, std::function<void()> done);
  // Drops the pids that are gone (checked on the scanner thread), then AwaitGoneStep on the io
  // thread: SIGKILL what is left after `polls` polls, else poll again.
  void AwaitGone(std::vector<pid_t> pids, int polls, std::function<void()> done);
  void AwaitGoneStep(std::vector<pid_t> pids, int polls, std::function<void()> done);

  boost::asio::io_context& io_;
  const std::string supervisor_id_;
  std::unique_ptr<Cgroups> cgroups_;
  boost::asio::signal_set sigchld_;
  std::map<pid_t, std::shared_ptr<Child>> by_pid_;
  std::map<std::string, std::shared_ptr<Child>> by_instance_;
  // Scans of /proc (every process's environment) run here, off the event loop.
  boost::asio::thread_pool scanner_;
};

}  // namespace micro::runtime
