#include "cli/client.h"

#include <absl/status/status.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <fstream>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/credentials.h"
#include "core/address.h"

namespace micro::cli {

std::vector<FlagSpec> ClientFlags() {
  return {
      {"address", 'a', "HOST:PORT", "daemon address (env MICRO_ADDRESS; default 127.0.0.1:8081)"},
      {"namespace", 'n', "NS", "namespace (env MICRO_NAMESPACE; default micro)"},
      {"output", 'o', "FORMAT", "table or json (env MICRO_OUTPUT; default table)"},
      {"timeout", 0, "SECONDS", "give up after this long (default 10)"},
      {"tls-ca", 0, "FILE",
       "verify the daemon's TLS certificate against this CA (env MICRO_TLS_CA; micro login "
       "keeps it for the address)"},
      {"data-dir", 0, "DIR",
       "find the daemon's address in DIR/server.json when --address and MICRO_ADDRESS are not "
       "given (env MICRO_HOME; default ~/.micro)"},
  };
}

std::string DataDirOf(const ParsedArgs& flags, const std::map<std::string, std::string>& env) {
  if (flags.Has("data-dir")) return flags.Get("data-dir");
  if (auto it = env.find("MICRO_HOME"); it != env.end() && !it->second.empty()) return it->second;
  auto home = env.find("HOME");
  return (home != env.end() ? home->second : std::string("/root")) + "/.micro";
}

namespace {

// The address a running daemon wrote to <data dir>/server.json; nothing if there is no such
// file or the daemon that wrote it is gone (kill -9 leaves the file behind).
bool Discover(const ParsedArgs& flags, const std::map<std::string, std::string>& env,
              ClientOptions* options) {
  const std::string path = DataDirOf(flags, env) + "/server.json";
  std::ifstream in(path);
  if (!in) return false;
  auto json = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object() || !json["grpc_address"].is_string() || !json["pid"].is_number()) {
    return false;
  }
  const int pid = json["pid"].get<int>();
  if (pid <= 0 || (::kill(pid, 0) != 0 && errno == ESRCH)) return false;
  std::string address = json["grpc_address"].get<std::string>();
  // A daemon listening on every interface is reached on the loopback one.
  const std::string host = HostOf(address);
  if (host == "0.0.0.0") address = "127.0.0.1" + address.substr(host.size());
  if (host == "[::]") address = "[::1]" + address.substr(host.size());
  options->address = address;
  options->address_source = path;
  if (json.value("tls", false) && json["tls_ca_file"].is_string()) {
    options->discovered_ca_file = json["tls_ca_file"].get<std::string>();
  }
  return true;
}

}  // namespace

Result<ClientOptions> ResolveClientOptions(const ParsedArgs& flags,
                                           const std::map<std::string, std::string>& env) {
  ClientOptions options;
  const auto pick = [&](const char* flag, const char* var, std::string& out) {
    if (flags.Has(flag)) {
      out = flags.Get(flag);
    } else if (auto it = env.find(var); it != env.end() && !it->second.empty()) {
      out = it->second;
    }
  };
  if (flags.Has("address")) {
    options.address = flags.Get("address");
    options.address_source = "--address";
  } else if (auto it = env.find("MICRO_ADDRESS"); it != env.end() && !it->second.empty()) {
    options.address = it->second;
    options.address_source = "MICRO_ADDRESS";
  } else {
    Discover(flags, env, &options);
  }
  pick("namespace", "MICRO_NAMESPACE", options.ns);
  std::string output = "table";
  pick("output", "MICRO_OUTPUT", output);
  if (output == "json") {
    options.output = Output::kJson;
  } else if (output != "table") {
    return absl::InvalidArgumentError(
        "output format (--output or MICRO_OUTPUT) must be table or "
        "json, not '" +
        output + "'");
  }
  if (flags.Has("timeout")) {
    const std::string t = flags.Get("timeout");
    int64_t n = 0;
    auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), n);
    if (ec != std::errc() || end != t.data() + t.size() || n <= 0) {
      return absl::InvalidArgumentError("--timeout must be a positive number of seconds");
    }
    options.timeout_seconds = n;
  }
  if (options.address.empty()) return absl::InvalidArgumentError("--address is empty");
  return options;
}

std::shared_ptr<grpc::Channel> Connect(const ClientOptions& options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxResponseBytes);
  if (!options.tls) {
    return grpc::CreateCustomChannel(options.address, grpc::InsecureChannelCredentials(), args);
  }
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = options.tls_ca_pem;
  return grpc::CreateCustomChannel(options.address, grpc::SslCredentials(ssl), args);
}

void Prepare(grpc::ClientContext& context, const ClientOptions& options) {
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(options.timeout_seconds));
  if (!options.ns.empty()) context.AddMetadata("micro-namespace", options.ns);
  if (!options.token.empty()) context.AddMetadata("authorization", "Bearer " + options.token);
}

int ExitCodeOf(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return kExitUsage;
    case absl::StatusCode::kNotFound:
      return kExitNotFound;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAborted:
      return kExitConflict;
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kPermissionDenied:
      return kExitDenied;
    case absl::StatusCode::kUnavailable:
      return kExitUnreachable;
    default:
      return kExitError;
  }
}

