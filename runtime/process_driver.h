#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "runtime/cgroups.h"
#include "runtime/driver.h"

namespace micro::runtime {

// Runs instances as local processes. Each gets its own process group and, where cgroups can be
// written, its own cgroup (limits, and every descendant tracked); stdin is /dev/null.
//
// Stdout and stderr go to two spool files per instance in the state dir, which outlive the
// daemon: an instance keeps writing while no daemon runs, and loses nothing. The daemon reads
// them on the io_context when inotify says they grew, and punches holes in what it has read (up
// to the last line break), so the files take no disk space for output already delivered, and a
// next daemon finds where reading stopped (the first byte that is not a hole or a NUL). Each
// instance also has a record (pid, its start time, the engine's labels) from which a next
// daemon adopts it (Recover, Attach).
//
// Exits of the daemon's own children arrive through SIGCHLD on the io_context, not by polling;
// those of adopted instances (children of an earlier daemon) through a pidfd, with no exit
// status. Scans of /proc run on a thread of their own. The daemon becomes a child subreaper, so
// orphaned grandchildren are reaped here. Every process carries MICRO_SUPERVISOR_ID in its
// environment, which is how leftovers of a daemon that was killed are found again.
class ProcessDriver final : public Driver {
 public:
  // One per process: it owns SIGCHLD. `supervisor_id` names this data dir's supervisor.
  // `use_cgroups` false: process groups and /proc scans only, as where no cgroup is writable.
  // `state_dir`: where spools and records go (made if missing); empty: a temporary folder of its
  // own, removed with the driver (nothing to adopt later).
  ProcessDriver(boost::asio::io_context& io, std::string supervisor_id, bool use_cgroups = true,
                std::string state_dir = "");
  ~ProcessDriver() override;

  void Start(const LaunchRequest& request, LaunchCallbacks callbacks) override;
  void Signal(const std::string& instance_id, int signal) override;
  void Recover(std::function<void(std::vector<Recovered>)> done) override;
  // `since_unix_ms` is not needed: a spool knows where reading stopped.
  void Attach(const std::string& instance_id, int64_t since_unix_ms,
              LaunchCallbacks callbacks) override;
  void RemoveLeftovers(const std::set<std::string>& keep, std::function<void()> done) override;

  // "cgroup v1 (pids, memory)", "cgroup v2", or "process groups (no writable cgroups)".
  std::string isolation() const;

 private:
  struct Child;
  enum class ReadState { kEmpty, kMore, kClosed };
  std::string PathOf(const std::string& instance_id, const char* suffix) const;
  // Registers a started or adopted child: its spools watched, on_started posted.
  void Track(const std::shared_ptr<Child>& child);
  void WatchInotify();
  // Reads the child's spools every 100 ms (when inotify could not watch them).
  void PollSpools(const std::shared_ptr<Child>& child);
  void DrainSpool(const std::shared_ptr<Child>& child, int index);
  // Reads up to `budget` bytes or `line_budget` lines and hands them on; says whether the spool
  // is read to its end, may have more, or is closed.
  ReadState ReadSpool(const std::shared_ptr<Child>& child, int index, size_t budget,
                      size_t line_budget);
  void OnSigchld();
  // The rest of the output delivered, the spools and record gone, then the cgroup emptied and
  // on_exit.
  void Finish(const std::shared_ptr<Child>& child, Exit exit);
  void AwaitEmptyCgroup(const std::shared_ptr<Child>& child, Exit exit, int polls);
  void KillInstance(const std::string& instance_id, pid_t pgid, int signal);
  // On the scanner thread: finds the processes whose environment holds `marker`, sends them
  // `signal` (0: none), then runs `then` with them on the io_context.
  void KillMarked(std::string marker, int signal, std::function<void(std::vector<pid_t>)> then);
  void RemoveLeftovers(std::vector<pid_t> pids, const std::set<std::string>& keep,
                       std::function<void()> done);
  // Drops the pids that are gone (checked on the scanner thread), then AwaitGoneStep on the io
  // thread: SIGKILL what is left after `polls` polls, else poll again. The cgroups of `keep`
  // stay.
  void AwaitGone(std::vector<pid_t> pids, int polls, std::set<std::string> keep,
                 std::function<void()> done);
  void AwaitGoneStep(std::vector<pid_t> pids, int polls, std::set<std::string> keep,
                     std::function<void()> done);

  boost::asio::io_context& io_;
  const std::string supervisor_id_;
  std::string state_dir_;
  bool own_state_dir_ = false;
  std::unique_ptr<Cgroups> cgroups_;
  boost::asio::signal_set sigchld_;
  std::unique_ptr<boost::asio::posix::stream_descriptor> inotify_;
  std::map<int, std::pair<std::weak_ptr<Child>, int>> by_watch_;  // watch -> child, spool
  std::map<pid_t, std::shared_ptr<Child>> by_pid_;
  std::map<std::string, std::shared_ptr<Child>> by_instance_;
  // Scans of /proc (every process's environment) run here, off the event loop.
  boost::asio::thread_pool scanner_;
};

}  // namespace micro::runtime
