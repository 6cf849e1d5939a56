#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/support/channel_arguments.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace micro::testing {

// The path of the built `micro` binary.
std::string MicroBinary();

// An access token of the daemon's admin (<data dir>/admin.secret through Auth.Token), or ""
// when the daemon does not give one.
std::string AdminToken(const std::string& data_dir, const std::string& address);

// A channel whose every call carries `authorization: Bearer <token>`.
std::shared_ptr<grpc::Channel> AuthedChannel(const std::string& address, const std::string& token,
                                             const grpc::ChannelArguments& args = {});

// A real `micro server` on 127.0.0.1:0 with its own temporary data dir. Once serving, it is
// logged in as admin: Cli runs with a HOME of its own that holds the tokens, and Channel's
// calls carry the admin's access token.
class MicroDaemon {
 public:
  // Starts the daemon with `extra_args` after the defaults (which they may override). A
  // `--data-dir DIR` among them replaces the temporary data dir, here too: the caller owns DIR.
  // `binary`: the daemon's executable (default MicroBinary()), for a test of an upgrade.
  explicit MicroDaemon(const std::vector<std::string>& extra_args = {},
                       const std::map<std::string, std::string>& env = {},
                       const std::string& binary = "");
  // Stops the daemon gracefully if it still runs (SIGTERM; SIGKILL after 20 s), so the services
  // it supervises stop with it instead of living on as orphans.
  ~MicroDaemon();

  // Waits for <data dir>/server.json and reads the bound address from it. False if the
  // daemon exited or did not get there within `timeout`.
  bool WaitUntilServing(std::chrono::milliseconds timeout = std::chrono::seconds(15));

  const std::string& address() const { return address_; }
  // The HTTP gateway's HOST:PORT (empty if it is off).
  const std::string& http_address() const { return http_address_; }
  const std::string& data_dir() const { return data_dir_; }
  ChildProcess& process() { return *process_; }

  // Runs the CLI against this daemon, logged in as admin: `micro <args> --address <address>`
  // with HOME set to the folder holding the tokens (and `env` added).
  ProgramResult Cli(std::vector<std::string> args,
                    std::map<std::string, std::string> env = {}) const;
  // The environment Cli adds (HOME), for tests that run the binary themselves.
  std::map<std::string, std::string> CliEnv() const { return {{"HOME", home_}}; }

  // A channel to the daemon whose calls carry the admin's token.
  std::shared_ptr<grpc::Channel> Channel(const grpc::ChannelArguments& args = {}) const;
  const std::string& token() const { return token_; }

 private:
  bool LogIn();

  TempDir dir_;
  std::string data_dir_;
  bool auth_ = true;  // false when started with --auth-enabled false
  std::string home_;
  std::string address_;
  std::string http_address_;
  std::string token_;
  std::unique_ptr<ChildProcess> process_;
};

// The nodes registered for service `name` in the daemon's registry (micro services -o json).
size_t NodeCount(const MicroDaemon& daemon, const std::string& name);
// The pids of the running instances of deployed service `name` (micro status -o json).
std::vector<int> Pids(const MicroDaemon& daemon, const std::string& name);

}  // namespace micro::testing
