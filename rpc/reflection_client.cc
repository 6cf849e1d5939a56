#include "rpc/reflection_client.h"

#include <fmt/format.h>
#include <google/protobuf/descriptor.pb.h>
#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/impl/codegen/sync_stream.h>

#include <vector>

#include "micro/rpc/reflection.pb.h"

namespace micro {
namespace {

namespace refl = micro::rpc::reflection;

constexpr char kReflectionMethod[] =
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";

using Stream =
    grpc::ClientReaderWriter<refl::ServerReflectionRequest, refl::ServerReflectionResponse>;

// The stream's own error, or FAILED_PRECONDITION when the server has no reflection.
Status Finish(Stream& stream) {
  grpc::Status s = stream.Finish();
  if (s.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
    return absl::FailedPreconditionError(
        "the service does not serve gRPC reflection, which calls with JSON need (the SDK's "
        "micro::Service serves it)");
  }
  if (s.ok()) return absl::UnavailableError("reflection: the service ended the stream early");
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      "reflection: " + s.error_message());
}

// Ends the stream after an answer the caller turns into its own error.
void Close(Stream& stream) {
  stream.WritesDone();
  (void)stream.Finish();
}

}  // namespace

Status ReflectionClient::Load(const std::string& service, grpc::ClientContext& context) {
  const grpc::internal::RpcMethod method(kReflectionMethod,
                                         grpc::internal::RpcMethod::BIDI_STREAMING);
  std::unique_ptr<Stream> stream(
      grpc::internal::ClientReaderWriterFactory<
          refl::ServerReflectionRequest, refl::ServerReflectionResponse>::Create(channel_.get(),
                                                                                 method, &context));
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
      Close(*stream);
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
      Close(*stream);
      return absl::NotFoundError(answer.error_response().error_message());
    }
    for (const std::string& bytes : answer.file_descriptor_response().file_descriptor_proto()) {
      google::protobuf::FileDescriptorProto file;
      if (!file.ParseFromString(bytes)) {
        Close(*stream);
        return absl::InternalError("the service's reflection sent a bad file descriptor");
      }
      if (!loaded_.insert(file.name()).second) continue;
      if (loaded_.size() > kMaxFiles) {
        Close(*stream);
        return absl::ResourceExhaustedError(
            fmt::format("the service's protos span more than {} files", kMaxFiles));
      }
      for (const std::string& dep : file.dependency()) wanted.push_back(dep);
      database_.Add(file);
    }
    while (!wanted.empty() && loaded_.count(wanted.back()) != 0) wanted.pop_back();
    if (wanted.empty()) break;
    request.set_file_by_filename(wanted.back());
    wanted.pop_back();
  }
  Close(*stream);
  if (pool_.FindServiceByName(full_name_) == nullptr) {
    return absl::NotFoundError("the service's reflection has no descriptor for " + full_name_);
  }
  return absl::OkStatus();
}

}  // namespace micro
