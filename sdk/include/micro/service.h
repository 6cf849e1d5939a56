#pragma once

// micro::Service: what a user service needs to run under the daemon. It serves gRPC (with health
// and reflection) on the address the runtime gives it, registers its endpoints in the registry
// with a TTL and heartbeats, and on SIGTERM or SIGINT deregisters first, then lets in-flight
// calls finish. docs/sdk.md.
//
//   int main() {
//     GreeterImpl greeter;
//     micro::Service service;  // name, address, daemon: from the MICRO_* environment
//     service.Handle(&greeter);
//     return service.Run();
//   }

#include <grpcpp/impl/service_type.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "micro/client.h"

namespace micro {

struct ServiceOptions {
  std::string name;     // MICRO_SERVICE_NAME; required
  std::string version;  // MICRO_SERVICE_VERSION, else latest
  // Where to listen: MICRO_SERVICE_ADDRESS, else 127.0.0.1:0 (a free port).
  std::string address;
  std::map<std::string, std::string> metadata;  // the service's, in the registry
  std::chrono::seconds ttl{15};       // the registry drops the node this long after a heartbeat
  std::chrono::seconds heartbeat{5};  // how often the node is registered again
  // After deregistering, new calls are still taken this long: callers that looked the node up
  // just before (a registry cache, the daemon's proxy) reach it instead of a closed port.
  std::chrono::milliseconds linger{1000};
  std::chrono::seconds drain{10};  // then, how long the calls in flight may finish
  ClientOptions client = ClientOptions::FromEnvironment();
};

class Service {
 public:
  explicit Service(ServiceOptions options = {});
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // A gRPC service to serve (generated sync, async-free or callback services); before Run.
  void Handle(grpc::Service* service);
  // For other server options (message sizes, credentials); before Run.
  grpc::ServerBuilder& builder() { return builder_; }

  // Serves until Stop() or SIGTERM/SIGINT, then deregisters, drains and returns 0; returns 1
  // after printing why to stderr when it cannot start (no name, the port is taken, the daemon
  // refuses the registration). A failed heartbeat is retried at the next one.
  int Run();
  // Makes Run return, from any thread. SIGINT and SIGTERM do the same: the Service installs
  // a handler for both (child processes get the default ones back when they exec).
  void Stop();

  // Once Run has bound it: the host:port clients reach this service at.
  std::string address() const;
  const std::string& node_id() const { return node_id_; }
  // Calls to other services and to the daemon, as this service.
  Client& client() { return client_; }

 private:
  grpc::Status Register();
  void Deregister();

  ServiceOptions options_;
  Client client_;
  grpc::ServerBuilder builder_;
  std::unique_ptr<grpc::Server> server_;
  std::vector<std::string> endpoints_;
  std::string node_id_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::string bound_;
};

}  // namespace micro
