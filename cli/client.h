#pragma once

#include <google/protobuf/message.h>
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <functional>
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
  // Where the address came from: "--address", "MICRO_ADDRESS", a server.json path, "default".
  std::string address_source = "default";
  std::string discovered_ca_file;  // the TLS CA that server.json names, if it was used
};

// The flags every client command takes (--address, --namespace, --output, --timeout,
// --tls-ca).
std::vector<FlagSpec> ClientFlags();

// Flag > environment (MICRO_ADDRESS, MICRO_NAMESPACE, MICRO_OUTPUT) > default. The address
// without flag or variable comes from the server.json of the data dir (--data-dir, MICRO_HOME,
// ~/.micro) when the daemon that wrote it still runs, else 127.0.0.1:8081.
[[nodiscard]] Result<ClientOptions> ResolveClientOptions(
    const ParsedArgs& flags, const std::map<std::string, std::string>& env);

// The daemon's data dir as a client sees it: --data-dir, else MICRO_HOME, else ~/.micro.
std::string DataDirOf(const ParsedArgs& flags, const std::map<std::string, std::string>& env);

// A channel to the daemon. Responses up to kMaxResponseBytes are accepted (gRPC's default of
// 4 MiB is too small for ListServices of a large namespace).
std::shared_ptr<grpc::Channel> Connect(const ClientOptions& options);
inline constexpr int kMaxResponseBytes = 64 << 20;

// Sets the deadline, namespace and authorization metadata of one call.
void Prepare(grpc::ClientContext& context, const ClientOptions& options);

// Exit codes by class (docs/cli.md), so scripts can tell "not there" from "daemon down".
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;        // anything else (INTERNAL, DEADLINE_EXCEEDED, ...)
inline constexpr int kExitUsage = 2;        // bad flags or arguments, rejected by the CLI
inline constexpr int kExitNotFound = 3;     // NOT_FOUND
inline constexpr int kExitConflict = 4;     // ALREADY_EXISTS, FAILED_PRECONDITION, ABORTED
inline constexpr int kExitDenied = 5;       // UNAUTHENTICATED, PERMISSION_DENIED
inline constexpr int kExitUnreachable = 6;  // UNAVAILABLE: no daemon answers (or it drains)

// The exit code of a failed call, by its status code alone (never by the message's words).
// INVALID_ARGUMENT and OUT_OF_RANGE from the daemon are kExitUsage too: the request was wrong.
int ExitCodeOf(absl::StatusCode code);

// Prints the error to stderr and returns its exit code (ExitCodeOf): `error: <CODE>: <message>`,
// or with `-o json` one line `{"error":{"code":"NOT_FOUND","message":"...","exit_code":3}}`.
// An unreachable daemon gets a message saying where the CLI looked and how to start one.
int ReportError(const grpc::Status& status, const ClientOptions& options);
int ReportError(const Status& status, const ClientOptions& options);

// A line from the terminal without echo (after `prompt` on stderr), or from stdin when it is not
// a terminal; trailing newlines and spaces removed. For secrets, which never go through argv.
std::string ReadSecret(const std::string& prompt);

// Runs `call`, a blocking RPC that may take long (a stop's grace period, a snapshot). On a
// terminal, stderr shows `what` and the seconds passed, once a second after the first, and the
// line is cleared when it returns; in a pipe nothing is printed.
grpc::Status WithProgress(const std::string& what, const std::function<grpc::Status()>& call);

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
