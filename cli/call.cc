// `micro call` and `micro stream`: call a registered service's method with JSON, without its
// proto: the node comes from the registry, the descriptors from the service's own reflection.
#include <google/protobuf/util/json_util.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/impl/codegen/client_unary_call.h>
#include <grpcpp/impl/codegen/sync_stream.h>
#include <grpcpp/security/credentials.h>

#include <iostream>
#include <random>
#include <set>
#include <thread>

#include "cli/client.h"
#include "cli/commands.h"
#include "micro/registry/v1/registry.grpc.pb.h"
#include "rpc/reflection_client.h"

namespace micro::cli {
namespace {

namespace pb = google::protobuf;

// One node of `service` from the registry, picked at random.
Result<std::string> PickNode(const std::string& service, const ClientOptions& options) {
  auto registry = micro::registry::v1::Registry::NewStub(Connect(options));
  grpc::ClientContext context;
  Prepare(context, options);
  micro::registry::v1::GetServiceRequest request;
  request.set_name(service);
  micro::registry::v1::GetServiceResponse response;
  grpc::Status s = registry->GetService(&context, request, &response);
  if (!s.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
  }
  std::vector<std::string> nodes;
  for (const auto& version : response.services()) {
    for (const auto& node : version.nodes()) nodes.push_back(node.address());
  }
  if (nodes.empty()) return absl::NotFoundError("service " + service + " has no node");
  std::random_device device;
  return nodes[std::uniform_int_distribution<size_t>(0, nodes.size() - 1)(device)];
}

// "Greeter.SayHello" or "helloworld.v1.Greeter.SayHello" or "/helloworld.v1.Greeter/SayHello".
bool SplitMethod(std::string text, std::string* service, std::string* method) {
  if (!text.empty() && text[0] == '/') {
    text = text.substr(1);
    const size_t slash = text.find('/');
    if (slash != std::string::npos) text[slash] = '.';
  }
  const size_t dot = text.rfind('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == text.size()) return false;
  *service = text.substr(0, dot);
  *method = text.substr(dot + 1);
  return true;
}

struct Target {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<ReflectionClient> reflection;
  const pb::MethodDescriptor* method = nullptr;
  std::string path;  // /package.Service/Method
};

Result<Target> Resolve(const std::string& service_name, const std::string& method_text,
                       const ClientOptions& options) {
  std::string service;
  std::string method;
  if (!SplitMethod(method_text, &service, &method)) {
    return absl::InvalidArgumentError("'" + method_text +
                                      "' is not Service.Method (Greeter.SayHello)");
  }
  auto node = PickNode(service_name, options);
  if (!node.ok()) return node.status();
  Target target;
  target.channel = grpc::CreateChannel(*node, grpc::InsecureChannelCredentials());
  target.reflection = std::make_unique<ReflectionClient>(target.channel);
  grpc::ClientContext context;
  Prepare(context, options);
  if (Status s = target.reflection->Load(service, context); !s.ok()) return s;
  const pb::ServiceDescriptor* descriptor = target.reflection->service();
  target.method = descriptor->FindMethodByName(method);
  if (target.method == nullptr) {
    std::string methods;
    for (int i = 0; i < descriptor->method_count(); ++i) {
      methods += (i ? ", " : "") + descriptor->method(i)->name();
    }
    return absl::NotFoundError(descriptor->full_name() + " has no method " + method + "; it has " +
                               methods);
  }
  target.path = "/" + descriptor->full_name() + "/" + method;
  return target;
}

Result<std::unique_ptr<pb::Message>> FromJson(Target& target, const pb::Descriptor* type,
                                              const std::string& json) {
  std::unique_ptr<pb::Message> message = target.reflection->New(type);
  auto parsed = pb::util::JsonStringToMessage(json.empty() ? "{}" : json, message.get());
  if (!parsed.ok()) {
    return absl::InvalidArgumentError("the request is not a " + type->full_name() +
                                      " in JSON: " + std::string(parsed.message()));
  }
  return message;
}

std::string ToJsonLine(const pb::Message& message, bool pretty) {
  pb::util::JsonPrintOptions print;
  print.add_whitespace = pretty;
  print.preserve_proto_field_names = true;
  print.always_print_primitive_fields = true;
  std::string out;
  (void)pb::util::MessageToJsonString(message, &out, print);
  if (!pretty) out += "\n";
  return out;
}

int Call(const ParsedArgs& args, const ClientOptions& options) {
  if (args.positionals.size() < 2 || args.positionals.size() > 3) {
    std::cerr << "error: give SERVICE Service.Method [JSON]; see 'micro call --help'\n";
    return 2;
  }
  auto target = Resolve(args.positionals[0], args.positionals[1], options);
  if (!target.ok()) return ReportError(target.status(), options);
  if (target->method->client_streaming() || target->method->server_streaming()) {
    std::cerr << "error: " << target->path << " streams; use 'micro stream'\n";
    return 2;
  }
  auto request = FromJson(*target, target->method->input_type(),
                          args.positionals.size() == 3 ? args.positionals[2] : "{}");
  if (!request.ok()) {
    std::cerr << "error: " << request.status().message() << "\n";
    return 2;
  }
  std::unique_ptr<pb::Message> response = target->reflection->New(target->method->output_type());
  grpc::ClientContext context;
  Prepare(context, options);  // the caller's token and namespace go with the call
  const grpc::internal::RpcMethod rpc(target->path.c_str(), grpc::internal::RpcMethod::NORMAL_RPC);
  grpc::Status s = grpc::internal::BlockingUnaryCall<pb::Message, pb::Message>(
      target->channel.get(), rpc, &context, **request, response.get());
  if (!s.ok()) return ReportError(s, options);
  std::cout << ToJsonLine(*response, /*pretty=*/true);
  return 0;
}

int Stream(const ParsedArgs& args, const ClientOptions& options) {
  if (args.positionals.size() < 2 || args.positionals.size() > 3) {
    std::cerr << "error: give SERVICE Service.Method [JSON]; see 'micro stream --help'\n";
    return 2;
  }
  auto target = Resolve(args.positionals[0], args.positionals[1], options);
  if (!target.ok()) return ReportError(target.status(), options);
  // The requests: the argument, or one JSON object per line of stdin.
  std::vector<std::unique_ptr<pb::Message>> requests;
  if (args.positionals.size() == 3) {
    auto one = FromJson(*target, target->method->input_type(), args.positionals[2]);
    if (!one.ok()) {
      std::cerr << "error: " << one.status().message() << "\n";
      return 2;
    }
    requests.push_back(std::move(*one));
  } else {
    std::string line;
    while (std::getline(std::cin, line)) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      auto next = FromJson(*target, target->method->input_type(), line);
      if (!next.ok()) {
        std::cerr << "error: " << next.status().message() << "\n";
        return 2;
      }
      requests.push_back(std::move(*next));
    }
  }
  grpc::ClientContext context;
  Prepare(context, options);  // the caller's token and namespace go with the call
  context.set_deadline(std::chrono::system_clock::time_point::max());  // streams run until done
  const grpc::internal::RpcMethod rpc(target->path.c_str(),
                                      grpc::internal::RpcMethod::BIDI_STREAMING);
  std::unique_ptr<grpc::ClientReaderWriter<pb::Message, pb::Message>> stream(
      grpc::internal::ClientReaderWriterFactory<pb::Message, pb::Message>::Create(
          target->channel.get(), rpc, &context));
  // Writes on their own thread: a bidi method may answer before it has read everything, and
  // both sides would wait on flow control if this side only read after writing.
  std::thread writer([&] {
    for (const auto& request : requests) {
      if (!stream->Write(*request)) break;
    }
    stream->WritesDone();
  });
  std::unique_ptr<pb::Message> response = target->reflection->New(target->method->output_type());
  while (stream->Read(response.get())) std::cout << ToJsonLine(*response, false) << std::flush;
  writer.join();
  grpc::Status s = stream->Finish();
  if (!s.ok()) return ReportError(s, options);
  return 0;
}

}  // namespace

int CallCommand(const std::vector<std::string>& args, const Env& env) {
  return RunClientCommand(
      {"micro call SERVICE Service.Method [JSON] [flags]",
       "Calls a method of a registered service with a JSON request and prints the JSON\n"
       "response. The node comes from the registry; the request and response types from the\n"
       "service's gRPC reflection (the SDK serves it), so no proto is needed here. Service.Method\n"
       "may be short (Greeter.SayHello) or full (helloworld.v1.Greeter.SayHello). Errors keep\n"
       "their gRPC code.\n\n"
       "Example:\n"
       "  micro call helloworld Greeter.SayHello '{\"name\": \"Ada\"}'",
       {},
       3},
      args, env, &Call);
}

int StreamCommand(const std::vector<std::string>& args, const Env& env) {
  return RunClientCommand(
      {"micro stream SERVICE Service.Method [JSON] [flags]",
       "Calls a streaming method: sends JSON (or, without it, one JSON object per line of\n"
       "stdin), then prints each response as one line of JSON until the service ends the\n"
       "stream. --timeout does not apply; Ctrl-C ends it.",
       {},
       3},
      args, env, &Stream);
}

}  // namespace micro::cli
