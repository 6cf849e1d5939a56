#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/client.h"
#include "cli/commands.h"
#include "cli/table.h"
#include "core/version.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "micro/server/v1/server.grpc.pb.h"

namespace micro::cli {
namespace {

std::string Uptime(int64_t started_unix_ms) {
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  int64_t s = std::max<int64_t>(0, (now - started_unix_ms) / 1000);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%lldh%02lldm%02llds", static_cast<long long>(s / 3600),
                static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  return buf;
}

int Health(const ParsedArgs&, const ClientOptions& options) {
  auto channel = Connect(options);
  grpc::ClientContext health_context;
  Prepare(health_context, options);
  grpc::health::v1::HealthCheckResponse health;
  grpc::Status status = grpc::health::v1::Health::NewStub(channel)->Check(
      &health_context, grpc::health::v1::HealthCheckRequest(), &health);
  if (!status.ok()) return ReportError(status, options);
  const bool serving = health.status() == grpc::health::v1::HealthCheckResponse::SERVING;
  const std::string serving_name =
      grpc::health::v1::HealthCheckResponse::ServingStatus_Name(health.status());

  // A daemon that is shutting down refuses other calls; its health answer is still the news.
  micro::server::v1::InfoResponse info;
  if (serving) {
    grpc::ClientContext info_context;
    Prepare(info_context, options);
    status = micro::server::v1::Server::NewStub(channel)->Info(
        &info_context, micro::server::v1::InfoRequest(), &info);
    if (!status.ok()) return ReportError(status, options);
  }
  if (options.output == Output::kJson) {
    nlohmann::json out = {{"status", serving_name}};
    if (serving) out["server"] = nlohmann::json::parse(ToJson(info));
    std::cout << out.dump(2) << "\n";
  } else if (serving) {
    Table table({"STATUS", "VERSION", "ADDRESS", "PID", "UPTIME", "DATA DIR"});
    table.Add({serving_name, info.version(), info.grpc_address(), std::to_string(info.pid()),
               Uptime(info.started_unix_ms()), info.data_dir()});
    table.Print(std::cout);
    for (const std::string& alarm : info.alarms()) std::cout << "ALARM: " << alarm << "\n";
  } else {
    std::cout << "STATUS\n" << serving_name << "\n";
  }
  return serving ? 0 : 1;
}

int PrintVersion(const ParsedArgs&, const ClientOptions& options) {
  if (options.output == Output::kJson) {
    std::cout << "{\"version\": \"" << Version() << "\"}\n";
  } else {
    std::cout << "micro " << Version() << "\n";
  }
  return 0;
}

}  // namespace

int HealthCommand(const std::vector<std::string>& args, const Env& env) {
  CommandSpec spec{"micro health [flags]",
                   "Asks the daemon whether it is serving (grpc.health.v1) and shows its version, "
                   "address, pid,\nuptime and data dir, then one 'ALARM: ...' line per condition "
                   "that needs the\noperator (such as a full store). Exits 1 unless it is "
                   "SERVING.",
                   {},
                   0};
  return RunClientCommand(spec, args, env, &Health);
}

int VersionCommand(const std::vector<std::string>& args, const Env& env) {
  const CommandSpec spec{
      "micro version [flags]",
      "Prints the version of this micro binary. 'micro health' shows the daemon's.",
      {{"output", 'o', "FORMAT", "table or json (env MICRO_OUTPUT; default table)"}},
      0};
  auto parsed = ParseCommandLine(spec, args);
  if (const int* exit_code = std::get_if<int>(&parsed)) return *exit_code;
  auto options = ResolveClientOptions(std::get<ParsedArgs>(parsed), env);
  if (!options.ok()) {
    std::cerr << "error: " << options.status().message() << "\n";
    return 2;
  }
  return PrintVersion(std::get<ParsedArgs>(parsed), *options);
}

}  // namespace micro::cli
