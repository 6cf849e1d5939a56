#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace micro::testing {

// The path of the built `micro` binary.
std::string MicroBinary();

// A real `micro server` on 127.0.0.1:0 with its own temporary data dir.
class MicroDaemon {
 public:
  // Starts the daemon with `extra_args` after the defaults (which they may override). A
  // `--data-dir DIR` among them replaces the temporary data dir, here too: the caller owns DIR.
  explicit MicroDaemon(const std::vector<std::string>& extra_args = {},
                       const std::map<std::string, std::string>& env = {});
  // Stops the daemon gracefully if it still runs (SIGTERM; SIGKILL after 20 s), so the services
  // it supervises stop with it instead of living on as orphans.
  ~MicroDaemon();

  // Waits for <data dir>/server.json and reads the bound address from it. False if the
  // daemon exited or did not get there within `timeout`.
  bool WaitUntilServing(std::chrono::milliseconds timeout = std::chrono::seconds(15));

  const std::string& address() const { return address_; }
  const std::string& data_dir() const { return data_dir_; }
  ChildProcess& process() { return *process_; }

  // Runs the CLI against this daemon: `micro <args> --address <address>`.
  ProgramResult Cli(std::vector<std::string> args) const;

 private:
  TempDir dir_;
  std::string data_dir_;
  std::string address_;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace micro::testing
