#include "tests/support/micro_daemon.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/client_interceptor.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "micro/auth/v1/auth.grpc.pb.h"

namespace micro::testing {

std::string MicroBinary() { return MICRO_BINARY; }

namespace {

// Adds the authorization metadata to every call of a channel.
class BearerInterceptor final : public grpc::experimental::Interceptor {
 public:
  BearerInterceptor(grpc::experimental::ClientRpcInfo*, std::string header)
      : header_(std::move(header)) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->emplace("authorization", header_);
    }
    methods->Proceed();
  }

 private:
  std::string header_;
};

class BearerFactory final : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerFactory(std::string token) : header_("Bearer " + std::move(token)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* info) override {
    return new BearerInterceptor(info, header_);
  }

 private:
  std::string header_;
};

}  // namespace

std::string AdminToken(const std::string& data_dir, const std::string& address) {
  std::ifstream in(data_dir + "/admin.secret");
  std::stringstream text;
  text << in.rdbuf();
  std::string secret = text.str();
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  auto stub = micro::auth::v1::Auth::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  micro::auth::v1::TokenRequest request;
  request.set_id("admin");
  request.set_secret(secret);
  request.set_ttl_seconds(24 * 3600);
  micro::auth::v1::TokenResponse response;
  if (!stub->Token(&context, request, &response).ok()) return "";
  return response.token().access_token();
}

std::shared_ptr<grpc::Channel> AuthedChannel(const std::string& address, const std::string& token,
                                             const grpc::ChannelArguments& args) {
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> factories;
  factories.push_back(std::make_unique<BearerFactory>(token));
  return grpc::experimental::CreateCustomChannelWithInterceptors(
      address, grpc::InsecureChannelCredentials(), args, std::move(factories));
}

MicroDaemon::MicroDaemon(const std::vector<std::string>& extra_args,
                         const std::map<std::string, std::string>& env, const std::string& binary)
    : data_dir_(dir_.path() + "/data"), home_(dir_.path() + "/home") {
  std::vector<std::string> argv = {binary.empty() ? MicroBinary() : binary,
                                   "server",
                                   "--address",
                                   "127.0.0.1:0",
                                   "--data-dir",
                                   data_dir_};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  for (size_t i = 0; i + 1 < extra_args.size(); ++i) {
    if (extra_args[i] == "--data-dir") data_dir_ = extra_args[i + 1];
    if (extra_args[i] == "--auth-enabled" && extra_args[i + 1] == "false") auth_ = false;
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
               http_address_ = json.value("http_address", "");
               return true;
             },
             timeout) &&
         !address_.empty() && process_->running() && LogIn();
}

// Logs the CLI in (tokens under home_) and keeps an admin token for Channel. A daemon started
// with auth disabled needs neither.
bool MicroDaemon::LogIn() {
  if (!auth_) return true;
  ProgramResult login = RunProgram({MicroBinary(), "login", "--admin", "--ttl", "86400",
                                    "--data-dir", data_dir_, "--address", address_},
                                   CliEnv(), std::chrono::seconds(60));
  if (login.exit_code != 0) return false;
  // The same token for Channel: one login (one Argon2id verification) per daemon.
  std::string name = address_;
  for (char& c : name) c = c == ':' ? '_' : c;
  std::ifstream tokens(home_ + "/.micro/tokens/" + name + ".json");
  auto json = nlohmann::json::parse(tokens, nullptr, /*allow_exceptions=*/false);
  if (json.is_object() && json.contains("access_token") && json["access_token"].is_string()) {
    token_ = json["access_token"].get<std::string>();
  }
  return !token_.empty();
}

std::shared_ptr<grpc::Channel> MicroDaemon::Channel(const grpc::ChannelArguments& args) const {
  return AuthedChannel(address_, token_, args);
}

ProgramResult MicroDaemon::Cli(std::vector<std::string> args,
                               std::map<std::string, std::string> env) const {
  args.insert(args.begin(), MicroBinary());
  // Before a `--`: what follows it is the deployed command's, not the CLI's.
  auto end = std::find(args.begin(), args.end(), "--");
  args.insert(end, {"--address", address_});
  env.emplace("HOME", home_);
  return RunProgram(args, env);
}

size_t NodeCount(const MicroDaemon& daemon, const std::string& name) {
  auto listed = nlohmann::json::parse(daemon.Cli({"services", name, "-o", "json"}).out, nullptr,
                                      /*allow_exceptions=*/false);
  if (!listed.is_object() || !listed.contains("services")) return 0;
  size_t n = 0;
  for (const auto& version : listed["services"]) n += version["nodes"].size();
  return n;
}

std::vector<int> Pids(const MicroDaemon& daemon, const std::string& name) {
  std::vector<int> pids;
  auto status = nlohmann::json::parse(daemon.Cli({"status", name, "-o", "json"}).out, nullptr,
                                      /*allow_exceptions=*/false);
  if (!status.is_object()) return pids;
  for (const auto& instance : status["services"][0]["instances"]) {
    if (instance.value("pid", 0) > 0) pids.push_back(instance["pid"].get<int>());
  }
  return pids;
}

}  // namespace micro::testing
