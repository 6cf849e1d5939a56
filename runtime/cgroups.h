#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace micro::runtime {

// One cgroup per instance, under the daemon's own cgroup in a folder named for the supervisor:
// it holds every process of the instance, grandchildren that left the process group included,
// and carries the memory and process-count limits. Uses cgroup v1 (the pids and memory
// controllers) where they are mounted, else cgroup v2. Not thread-safe.
class Cgroups {
 public:
  // nullptr when no usable, writable hierarchy exists (the driver then falls back to process
  // groups and a /proc scan).
  static std::unique_ptr<Cgroups> Detect(const std::string& supervisor_id);
  // Removes the supervisor's folders if they are empty (they are not while instances run).
  ~Cgroups();

  // Creates the instance's cgroups with these limits (0: none). Returns the cgroup.procs files a
  // new process writes its pid to. Errors name the file that could not be written.
  [[nodiscard]] Result<std::vector<std::string>> Create(const std::string& instance,
                                                        int64_t memory_bytes,
                                                        int64_t max_processes);
  // Processes in the instance's cgroup now.
  std::vector<int> Pids(const std::string& instance) const;
  // Removes the instance's (empty) cgroups; false if some still hold processes.
  bool Remove(const std::string& instance);
  // Instances of this supervisor that have a cgroup, left by this or an earlier daemon.
  std::vector<std::string> Instances() const;

  // Whether the instances' cgroups carry memory limits (else the driver uses RLIMIT_AS).
  bool limits_memory() const { return limits_memory_; }
  // Which hierarchy is in use, for the log: "cgroup v1 (pids, memory)" or "cgroup v2".
  const std::string& description() const { return description_; }

 private:
  struct Hierarchy {
    std::string base;        // .../micro-<supervisor id>
    std::string controller;  // "pids", "memory", or "" for v2
  };
  std::vector<Hierarchy> hierarchies_;  // the first one tracks membership
  std::string description_;
  bool limits_memory_ = false;
};

}  // namespace micro::runtime
