#pragma once

#include <map>
#include <string>
#include <vector>

namespace micro::cli {

using Env = std::map<std::string, std::string>;

// Each returns the process exit code: 0 success, 2 a usage error, else the class of the failed
// call (cli/client.h, docs/cli.md).
int ServicesCommand(const std::vector<std::string>& args, const Env& env);
int StoreCommand(const std::vector<std::string>& args, const Env& env);
int ConfigCommand(const std::vector<std::string>& args, const Env& env);
int BrokerCommand(const std::vector<std::string>& args, const Env& env);
int EventsCommand(const std::vector<std::string>& args, const Env& env);
int HealthCommand(const std::vector<std::string>& args, const Env& env);
int AuthCommand(const std::vector<std::string>& args, const Env& env);
int LoginCommand(const std::vector<std::string>& args, const Env& env);
int LogoutCommand(const std::vector<std::string>& args, const Env& env);
// Calling user services by name (cli/call.cc).
int CallCommand(const std::vector<std::string>& args, const Env& env);
int StreamCommand(const std::vector<std::string>& args, const Env& env);
// A service to start from (cli/new.cc).
int NewCommand(const std::vector<std::string>& args, const Env& env);
// Shell completion scripts (cli/completion.cc).
int CompletionCommand(const std::vector<std::string>& args, const Env& env);
int VersionCommand(const std::vector<std::string>& args, const Env& env);
// The runtime: deployed services (cli/runtime.cc).
int RunCommand(const std::vector<std::string>& args, const Env& env);
int UpdateCommand(const std::vector<std::string>& args, const Env& env);
int RollbackCommand(const std::vector<std::string>& args, const Env& env);
int KillCommand(const std::vector<std::string>& args, const Env& env);
int StatusCommand(const std::vector<std::string>& args, const Env& env);
int LogsCommand(const std::vector<std::string>& args, const Env& env);

}  // namespace micro::cli
