#include <iostream>

#include "cli/client.h"
#include "cli/commands.h"
#include "cli/table.h"
#include "micro/registry/v1/registry.grpc.pb.h"

namespace micro::cli {
namespace {

namespace v1 = micro::registry::v1;

void PrintList(const v1::ListServicesResponse& response) {
  if (response.services_size() == 0) {
    std::cout << "no services registered\n";
    return;
  }
  Table table({"NAME", "VERSION", "NODES"});
  for (const v1::Service& s : response.services()) {
    table.Add({s.name(), s.version(), std::to_string(s.nodes_size())});
  }
  table.Print(std::cout);
}

void PrintService(const v1::GetServiceResponse& response) {
  bool first = true;
  for (const v1::Service& s : response.services()) {
    if (!first) std::cout << "\n";
    first = false;
    std::cout << "service   " << s.name() << "\n"
              << "version   " << s.version() << "\n"
              << "metadata  " << JoinMetadata(s.metadata()) << "\n";
    if (s.endpoints_size() > 0) {
      std::cout << "\n";
      Table endpoints({"ENDPOINT", "METADATA"});
      for (const v1::Endpoint& e : s.endpoints()) {
        endpoints.Add({e.name(), JoinMetadata(e.metadata())});
      }
      endpoints.Print(std::cout);
    }
    std::cout << "\n";
    Table nodes({"ID", "ADDRESS", "METADATA"});
    for (const v1::Node& n : s.nodes())
      nodes.Add({n.id(), n.address(), JoinMetadata(n.metadata())});
    nodes.Print(std::cout);
  }
}

int Services(const ParsedArgs& args, const ClientOptions& options) {
  auto stub = v1::Registry::NewStub(Connect(options));
  grpc::ClientContext context;
  Prepare(context, options);
  if (args.positionals.empty()) {
    v1::ListServicesResponse response;
    grpc::Status status = stub->ListServices(&context, v1::ListServicesRequest(), &response);
    if (!status.ok()) return ReportError(status, options);
    options.output == Output::kJson ? PrintJson(response) : PrintList(response);
    return 0;
  }
  v1::GetServiceRequest request;
  request.set_name(args.positionals[0]);
  request.set_version(args.Get("version"));
  v1::GetServiceResponse response;
  grpc::Status status = stub->GetService(&context, request, &response);
  if (!status.ok()) return ReportError(status, options);
  options.output == Output::kJson ? PrintJson(response) : PrintService(response);
  return 0;
}

}  // namespace

int ServicesCommand(const std::vector<std::string>& args, const Env& env) {
  CommandSpec spec{"micro services [NAME] [flags]",
                   "Without NAME, lists the registered services of the namespace: name, version "
                   "and node count.\nWith NAME, shows every version of that service (or the one "
                   "given by --version) with its\nmetadata, endpoints and nodes.",
                   {{"version", 0, "VERSION", "with NAME: only this version"}},
                   1};
  return RunClientCommand(spec, args, env, &Services);
}

}  // namespace micro::cli
