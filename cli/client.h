#pragma once

#include <google/protobuf/message.h>
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/flags.h"
#include "core/status.h"

namespace micro::cli {

enum class Output { kTable, kJson };

// How a client command reaches the daemon, from flags and MICRO_* environment.
struct ClientOptions {
  std::string address = "127.0.0.1:8081";
  std::string ns;  // empty: the daemon's default
  Output output = Output::kTable;
  int64_t timeout_seconds = 10;
  std::string token;  // the access token sent with every call (see credentials.h)
  // TLS: on with a CA (--tls-ca, MICRO_TLS_CA, or the one `micro login` kept for the address),
  // and for a non-loopback address (then the system's CAs unless one is given).
  bool tls = false;
  std::string tls_ca_pem;  // empty: the system's CAs
};

// The flags every client command takes (--address, --namespace, --output, --timeout,
// --tls-ca).
std::vector<FlagSpec> ClientFlags();

// Flag > environment (MICRO_ADDRESS, MICRO_NAMESPACE, MICRO_OUTPUT) > default.
[[nodiscard]] Result<ClientOptions> ResolveClientOptions(
    const ParsedArgs& flags, const std::map<std::string, std::string>& env);

// A channel to the daemon. Responses up to kMaxResponseBytes are accepted (gRPC's default of
// 4 MiB is too small for ListServices of a large namespace).
std::shared_ptr<grpc::Channel> Connect(const ClientOptions& options);
inline constexpr int kMaxResponseBytes = 64 << 20;

// Sets the deadline, namespace and authorization metadata of one call.
void Prepare(grpc::ClientContext& context, const ClientOptions& options);

// Prints `error: <CODE>: <message>` to stderr, or for an unreachable daemon one line saying
// where the CLI looked and how to start one. Returns the exit code (1).
int ReportError(const grpc::Status& status, const ClientOptions& options);

// `message` as indented JSON with the proto field names.
std::string ToJson(const google::protobuf::Message& message);
void PrintJson(const google::protobuf::Message& message);

// Runs a command body: parses flags (`spec`'s plus the client flags), prints help, resolves the
// client options, and reports usage errors with exit code 2. A short name the command already
// uses for a flag of its own is dropped from the client flag.
int RunClientCommand(const CommandSpec& spec, const std::vector<std::string>& args,
                     const std::map<std::string, std::string>& env,
                     int (*body)(const ParsedArgs&, const ClientOptions&));

// One command of a group (`micro store read`, `micro events publish`).
struct Subcommand {
  const char* name;
  const char* summary;
  int (*run)(const std::vector<std::string>& args, const std::map<std::string, std::string>& env);
};

// Runs `micro GROUP <command> ...`: the usage (`about`, then the commands) on --help (exit 0) or
// with no command (stderr, exit 2), the command named by args[0] with the rest, or a usage
// error for an unknown one.
int RunSubcommand(const std::string& group, const std::string& about,
                  const std::vector<Subcommand>& commands, const std::vector<std::string>& args,
                  const std::map<std::string, std::string>& env);

}  // namespace micro::cli
