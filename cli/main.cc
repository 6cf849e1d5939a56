// The `micro` binary: `micro server` runs the daemon; every other command is a gRPC client.
#include <grpc/grpc.h>
#include <grpc/support/log.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "cli/client.h"
#include "cli/commands.h"
#include "server/daemon.h"

extern char** environ;

namespace {

struct Command {
  const char* name;
  const char* summary;
  int (*run)(const std::vector<std::string>&, const micro::cli::Env&);
};

const Command kCommands[] = {
    {"server", "run the daemon in the foreground", &micro::server::RunServerCommand},
    {"new", "create a service to start from (C++, the SDK, micro.yaml)", &micro::cli::NewCommand},
    {"run", "deploy a service (a folder with micro.yaml, or -- COMMAND)", &micro::cli::RunCommand},
    {"status", "show deployed services and their instances", &micro::cli::StatusCommand},
    {"logs", "print a deployed service's logs (-f to follow)", &micro::cli::LogsCommand},
    {"update", "replace a service's instances, with a changed manifest",
     &micro::cli::UpdateCommand},
    {"rollback", "go back to a service's options before its latest update",
     &micro::cli::RollbackCommand},
    {"kill", "stop a deployed service and remove it", &micro::cli::KillCommand},
    {"services", "list registered services, or show one", &micro::cli::ServicesCommand},
    {"call", "call a service's method with JSON (by name, through the registry)",
     &micro::cli::CallCommand},
    {"stream", "call a streaming method: JSON lines in and out", &micro::cli::StreamCommand},
    {"store", "read and write records in the store", &micro::cli::StoreCommand},
    {"config", "get, set and delete settings (JSON by dotted path)", &micro::cli::ConfigCommand},
    {"broker", "publish messages and subscribe to topics", &micro::cli::BrokerCommand},
    {"events", "publish, consume and replay durable events", &micro::cli::EventsCommand},
    {"auth", "manage accounts and rules", &micro::cli::AuthCommand},
    {"login", "log in to the daemon (tokens kept in ~/.micro/tokens)", &micro::cli::LoginCommand},
    {"logout", "forget the tokens kept for the daemon", &micro::cli::LogoutCommand},
    {"health", "show whether the daemon is serving, and its version", &micro::cli::HealthCommand},
    {"version", "print the version of this binary", &micro::cli::VersionCommand},
    {"completion", "print a bash or zsh completion script", &micro::cli::CompletionCommand},
};

void PrintUsage(std::ostream& out) {
  out << "Usage: micro <command> [flags]\n\n"
         "micro runs a microservice platform in one process ('micro server') and talks to it.\n\n"
         "Commands:\n";
  for (const Command& c : kCommands) {
    std::string name = c.name;
    out << "  " << name << std::string(12 - name.size(), ' ') << c.summary << "\n";
  }
  out << "\nRun 'micro <command> --help' for the flags of a command.\n";
}

micro::cli::Env Environment() {
  micro::cli::Env env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry = *e;
    auto eq = entry.find('=');
    if (eq != std::string::npos) env[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  return env;
}

// `micro --address X -n ns status` as `micro status --address X -n ns`: the client flags may
// come before the command, as with kubectl, docker and etcdctl. They go after the command's own
// arguments, before a `--` (what follows it belongs to the deployed command).
std::vector<std::string> MoveGlobalFlags(std::vector<std::string> args) {
  const std::vector<micro::FlagSpec> flags = micro::cli::ClientFlags();
  std::vector<std::string> global;
  size_t i = 0;
  while (i < args.size() && args[i].size() > 1 && args[i][0] == '-' && args[i] != "--" &&
         args[i] != "-h" && args[i] != "--help" && args[i] != "--version") {
    const std::string& arg = args[i];
    const micro::FlagSpec* spec = nullptr;
    for (const micro::FlagSpec& f : flags) {
      const bool long_form = arg == "--" + f.name || arg.rfind("--" + f.name + "=", 0) == 0;
      const bool short_form = f.short_name != 0 && arg == std::string{'-', f.short_name};
      if (long_form || short_form) spec = &f;
    }
    if (spec == nullptr) break;  // the command's parser reports it
    global.push_back(arg);
    const bool inline_value = arg.find('=') != std::string::npos;
    if (!spec->value_name.empty() && !inline_value && i + 1 < args.size()) {
      global.push_back(args[++i]);
    }
    ++i;
  }
  if (global.empty() || i >= args.size()) return args;
  std::vector<std::string> moved(args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
  auto end = std::find(moved.begin(), moved.end(), "--");
  moved.insert(end, global.begin(), global.end());
  return moved;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args = MoveGlobalFlags(std::vector<std::string>(argv + 1, argv + argc));
  if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    PrintUsage(args.empty() ? std::cerr : std::cout);
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version") args[0] = "version";
  // A client command reports gRPC's errors through the call's status, in its own words; gRPC's
  // log lines (a failed TLS handshake) would only repeat them. The daemon logs them itself.
  if (args[0] != "server") gpr_set_log_function([](gpr_log_func_args*) {});
  for (const Command& c : kCommands) {
    if (args[0] == c.name) {
      if (args[0] == "server") {
        return c.run(std::vector<std::string>(args.begin() + 1, args.end()), Environment());
      }
      // A client command waits for gRPC's background threads to finish at exit, so that a TLS
      // handshake still being torn down does not outlive the process half-freed. The threads
      // grpc_init starts never take SIGINT/SIGTERM: those stay with this thread (the default
      // action) or with the waiter of CancelOnSignal (cli/stop_signals.h).
      sigset_t stop_signals;
      sigset_t previous;
      sigemptyset(&stop_signals);
      sigaddset(&stop_signals, SIGINT);
      sigaddset(&stop_signals, SIGTERM);
      pthread_sigmask(SIG_BLOCK, &stop_signals, &previous);
      grpc_init();
      pthread_sigmask(SIG_SETMASK, &previous, nullptr);
      const int code = c.run(std::vector<std::string>(args.begin() + 1, args.end()), Environment());
      grpc_shutdown_blocking();
      return code;
    }
  }
  std::vector<std::string> names;
  for (const Command& c : kCommands) names.emplace_back(c.name);
  const std::string match = micro::ClosestMatch(args[0], names);
  std::cerr << "error: unknown command '" << args[0] << "'"
            << (match.empty() ? "" : "; did you mean '" + match + "'?")
            << " run 'micro --help' for the list\n";
  return 2;
}
