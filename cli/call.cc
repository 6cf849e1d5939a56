// `micro call` and `micro stream`: call a registered service's method with JSON, without its
// proto: the node comes from the registry, the descriptors from the service's own reflection.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/descriptor_database.h>
#include <google/protobuf/dynamic_message.h>
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
#include "micro/cli/reflection.pb.h"
#include "micro/registry/v1/registry.grpc.pb.h"

namespace micro::cli {
namespace {

namespace pb = google::protobuf;
namespace refl = micro::cli::reflection;

constexpr char kReflectionMethod[] =
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";

// The descriptors of one service, fetched from its server's reflection.
class Reflection {
 public:
  explicit Reflection(std::shared_ptr<grpc::Channel> channel) : channel_(std::move(channel)) {}

  // Finds `service` ("helloworld.v1.Greeter", or just "Greeter" if one service has that name)
  // and loads its file and every file it depends on.
  Status Load(const std::string& service, const ClientOptions& options) {
    grpc::ClientContext context;
    Prepare(context, options);
    const grpc::internal::RpcMethod method(kReflectionMethod,
                                           grpc::internal::RpcMethod::BIDI_STREAMING);
    auto stream = std::unique_ptr<
        grpc::ClientReaderWriter<refl::ServerReflectionRequest, refl::ServerReflectionResponse>>(
        grpc::internal::ClientReaderWriterFactory<
            refl::ServerReflectionRequest, refl::ServerReflectionResponse>::Create(channel_.get(),
                                                                                   method,
                                                                                   &context));
    full_name_ = service;
    if (service.find('.') == std::string::npos) {
      refl::ServerReflectionRequest list;
      list.set_list_services("");
      refl::ServerReflectionResponse answer;
      if (!stream->Write(list) || !stream->Read(&answer)) return Finish(*stream);
      std::vector<std::string> matches;
      for (const auto& s : answer.list_services_response().service()) {
        const std::string& name = s.name();
        const size_t dot = name.rfind('.');
        if ((dot == std::string::npos ? name : name.substr(dot + 1)) == service) {
          matches.push_back(name);
        }
      }
      if (matches.size() != 1) {
        stream->WritesDone();
        (void)stream->Finish();
        return absl::NotFoundError(matches.empty()
                                       ? "the service serves no gRPC service named " + service
                                       : "several gRPC services are named " + service +
                                             "; give the full name (" + matches[0] + ", ...)");
      }
      full_name_ = matches[0];
    }
    refl::ServerReflectionRequest request;
    request.set_file_containing_symbol(full_name_);
    std::vector<std::string> wanted;
    while (true) {
      refl::ServerReflectionResponse answer;
      if (!stream->Write(request) || !stream->Read(&answer)) return Finish(*stream);
      if (answer.has_error_response()) {
        stream->WritesDone();
        (void)stream->Finish();
        return absl::NotFoundError(answer.error_response().error_message());
      }
      for (const std::string& bytes : answer.file_descriptor_response().file_descriptor_proto()) {
        pb::FileDescriptorProto file;
        if (!file.ParseFromString(bytes)) return absl::InternalError("a bad file descriptor");
        if (!loaded_.insert(file.name()).second) continue;
        for (const std::string& dep : file.dependency()) wanted.push_back(dep);
        database_.Add(file);
      }
      while (!wanted.empty() && loaded_.count(wanted.back()) != 0) wanted.pop_back();
      if (wanted.empty()) break;
      request.set_file_by_filename(wanted.back());
      wanted.pop_back();
    }
    stream->WritesDone();
    (void)stream->Finish();
    return absl::OkStatus();
  }

  const pb::ServiceDescriptor* service() { return pool_.FindServiceByName(full_name_); }
  pb::DynamicMessageFactory& factory() { return factory_; }

 private:
  template <typename Stream>
  Status Finish(Stream& stream) {
    grpc::Status s = stream.Finish();
    if (s.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
      return absl::FailedPreconditionError(
          "the service does not serve gRPC reflection, which micro call needs (the SDK's "
          "micro::Service serves it)");
    }
    return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                        "reflection: " + s.error_message());
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::string full_name_;
  std::set<std::string> loaded_;
  pb::SimpleDescriptorDatabase database_;
  pb::DescriptorPool pool_{&database_};
  pb::DynamicMessageFactory factory_{&pool_};
};

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

int Fail(const Status& s) {
  std::cerr << "error: " << absl::StatusCodeToString(s.code()) << ": " << s.message() << "\n";
  return 1;
}

struct Target {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<Reflection> reflection;
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
  target.reflection = std::make_unique<Reflection>(target.channel);
  if (Status s = target.reflection->Load(service, options); !s.ok()) return s;
  const pb::ServiceDescriptor* descriptor = target.reflection->service();
  if (descriptor == nullptr) return absl::NotFoundError("no descriptor for " + service);
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
  std::unique_ptr<pb::Message> message(target.reflection->factory().GetPrototype(type)->New());
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
  if (!target.ok()) return absl::IsInvalidArgument(target.status()) ? 2 : Fail(target.status());
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
  std::unique_ptr<pb::Message> response(
      target->reflection->factory().GetPrototype(target->method->output_type())->New());
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
  if (!target.ok()) return absl::IsInvalidArgument(target.status()) ? 2 : Fail(target.status());
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
  std::unique_ptr<pb::Message> response(
      target->reflection->factory().GetPrototype(target->method->output_type())->New());
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
