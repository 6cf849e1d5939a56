// `micro login` and `micro logout`: tokens from micro.auth.v1.Auth/Token, kept per daemon.
#include <termios.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/client.h"
#include "cli/commands.h"
#include "cli/credentials.h"
#include "micro/auth/v1/auth.grpc.pb.h"
#include "services/auth/rocksdb_auth.h"

namespace micro::cli {
namespace {

namespace v1 = micro::auth::v1;

// The environment of the running command (the bodies RunClientCommand calls do not get it).
const Env* args_env_ = nullptr;

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

int Login(const ParsedArgs& args, const ClientOptions& options_in) {
  ClientOptions options = options_in;
  options.token.clear();
  v1::TokenRequest request;
  std::string ns = options.ns.empty() ? "micro" : options.ns;
  if (args.Has("admin")) {
    const std::string path = DataDirOf(args, *args_env_) + "/admin.secret";
    std::ifstream in(path);
    if (!in) {
      std::cerr << "error: cannot read " << path
                << ": --admin needs the daemon's data dir (--data-dir or MICRO_HOME) and the "
                   "right to read its admin.secret\n";
      return 1;
    }
    std::stringstream text;
    text << in.rdbuf();
    request.set_id("admin");
    request.set_secret(Trim(text.str()));
    ns = "micro";
    // On the daemon's machine its automatic CA is at hand: trust it unless told otherwise.
    if (!args.Has("tls-ca") && args_env_->count("MICRO_TLS_CA") == 0) {
      std::ifstream ca(DataDirOf(args, *args_env_) + "/tls/ca.pem");
      if (ca) {
        std::stringstream pem;
        pem << ca.rdbuf();
        options.tls = true;
        options.tls_ca_pem = pem.str();
      }
    }
  } else {
    if (args.positionals.empty()) {
      std::cerr << "error: missing ID (or --admin); see 'micro login --help'\n";
      return 2;
    }
    request.set_id(args.positionals[0]);
    request.set_secret(args.Has("password-stdin")
                           ? Trim(std::string(std::istreambuf_iterator<char>(std::cin),
                                              std::istreambuf_iterator<char>()))
                           : ReadSecret("secret for " + request.id() + ": "));
  }
  if (args.Has("ttl")) {
    const std::string text = args.Get("ttl");
    char* end = nullptr;
    const long long ttl = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || ttl < 1 || ttl > 86400) {
      std::cerr << "error: --ttl must be whole seconds from 1 to 86400, not '" << text
                << "'; see 'micro login --help'\n";
      return 2;
    }
    request.set_ttl_seconds(ttl);
  }
  auto stub = v1::Auth::NewStub(Connect(options));
  grpc::ClientContext context;
  options.ns = ns;
  Prepare(context, options);
  v1::TokenResponse response;
  grpc::Status status = stub->Token(&context, request, &response);
  if (!status.ok()) return ReportError(status, options);
  Credentials credentials;
  credentials.account = request.id();
  credentials.ns = ns;
  credentials.access_token = response.token().access_token();
  credentials.refresh_token = response.token().refresh_token();
  credentials.expiry_unix_ms = response.token().expiry_unix_ms();
  const std::string path = CredentialsPath(*args_env_, options.address);
  if (Status s = SaveCredentials(path, credentials); !s.ok()) {
    std::cerr << "error: " << s.message() << "\n";
    return 1;
  }
  // The CA this login verified the daemon with serves the later commands too.
  if (!options.tls_ca_pem.empty()) {
    const std::string ca_path = CaPath(*args_env_, options.address);
    std::error_code ec;
    std::filesystem::create_directories(ca_path.substr(0, ca_path.rfind('/')), ec);
    if (Status s = auth::WriteSecretFile(ca_path, options.tls_ca_pem); !s.ok()) {
      std::cerr << "error: " << s.message() << "\n";
      return 1;
    }
  }
  if (options.output == Output::kJson) {
    std::cout << "{\"account\": \"" << request.id() << "\", \"namespace\": \"" << ns
              << "\", \"tokens\": \"" << path << "\"}\n";
  } else {
    std::cout << "logged in to " << options.address << " as " << request.id() << " (namespace "
              << ns << ")\n";
  }
  return 0;
}

int Logout(const ParsedArgs&, const ClientOptions& options) {
  const std::string path = CredentialsPath(*args_env_, options.address);
  if (::unlink(path.c_str()) != 0) {
    std::cout << "not logged in to " << options.address << "\n";
    return 0;
  }
  std::cout << "logged out of " << options.address << "\n";
  return 0;
}

}  // namespace

std::string ReadSecret(const std::string& prompt) {
  const bool tty = ::isatty(STDIN_FILENO) == 1;
  termios saved{};
  if (tty) {
    std::cerr << prompt << std::flush;
    ::tcgetattr(STDIN_FILENO, &saved);
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  }
  std::string line;
  std::getline(std::cin, line);
  if (tty) {
    ::tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    std::cerr << "\n";
  }
  return Trim(line);
}

int LoginCommand(const std::vector<std::string>& args, const Env& env) {
  args_env_ = &env;
  const CommandSpec spec{
      "micro login [ID] [flags]",
      "Logs in to the daemon and keeps the tokens in ~/.micro/tokens (mode 0600); later\n"
      "commands send them and refresh them by themselves. The secret is read without echo\n"
      "from the terminal, or with --password-stdin from stdin; it never goes through argv.\n"
      "--admin logs in as the daemon's first account with the secret the daemon wrote to\n"
      "<data dir>/admin.secret (on the daemon's machine, as a user who may read it).",
      {{"admin", 0, "", "log in as admin with <data dir>/admin.secret"},
       {"data-dir", 0, "DIR", "the daemon's data dir, for --admin (default MICRO_HOME, ~/.micro)"},
       {"password-stdin", 0, "", "read the secret from stdin"},
       {"ttl", 0, "SECONDS", "the access token's lifetime (default 900, at most 86400)"}},
      1};
  return RunClientCommand(spec, args, env, &Login);
}

int LogoutCommand(const std::vector<std::string>& args, const Env& env) {
  args_env_ = &env;
  const CommandSpec spec{
      "micro logout [flags]", "Forgets the tokens kept for the daemon at --address.", {}, 0};
  return RunClientCommand(spec, args, env, &Logout);
}

}  // namespace micro::cli
