// `micro auth`: accounts and rules (micro.auth.v1 Accounts, Rules, Auth.Generate).
#include <signal.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/client.h"
#include "cli/commands.h"
#include "cli/table.h"
#include "micro/auth/v1/auth.grpc.pb.h"
#include "server/config.h"
#include "server/data_dir.h"
#include "services/auth/rocksdb_auth.h"

namespace micro::cli {
namespace {

namespace v1 = micro::auth::v1;

int Usage(const std::string& message) {
  std::cerr << "error: " << message << "; see 'micro auth --help'\n";
  return 2;
}

std::string Join(const google::protobuf::RepeatedPtrField<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ",") + item;
  return out.empty() ? "-" : out;
}

std::string ReadLine() {
  std::string line;
  std::getline(std::cin, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  return line;
}

int List(const ParsedArgs& args, const ClientOptions& options) {
  if (args.positionals.size() != 1) return Usage("say what to list: accounts or rules");
  const std::string& what = args.positionals[0];
  auto channel = Connect(options);
  grpc::ClientContext context;
  Prepare(context, options);
  if (what == "accounts") {
    v1::ListAccountsResponse response;
    grpc::Status status =
        v1::Accounts::NewStub(channel)->List(&context, v1::ListAccountsRequest(), &response);
    if (!status.ok()) return ReportError(status, options);
    if (options.output == Output::kJson) {
      PrintJson(response);
      return 0;
    }
    Table table({"ID", "TYPE", "NAMESPACE", "SCOPES"});
    for (const auto& a : response.accounts()) {
      table.Add({a.id(), a.type(), a.namespace_(), Join(a.scopes())});
    }
    table.Print(std::cout);
    return 0;
  }
  if (what == "rules") {
    v1::ListRulesResponse response;
    grpc::Status status =
        v1::Rules::NewStub(channel)->List(&context, v1::ListRulesRequest(), &response);
    if (!status.ok()) return ReportError(status, options);
    if (options.output == Output::kJson) {
      PrintJson(response);
      return 0;
    }
    Table table({"ID", "SCOPE", "RESOURCE", "ACCESS", "PRIORITY"});
    for (const auto& r : response.rules()) {
      table.Add({r.id(), r.scope().empty() ? "*" : r.scope(),
                 r.resource().type() + ":" + r.resource().name() + ":" + r.resource().endpoint(),
                 r.access() == v1::ACCESS_DENIED ? "deny" : "grant", std::to_string(r.priority())});
    }
    table.Print(std::cout);
    return 0;
  }
  return Usage("'" + what + "' is not accounts or rules");
}

int Create(const ParsedArgs& args, const ClientOptions& options) {
  if (args.positionals.size() != 2)
    return Usage("give what to create (account or rule) and its id");
  const std::string& what = args.positionals[0];
  const std::string& id = args.positionals[1];
  auto channel = Connect(options);
  grpc::ClientContext context;
  Prepare(context, options);
  if (what == "account") {
    v1::GenerateRequest request;
    request.set_id(id);
    request.set_type(args.Get("type", "user"));
    for (const std::string& scope : args.All("scope")) request.add_scopes(scope);
    if (!args.Has("secret-stdin")) {
      return Usage("the secret comes from stdin: --secret-stdin (never from argv)");
    }
    request.set_secret(ReadLine());
    v1::GenerateResponse response;
    grpc::Status status = v1::Auth::NewStub(channel)->Generate(&context, request, &response);
    if (!status.ok()) return ReportError(status, options);
    if (options.output == Output::kJson) {
      PrintJson(response);
    } else {
      std::cout << "created account " << response.account().id() << " in namespace "
                << response.account().namespace_() << "\n";
    }
    return 0;
  }
  if (what == "rule") {
    v1::CreateRuleRequest request;
    v1::Rule* rule = request.mutable_rule();
    rule->set_id(id);
    rule->set_scope(args.Get("scope"));
    // --resource TYPE:NAME:ENDPOINT, each part a value or *.
    std::vector<std::string> parts;
    std::stringstream resource(args.Get("resource", "service:*:*"));
    for (std::string part; std::getline(resource, part, ':');) parts.push_back(part);
    if (parts.size() != 3)
      return Usage("--resource is TYPE:NAME:ENDPOINT, as service:store:Store.Read");
    rule->mutable_resource()->set_type(parts[0]);
    rule->mutable_resource()->set_name(parts[1]);
    rule->mutable_resource()->set_endpoint(parts[2]);
    const std::string access = args.Get("access");
    if (access != "grant" && access != "deny") return Usage("--access is grant or deny");
    rule->set_access(access == "deny" ? v1::ACCESS_DENIED : v1::ACCESS_GRANTED);
    try {
      rule->set_priority(std::stoi(args.Get("priority", "0")));
    } catch (const std::exception&) {
      return Usage("--priority is a whole number");
    }
    v1::CreateRuleResponse response;
    grpc::Status status = v1::Rules::NewStub(channel)->Create(&context, request, &response);
    if (!status.ok()) return ReportError(status, options);
    if (options.output == Output::kJson) {
      PrintJson(response);
    } else {
      std::cout << "created rule " << response.rule().id() << "\n";
    }
    return 0;
  }
  return Usage("'" + what + "' is not account or rule");
}

int Delete(const ParsedArgs& args, const ClientOptions& options) {
  if (args.positionals.size() != 2)
    return Usage("give what to delete (account or rule) and its id");
  const std::string& what = args.positionals[0];
  auto channel = Connect(options);
  grpc::ClientContext context;
  Prepare(context, options);
  grpc::Status status;
  if (what == "account") {
    v1::DeleteAccountRequest request;
    request.set_id(args.positionals[1]);
    v1::DeleteAccountResponse response;
    status = v1::Accounts::NewStub(channel)->Delete(&context, request, &response);
  } else if (what == "rule") {
    v1::DeleteRuleRequest request;
    request.set_id(args.positionals[1]);
    v1::DeleteRuleResponse response;
    status = v1::Rules::NewStub(channel)->Delete(&context, request, &response);
  } else {
    return Usage("'" + what + "' is not account or rule");
  }
  if (!status.ok()) return ReportError(status, options);
  std::cout << "deleted " << what << " " << args.positionals[1] << "\n";
  return 0;
}

int ListCommand(const std::vector<std::string>& args, const Env& env) {
  return RunClientCommand({"micro auth list accounts|rules [flags]",
                           "Lists the accounts or the rules of the namespace.",
                           {},
                           1},
                          args, env, &List);
}

int CreateCommand(const std::vector<std::string>& args, const Env& env) {
  return RunClientCommand(
      {"micro auth create account|rule ID [flags]",
       "Creates an account (its secret read from stdin with --secret-stdin, never from argv) or\n"
       "a rule in the namespace. Rules: the highest priority matching rule decides; at equal\n"
       "priority a deny wins. See docs/auth.md.",
       {{"scope", 's', "SCOPE", "a scope of the account (repeatable), or the rule's scope", true},
        {"type", 0, "TYPE", "account type: user (default) or service"},
        {"secret-stdin", 0, "", "read the account's secret from stdin"},
        {"resource", 0, "TYPE:NAME:ENDPOINT", "the rule's resource (default service:*:*)"},
        {"access", 0, "grant|deny", "what the rule does"},
        {"priority", 0, "N", "the rule's priority (default 0)"}},
       2},
      args, env, &Create);
}

int DeleteCommand(const std::vector<std::string>& args, const Env& env) {
  return RunClientCommand({"micro auth delete account|rule ID [flags]",
                           "Deletes an account (its tokens stop working at once) or a rule.",
                           {},
                           2},
                          args, env, &Delete);
}

// Offline, as `micro store restore`: the data dir is found as the daemon finds it and locked,
// so a running daemon is refused.
int RotateKeysCommand(const std::vector<std::string>& args, const Env& env) {
  const CommandSpec spec{
      "micro auth rotate-keys [flags]",
      "Puts a new signing key first in <data dir>/auth/signing_keys. A daemon running on that\n"
      "data dir is told to reload it (SIGHUP) and signs new access tokens with it at once; a\n"
      "stopped one from its next start. The previous key stays, so the tokens it signed keep\n"
      "working until they expire (at most 24 hours): nobody is logged out. Rotating twice\n"
      "within a day ends the tokens of the key before. Run it on the daemon's machine, as its\n"
      "user.",
      {{"data-dir", 0, "DIR", "the daemon's data dir (default MICRO_HOME, ~/.micro)"},
       {"config", 0, "FILE", "the daemon's configuration file"}},
      0};
  auto parsed = ParseCommandLine(spec, args);
  if (const int* exit_code = std::get_if<int>(&parsed)) return *exit_code;
  auto config = server::LoadDaemonConfig(std::get<ParsedArgs>(parsed), env);
  if (!config.ok()) {
    std::cerr << "error: " << config.status().message() << "\n";
    return 2;
  }
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  // A running daemon holds the data dir's lock: rotate beside it, then tell it to reload.
  if (const int pid = server::DataDir::LockHolder(config->data_dir); pid > 0) {
    auto kid = micro::auth::RotateSigningKeys(config->data_dir + "/auth", now);
    if (!kid.ok()) {
      std::cerr << "error: " << kid.status().message() << "\n";
      return 1;
    }
    if (::kill(pid, SIGHUP) != 0) {
      std::cerr << "error: new signing key " << *kid << " written, but the daemon (pid " << pid
                << ") cannot be told to reload it: " << std::strerror(errno)
                << "; it uses the key from its next start\n";
      return 1;
    }
    std::cout << "new signing key " << *kid << "; the running daemon (pid " << pid
              << ") signs with it from now on\n";
    return 0;
  }
  auto data_dir = server::DataDir::Open(config->data_dir);
  if (!data_dir.ok()) {
    std::cerr << "error: " << data_dir.status().message() << "\n";
    return 1;
  }
  auto kid = micro::auth::RotateSigningKeys((*data_dir)->path() + "/auth", now);
  if (!kid.ok()) {
    std::cerr << "error: " << kid.status().message() << "\n";
    return 1;
  }
  std::cout << "new signing key " << *kid << " in " << (*data_dir)->path()
            << "/auth/signing_keys; the daemon uses it from its next start\n";
  return 0;
}

// The access token the CLI would send, for curl and the HTTP gateway.
int TokenCommand(const std::vector<std::string>& args, const Env& env) {
  return RunClientCommand(
      {"micro auth token [flags]",
       "Prints the access token of the login for --address (refreshed first when it expires\n"
       "within a minute), or MICRO_TOKEN, for clients such as curl:\n"
       "  curl -H \"Authorization: Bearer $(micro auth token)\" -d '{\"name\": \"Ada\"}' \\\n"
       "    http://127.0.0.1:8080/helloworld/sayhello\n"
       "It is a secret: keep it out of logs and shell history.",
       {},
       0},
      args, env, [](const ParsedArgs&, const ClientOptions& options) {
        if (options.token.empty()) {
          return ReportError(absl::UnauthenticatedError("not logged in to " + options.address +
                                                        "; run 'micro login' first"),
                             options);
        }
        if (options.output == Output::kJson) {
          std::cout << nlohmann::json{{"access_token", options.token}}.dump() << "\n";
        } else {
          std::cout << options.token << "\n";
        }
        return 0;
      });
}

const std::vector<Subcommand> kSubcommands = {
    {"token", "print the access token, for curl and the HTTP gateway", &TokenCommand},
    {"list", "list accounts or rules", &ListCommand},
    {"create", "create an account or a rule", &CreateCommand},
    {"delete", "delete an account or a rule", &DeleteCommand},
    {"rotate-keys", "put a new token signing key (on the daemon's machine)", &RotateKeysCommand},
};

}  // namespace

int AuthCommand(const std::vector<std::string>& args, const Env& env) {
  return RunSubcommand("auth",
                       "Accounts and rules of the namespace (the namespace's admins; the daemon's "
                       "admins\nfor any namespace with -n). See docs/auth.md.",
                       kSubcommands, args, env);
}

}  // namespace micro::cli
