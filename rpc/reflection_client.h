#pragma once

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor_database.h>
#include <google/protobuf/dynamic_message.h>
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <memory>
#include <set>
#include <string>

#include "core/status.h"

namespace micro {

// The descriptors of one gRPC service, fetched from its server's reflection
// (grpc.reflection.v1alpha), so `micro call` and the HTTP gateway can turn JSON into its
// messages without its proto. After Load, the descriptors and the message factory are
// thread-safe to use.
class ReflectionClient {
 public:
  // A service may not make the caller load more than this many files (its own and every
  // dependency): a service that answers with endless files ends in RESOURCE_EXHAUSTED.
  static constexpr size_t kMaxFiles = 256;

  explicit ReflectionClient(std::shared_ptr<grpc::Channel> channel)
      : channel_(std::move(channel)) {}

  // Finds `service` ("helloworld.v1.Greeter", or just "Greeter" if one service of the server
  // has that name) and loads its file and every file it depends on. `context` carries the
  // caller's metadata and deadline. Errors: NOT_FOUND (no such service, or several named so),
  // FAILED_PRECONDITION (the server serves no reflection), the stream's own error.
  [[nodiscard]] Status Load(const std::string& service, grpc::ClientContext& context);

  // After a successful Load: the service's descriptor, never null.
  const google::protobuf::ServiceDescriptor* service() const {
    return pool_.FindServiceByName(full_name_);
  }
  // An empty message of `type` (a type of this service's pool).
  std::unique_ptr<google::protobuf::Message> New(const google::protobuf::Descriptor* type) {
    return std::unique_ptr<google::protobuf::Message>(factory_.GetPrototype(type)->New());
  }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::string full_name_;
  std::set<std::string> loaded_;
  google::protobuf::SimpleDescriptorDatabase database_;
  google::protobuf::DescriptorPool pool_{&database_};
  google::protobuf::DynamicMessageFactory factory_{&pool_};
};

}  // namespace micro