namespace {

// The words for a status, with what the CLI knows about its address added for the unreachable
// daemon (the code decides that it is one; the message only tells which kind).
std::string Describe(const grpc::Status& status, const ClientOptions& options) {
  const std::string& message = status.error_message();
  if (status.error_code() != grpc::StatusCode::UNAVAILABLE) return message;
  if (options.tls && (message.find("andshake") != std::string::npos ||
                      message.find("ertificate") != std::string::npos)) {
    return "the TLS handshake with " + options.address +
           " failed; the daemon's certificate does not verify against " +
           (options.tls_ca_pem.empty() ? "the system's CAs" : "the CA in use") +
           " (pass its CA with --tls-ca or MICRO_TLS_CA), or it does not serve TLS (" + message +
           ")";
  }
  if (message.find("connect") == std::string::npos) return message;
  // Refused: nothing listens. Closed: something does, and a plaintext client is most likely
  // talking to a daemon that serves TLS.
  if (options.tls || message.find("refused") != std::string::npos) {
    return "no micro server answered at " + options.address + " (from " + options.address_source +
           "); start one with 'micro server', or point --address / MICRO_ADDRESS at a running one";
  }
  return options.address +
         " closed the connection; if the daemon there serves TLS, pass its CA with --tls-ca FILE "
         "or MICRO_TLS_CA (its data dir's tls/ca.pem), or log in with 'micro login --admin' on "
         "its machine (" +
         message + ")";
}

}  // namespace

int ReportError(const grpc::Status& status, const ClientOptions& options) {
  const auto code = static_cast<absl::StatusCode>(status.error_code());
  const int exit_code = ExitCodeOf(code);
  const std::string name = absl::StatusCodeToString(code);
  const std::string message = Describe(status, options);
  if (options.output == Output::kJson) {
    nlohmann::json error = {{"code", name}, {"message", message}, {"exit_code", exit_code}};
    std::cerr << nlohmann::json{{"error", error}}.dump(-1, ' ', false,
                                                       nlohmann::json::error_handler_t::replace)
              << "\n";
  } else {
    std::cerr << "error: " << name << ": " << message << "\n";
  }
  return exit_code;
}

int ReportError(const Status& status, const ClientOptions& options) {
  return ReportError(
      grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message())),
      options);
}

grpc::Status WithProgress(const std::string& what, const std::function<grpc::Status()>& call) {
  if (::isatty(STDERR_FILENO) != 1) return call();
  std::mutex mu;
  std::condition_variable done_cv;
  bool done = false;
  std::thread shower([&] {
    const auto start = std::chrono::steady_clock::now();
    std::unique_lock lock(mu);
    bool shown = false;
    while (!done_cv.wait_for(lock, std::chrono::seconds(1), [&] { return done; })) {
      const auto seconds =
          std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start)
              .count();
      std::cerr << "\r" << what << "... " << seconds << " s" << std::flush;
      shown = true;
    }
    if (shown) std::cerr << "\r\033[K" << std::flush;  // clear the line
  });
  grpc::Status status = call();
  {
    std::lock_guard lock(mu);
    done = true;
  }
  done_cv.notify_one();
  shower.join();
  return status;
}

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

void PrintJson(const google::protobuf::Message& message) { std::cout << ToJson(message); }

int RunClientCommand(const CommandSpec& spec, const std::vector<std::string>& args,
                     const std::map<std::string, std::string>& env,
                     int (*body)(const ParsedArgs&, const ClientOptions&)) {
  CommandSpec with_client_flags = spec;
  for (FlagSpec& f : ClientFlags()) {
    // A command's own short flag wins (`micro logs -n` is --lines): the client flag keeps only
    // its long form. A command's own flag of the same name replaces it (login --data-dir).
    bool own_flag = false;
    for (const FlagSpec& own : spec.flags) {
      if (f.short_name != 0 && own.short_name == f.short_name) f.short_name = 0;
      own_flag = own_flag || own.name == f.name;
    }
    if (!own_flag) with_client_flags.flags.push_back(std::move(f));
  }
  auto parsed = ParseCommandLine(with_client_flags, args);
  if (const int* exit_code = std::get_if<int>(&parsed)) return *exit_code;
  const ParsedArgs& flags = std::get<ParsedArgs>(parsed);
  auto options = ResolveClientOptions(flags, env);
  if (!options.ok()) {
    std::cerr << "error: " << options.status().message() << "\n";
    return 2;
  }
  if (Status s = ResolveTls(&*options, flags, env); !s.ok()) {
    std::cerr << "error: " << s.message() << "\n";
    return 2;
  }
  if (Status s = AttachToken(&*options, env); !s.ok()) {
    std::cerr << "error: " << s.message() << "\n";
    return 1;
  }
  return body(flags, *options);
}

int RunSubcommand(const std::string& group, const std::string& about,
                  const std::vector<Subcommand>& commands, const std::vector<std::string>& args,
                  const std::map<std::string, std::string>& env) {
  if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    std::ostream& out = args.empty() ? std::cerr : std::cout;
    out << "Usage: micro " << group << " <command> [flags]\n\n" << about << "\n\nCommands:\n";
    for (const Subcommand& c : commands) {
      const std::string name = c.name;
      out << "  " << name << std::string(12 - name.size(), ' ') << c.summary << "\n";
    }
    out << "\nRun 'micro " << group << " <command> --help' for the flags of a command.\n";
    return args.empty() ? 2 : 0;
  }
  for (const Subcommand& c : commands) {
    if (args[0] == c.name)
      return c.run(std::vector<std::string>(args.begin() + 1, args.end()), env);
  }
  std::vector<std::string> names;
  for (const Subcommand& c : commands) names.emplace_back(c.name);
  const std::string match = ClosestMatch(args[0], names);
  std::cerr << "error: unknown " << group << " command '" << args[0] << "'"
            << (match.empty() ? "" : "; did you mean '" + match + "'?") << " run 'micro " << group
            << " --help' for the list\n";
  return 2;
}

}  // namespace micro::cli
