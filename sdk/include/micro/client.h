#pragma once

// micro::Client: calls another service by name, and reaches the daemon's own services (registry,
// store, config, broker, events) with this process's credentials. docs/sdk.md.

#include <google/protobuf/message.h>
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "micro/broker/v1/broker.grpc.pb.h"
#include "micro/config/v1/config.grpc.pb.h"
#include "micro/events/v1/events.grpc.pb.h"
#include "micro/registry/v1/registry.grpc.pb.h"
#include "micro/store/v1/store.grpc.pb.h"

namespace micro {

// Where the daemon is and who this process is. Every field defaults to the environment the
// runtime gives a deployed service, so `ClientOptions{}` is right inside one.
struct ClientOptions {
  std::string daemon;       // MICRO_SERVER, else 127.0.0.1:8081
  std::string ns;           // MICRO_NAMESPACE, else micro
  std::string auth_id;      // MICRO_AUTH_ID: log in with it when set
  std::string auth_secret;  // MICRO_AUTH_SECRET
  std::string token;        // MICRO_TOKEN: use this access token instead of logging in
  std::string tls_ca_file;  // MICRO_TLS_CA: verify the daemon against this CA (TLS on)
  // Read the fields above from the environment where they are empty.
  static ClientOptions FromEnvironment(ClientOptions given = {});
};

struct CallOptions {
  std::chrono::milliseconds timeout{10000};     // the whole call, retries included
  int attempts = 3;                             // tries on UNAVAILABLE, each on the next node
  std::chrono::milliseconds backoff{50};        // before the 2nd try, doubled for each next one
  std::map<std::string, std::string> metadata;  // sent with the call
};

class Client {
 public:
  explicit Client(ClientOptions options = ClientOptions::FromEnvironment());
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Calls `method` ("/package.Service/Method") of service `service` (its registry name): the
  // nodes come from the registry (cached, refreshed when a registry watch reports a change),
  // taken in turn; UNAVAILABLE is retried on the next node with backoff within the deadline.
  // NOT_FOUND when the service has no node.
  grpc::Status Call(const std::string& service, const std::string& method,
                    const google::protobuf::Message& request, google::protobuf::Message* response,
                    const CallOptions& options = {});

  // A channel to the next node of `service`, for generated stubs (no retries). Null with
  // `status` set when it has none.
  std::shared_ptr<grpc::Channel> Channel(const std::string& service, grpc::Status* status);
  // The node addresses of `service` as the cache holds them (looked up if not cached).
  std::vector<std::string> Nodes(const std::string& service, grpc::Status* status = nullptr);

  // The daemon's services. Calls need Prepare(context) for the namespace and the token.
  micro::registry::v1::Registry::Stub& registry();
  micro::store::v1::Store::Stub& store();
  micro::config::v1::Config::Stub& config();
  micro::broker::v1::Broker::Stub& broker();
  micro::events::v1::Events::Stub& events();
  // Adds the namespace and a current access token (logging in or refreshing as needed) and a
  // deadline of `timeout` to a call to the daemon. Returns an error if no token can be had.
  grpc::Status Prepare(grpc::ClientContext& context,
                       std::chrono::milliseconds timeout = std::chrono::seconds(10));

  const ClientOptions& options() const { return options_; }

 private:
  struct Cached {
    std::vector<std::string> nodes;
    size_t next = 0;
    bool stale = true;     // until a lookup has filled it
    uint64_t changes = 0;  // registry events seen for the service: a lookup racing one stays stale
  };
  grpc::Status Lookup(const std::string& service);
  std::shared_ptr<grpc::Channel> ChannelTo(const std::string& address);
  std::string NextNode(const std::string& service, grpc::Status* status);
  void StartWatch();
  grpc::Status AccessToken(std::string* token);

  const ClientOptions options_;
  std::shared_ptr<grpc::Channel> daemon_;
  std::unique_ptr<micro::registry::v1::Registry::Stub> registry_;
  std::unique_ptr<micro::store::v1::Store::Stub> store_;
  std::unique_ptr<micro::config::v1::Config::Stub> config_;
  std::unique_ptr<micro::broker::v1::Broker::Stub> broker_;
  std::unique_ptr<micro::events::v1::Events::Stub> events_;

  std::mutex mu_;  // guards the cache and the channels
  std::map<std::string, Cached> cache_;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_;
  bool watching_ = false;

  std::mutex token_mu_;  // guards the tokens; held while logging in, never with mu_
  std::string access_token_;
  std::string refresh_token_;
  int64_t expiry_unix_ms_ = 0;

  struct Watch;  // the registry watch that marks cached services stale
  std::unique_ptr<Watch> watch_;
};

}  // namespace micro
