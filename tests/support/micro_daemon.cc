#include "tests/support/micro_daemon.h"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

namespace micro::testing {

std::string MicroBinary() { return MICRO_BINARY; }

MicroDaemon::MicroDaemon(const std::vector<std::string>& extra_args,
                         const std::map<std::string, std::string>& env)
    : data_dir_(dir_.path() + "/data") {
  std::vector<std::string> argv = {MicroBinary(), "server",     "--address",
                                   "127.0.0.1:0", "--data-dir", data_dir_};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  for (size_t i = 0; i + 1 < extra_args.size(); ++i) {
    if (extra_args[i] == "--data-dir") data_dir_ = extra_args[i + 1];
  }
  // A daemon killed earlier in this data dir left its server.json: never read its address.
  std::remove((data_dir_ + "/server.json").c_str());
  process_ = std::make_unique<ChildProcess>(argv, env);
}

MicroDaemon::~MicroDaemon() {
  if (process_ && process_->running()) process_->Stop(SIGTERM, std::chrono::seconds(20));
}

bool MicroDaemon::WaitUntilServing(std::chrono::milliseconds timeout) {
  const std::string path = data_dir_ + "/server.json";
  return WaitFor(
             [&] {
               if (!process_->running()) return true;
               std::ifstream in(path);
               if (!in) return false;
               auto json = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
               if (json.is_discarded() || !json.contains("grpc_address")) return false;
               address_ = json["grpc_address"].get<std::string>();
               return true;
             },
             timeout) &&
         !address_.empty() && process_->running();
}

ProgramResult MicroDaemon::Cli(std::vector<std::string> args) const {
  args.insert(args.begin(), MicroBinary());
  // Before a `--`: what follows it is the deployed command's, not the CLI's.
  auto end = std::find(args.begin(), args.end(), "--");
  args.insert(end, {"--address", address_});
  return RunProgram(args);
}

}  // namespace micro::testing
