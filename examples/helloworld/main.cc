// helloworld: a user service written with the micro SDK. Deploy it with `micro run .` from this
// folder (micro.yaml), call it with `micro call helloworld Greeter.SayHello '{"name": "Ada"}'`.
#include <micro/service.h>

#include "helloworld/v1/helloworld.grpc.pb.h"

namespace {

class Greeter final : public helloworld::v1::Greeter::Service {
 public:
  explicit Greeter(micro::Service& service) : service_(service) {}

  grpc::Status SayHello(grpc::ServerContext*, const helloworld::v1::HelloRequest* request,
                        helloworld::v1::HelloReply* reply) override {
    if (request->name().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "name is required");
    }
    reply->set_message("Hello " + request->name());
    reply->set_node(service_.node_id());
    return grpc::Status::OK;
  }

  grpc::Status Relay(grpc::ServerContext*, const helloworld::v1::RelayRequest* request,
                     helloworld::v1::HelloReply* reply) override {
    helloworld::v1::HelloRequest hello;
    hello.set_name(request->name());
    return service_.client().Call(request->service(), "/helloworld.v1.Greeter/SayHello", hello,
                                  reply);
  }

 private:
  micro::Service& service_;
};

}  // namespace

int main() {
  micro::Service service;  // name, address and daemon from the environment `micro run` sets
  Greeter greeter(service);
  service.Handle(&greeter);
  return service.Run();
}
