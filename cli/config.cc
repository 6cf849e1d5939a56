#include <unistd.h>

#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/client.h"
#include "cli/commands.h"
#include "micro/config/v1/config.grpc.pb.h"

namespace micro::cli {
namespace {

namespace v1 = micro::config::v1;

std::unique_ptr<v1::Config::Stub> Stub(const ClientOptions& options) {
  return v1::Config::NewStub(Connect(options));
}

int Get(const ParsedArgs& args, const ClientOptions& options) {
  v1::GetRequest request;
  request.set_path(args.positionals.empty() ? "" : args.positionals[0]);
  request.set_secret(args.Has("secret"));
  v1::GetResponse response;
  grpc::ClientContext context;
  Prepare(context, options);
  grpc::Status status = Stub(options)->Get(&context, request, &response);
  if (!status.ok()) return ReportError(status, options);
  // The value is JSON already: both output formats print it as it is.
  std::cout << response.value() << "\n";
  return 0;
}

// A value read from stdin (VALUE "-", or --secret without VALUE): JSON as on the command line,
// and text that is not JSON is taken as a string, so a password typed at the prompt needs no
// quotes.
std::string ValueFromStdin(const std::string& path) {
  std::string text;
  if (::isatty(STDIN_FILENO) == 1) {
    text = ReadSecret("value for " + path + ": ");
  } else {
    std::ostringstream all;
    all << std::cin.rdbuf();
    text = all.str();
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  }
  if (nlohmann::json::accept(text)) return text;
  return nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

int Set(const ParsedArgs& args, const ClientOptions& options) {
  const bool from_stdin = (args.positionals.size() == 1 && args.Has("secret")) ||
                          (args.positionals.size() == 2 && args.positionals[1] == "-");
  if (args.positionals.size() != 2 && !from_stdin) {
    std::cerr << "error: micro config set needs PATH and VALUE (or - to read it from stdin); see "
                 "'micro config set --help'\n";
    return 2;
  }
  v1::SetRequest request;
  request.set_path(args.positionals[0]);
  request.set_value(from_stdin ? ValueFromStdin(args.positionals[0]) : args.positionals[1]);
  request.set_secret(args.Has("secret"));
  v1::SetResponse response;
  grpc::ClientContext context;
  Prepare(context, options);
  grpc::Status status = Stub(options)->Set(&context, request, &response);
  if (!status.ok()) return ReportError(status, options);
  if (options.output == Output::kJson) std::cout << "{}\n";
  return 0;
}

int Delete(const ParsedArgs& args, const ClientOptions& options) {
  if (args.positionals.size() != 1) {
    std::cerr << "error: micro config del needs PATH; see 'micro config del --help'\n";
    return 2;
  }
  v1::DeleteRequest request;
  request.set_path(args.positionals[0]);
  v1::DeleteResponse response;
  grpc::ClientContext context;
  Prepare(context, options);
  grpc::Status status = Stub(options)->Delete(&context, request, &response);
  if (!status.ok()) return ReportError(status, options);
  if (options.output == Output::kJson) std::cout << "{}\n";
  return 0;
}

void PrintUsage(std::ostream& out) {
  out << "Usage: micro config <get|set|del> PATH [VALUE] [flags]\n\n"
         "Reads and writes the namespace's settings: one JSON document, addressed by dotted\n"
         "paths (db.host; an empty path is the whole document).\n\n"
         "Commands:\n"
         "  get [PATH]          print the JSON value at PATH ('[secret]' for secrets unless "
         "--secret)\n"
         "  set PATH VALUE      set VALUE (JSON) at PATH; an object merges leaf by leaf\n"
         "  del PATH            delete PATH\n\n"
         "Run 'micro config <command> --help' for the flags.\n";
}

}  // namespace

int ConfigCommand(const std::vector<std::string>& args, const Env& env) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    PrintUsage(args.empty() ? std::cerr : std::cout);
    return args.empty() ? 2 : 0;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "get") {
    return RunClientCommand(
        {"micro config get [PATH] [flags]",
         "Prints the JSON value at PATH (the whole document if PATH is empty). Secret values\n"
         "print as \"[secret]\" unless --secret is given.",
         {{"secret", 0, "", "show secret values in the clear"}},
         1},
        rest, env, &Get);
  }
  if (args[0] == "set") {
    return RunClientCommand(
        {"micro config set PATH VALUE|- [flags]",
         "Sets VALUE, a JSON text (quote strings: '\"text\"'), at PATH. An object merges into\n"
         "an object already there, leaf by leaf. With --secret every leaf is encrypted at rest.\n"
         "VALUE - (or no VALUE with --secret) reads it from stdin, or from a prompt without echo\n"
         "on a terminal, so a secret never passes through argv; text read that way which is not\n"
         "JSON is taken as a string:\n"
         "  micro config set db.password --secret            # prompts\n"
         "  printf '%s' \"$PW\" | micro config set db.password - --secret",
         {{"secret", 0, "", "encrypt the value at rest (AES-256-GCM)"}},
         2},
        rest, env, &Set);
  }
  if (args[0] == "del" || args[0] == "delete") {
    return RunClientCommand({"micro config del PATH [flags]",
                             "Deletes the value at PATH. Deleting a missing path is not an error.",
                             {},
                             1},
                            rest, env, &Delete);
  }
  const std::string match = ClosestMatch(args[0], {"get", "set", "del", "delete"});
  std::cerr << "error: unknown config command '" << args[0] << "'"
            << (match.empty() ? "" : "; did you mean '" + match + "'?")
            << " run 'micro config --help' for the list\n";
  return 2;
}

}  // namespace micro::cli
