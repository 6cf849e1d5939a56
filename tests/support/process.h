#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "tests/support/temp_dir.h"

namespace micro::testing {

struct ProgramResult {
  int exit_code = -1;  // -1: killed at the timeout or by a signal
  std::string out;
  std::string err;
};

// Runs `argv` to completion with `env` added to this process's environment, capturing stdout
// and stderr. Killed with SIGKILL if it runs past `timeout`.
ProgramResult RunProgram(const std::vector<std::string>& argv,
                         const std::map<std::string, std::string>& env = {},
                         std::chrono::milliseconds timeout = std::chrono::seconds(20));

// A child process whose output goes to files, stopped and reaped by PID.
class ChildProcess {
 public:
  // Starts `argv` with `env` added to this process's environment.
  ChildProcess(const std::vector<std::string>& argv,
               const std::map<std::string, std::string>& env = {});
  ~ChildProcess();  // SIGKILLs and reaps the child if it still runs

  pid_t pid() const { return pid_; }
  bool running();

  // Sends `signal` and waits up to `timeout` for the exit; returns the exit code, or -1 if it
  // died by a signal or had to be SIGKILLed at the timeout.
  int Stop(int signal, std::chrono::milliseconds timeout = std::chrono::seconds(15));

  // Waits up to `timeout` for the child to exit by itself; -2 if it is still running.
  int Wait(std::chrono::milliseconds timeout);

  std::string Stdout() const;
  std::string Stderr() const;

 private:
  int Reap(int wait_status);

  TempDir output_dir_;
  pid_t pid_ = -1;
  int exit_code_ = -2;
};

// Live processes (not zombies) whose environment holds `marker` (NAME=VALUE), from /proc.
std::set<int> LivePidsWithEnv(const std::string& marker);

// The resident set size of process `pid` in bytes (VmRSS from /proc), or -1 if it is gone.
int64_t ResidentBytes(pid_t pid);

// Environment for a daemon whose RSS a test bounds. In an AddressSanitizer build, freed memory
// waits in ASan's quarantine (256 MiB by default) before it is reused, resident but no longer
// the daemon's: this caps the quarantine at 8 MiB, keeping this process's other ASAN_OPTIONS.
// Empty in other builds.
std::map<std::string, std::string> RssMeasuredEnv();

// Waits for `condition` to hold, checking every 10 ms, up to `timeout`.
template <typename Condition>
bool WaitFor(Condition condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    ::usleep(10'000);
  }
  return true;
}

}  // namespace micro::testing
