#include "tests/support/in_process_server.h"

namespace micro::testing {

InProcessServer::InProcessServer(CallContexts& contexts,
                                 const std::vector<grpc::Service*>& services, Metrics* metrics) {
  grpc::ServerBuilder builder;
  for (grpc::Service* service : services) builder.RegisterService(service);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> factories;
  factories.push_back(
      std::make_unique<CallContextInterceptorFactory>(contexts, clock_, nullptr, metrics));
  builder.experimental().SetInterceptorCreators(std::move(factories));
  server_ = builder.BuildAndStart();
}

InProcessServer::~InProcessServer() {
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  server_->Wait();
}

std::shared_ptr<grpc::Channel> InProcessServer::channel() {
  return server_->InProcessChannel(grpc::ChannelArguments());
}

}  // namespace micro::testing
