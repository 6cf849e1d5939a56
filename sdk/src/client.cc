#include "micro/client.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/impl/codegen/client_unary_call.h>
#include <grpcpp/impl/codegen/rpc_method.h>
#include <grpcpp/security/credentials.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "micro/auth/v1/auth.grpc.pb.h"

namespace micro {
namespace {

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::shared_ptr<grpc::Channel> DaemonChannel(const ClientOptions& options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  if (options.tls_ca_file.empty()) {
    return grpc::CreateCustomChannel(options.daemon, grpc::InsecureChannelCredentials(), args);
  }
  std::ifstream in(options.tls_ca_file, std::ios::binary);
  std::stringstream pem;
  pem << in.rdbuf();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = pem.str();
  return grpc::CreateCustomChannel(options.daemon, grpc::SslCredentials(ssl), args);
}

}  // namespace

ClientOptions ClientOptions::FromEnvironment(ClientOptions given) {
  auto fill = [](std::string& field, const char* var, const char* fallback) {
    if (field.empty()) field = Env(var);
    if (field.empty()) field = fallback;
  };
  fill(given.daemon, "MICRO_SERVER", "127.0.0.1:8081");
  fill(given.ns, "MICRO_NAMESPACE", "micro");
  fill(given.auth_id, "MICRO_AUTH_ID", "");
  fill(given.auth_secret, "MICRO_AUTH_SECRET", "");
  fill(given.token, "MICRO_TOKEN", "");
  fill(given.tls_ca_file, "MICRO_TLS_CA", "");
  return given;
}

// Follows Registry.Watch for the whole namespace: any event about a service marks its cached
// nodes stale, so the next call looks them up again. A broken stream marks everything stale
// and is opened again a second later.
struct Client::Watch {
  std::atomic<bool> stop{false};
  std::mutex mu;
  grpc::ClientContext* context = nullptr;  // the open stream's, for TryCancel
  std::condition_variable cv;
  std::thread thread;
};

Client::Client(ClientOptions options)
    : options_(std::move(options)),
      daemon_(DaemonChannel(options_)),
      registry_(micro::registry::v1::Registry::NewStub(daemon_)),
      store_(micro::store::v1::Store::NewStub(daemon_)),
      config_(micro::config::v1::Config::NewStub(daemon_)),
      broker_(micro::broker::v1::Broker::NewStub(daemon_)),
      events_(micro::events::v1::Events::NewStub(daemon_)),
      watch_(std::make_unique<Watch>()) {}

Client::~Client() {
  watch_->stop = true;
  {
    std::lock_guard lock(watch_->mu);
    if (watch_->context != nullptr) watch_->context->TryCancel();
  }
  watch_->cv.notify_all();
  if (watch_->thread.joinable()) watch_->thread.join();
}

micro::registry::v1::Registry::Stub& Client::registry() { return *registry_; }
micro::store::v1::Store::Stub& Client::store() { return *store_; }
micro::config::v1::Config::Stub& Client::config() { return *config_; }
micro::broker::v1::Broker::Stub& Client::broker() { return *broker_; }
micro::events::v1::Events::Stub& Client::events() { return *events_; }

grpc::Status Client::AccessToken(std::string* token) {
  if (!options_.token.empty()) {
    *token = options_.token;
    return grpc::Status::OK;
  }
  if (options_.auth_id.empty()) return grpc::Status::OK;  // a daemon without auth
  std::lock_guard lock(token_mu_);
  // Refreshed a minute before it expires; a refused refresh falls back to logging in.
  if (!access_token_.empty() && expiry_unix_ms_ > NowMs() + 60'000) {
    *token = access_token_;
    return grpc::Status::OK;
  }
  auto auth = micro::auth::v1::Auth::NewStub(daemon_);
  micro::auth::v1::TokenResponse response;
  grpc::Status status(grpc::StatusCode::UNAUTHENTICATED, "");
  if (!refresh_token_.empty()) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    context.AddMetadata("micro-namespace", options_.ns);
    micro::auth::v1::TokenRequest request;
    request.set_refresh_token(refresh_token_);
    status = auth->Token(&context, request, &response);
  }
  if (!status.ok()) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    context.AddMetadata("micro-namespace", options_.ns);
    micro::auth::v1::TokenRequest request;
    request.set_id(options_.auth_id);
    request.set_secret(options_.auth_secret);
    status = auth->Token(&context, request, &response);
  }
  if (!status.ok()) {
    return grpc::Status(status.error_code(),
                        "logging in as " + options_.auth_id + " failed: " + status.error_message());
  }
  access_token_ = response.token().access_token();
  refresh_token_ = response.token().refresh_token();
  expiry_unix_ms_ = response.token().expiry_unix_ms();
  *token = access_token_;
  return grpc::Status::OK;
}

grpc::Status Client::Prepare(grpc::ClientContext& context, std::chrono::milliseconds timeout) {
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  context.AddMetadata("micro-namespace", options_.ns);
  std::string token;
  if (grpc::Status s = AccessToken(&token); !s.ok()) return s;
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  return grpc::Status::OK;
}

grpc::Status Client::Lookup(const std::string& service) {
  StartWatch();  // first, so that changes after the lookup below are seen
  uint64_t changes = 0;
  {
    std::lock_guard lock(mu_);
    changes = cache_[service].changes;
  }
  micro::registry::v1::GetServiceRequest request;
  request.set_name(service);
  micro::registry::v1::GetServiceResponse response;
  grpc::ClientContext context;
  if (grpc::Status s = Prepare(context); !s.ok()) return s;
  grpc::Status status = registry_->GetService(&context, request, &response);
  std::vector<std::string> nodes;
  if (status.ok()) {
    for (const auto& version : response.services()) {
      for (const auto& node : version.nodes()) nodes.push_back(node.address());
    }
  } else if (status.error_code() != grpc::StatusCode::NOT_FOUND) {
    return status;
  }
  std::lock_guard lock(mu_);
  Cached& cached = cache_[service];
  cached.nodes = std::move(nodes);
  // An event that came while the lookup was in flight may not be in its answer.
  cached.stale = cached.changes != changes;
  if (cached.next >= cached.nodes.size()) cached.next = 0;
  return grpc::Status::OK;
}

std::vector<std::string> Client::Nodes(const std::string& service, grpc::Status* status) {
  bool fresh = false;
  {
    std::lock_guard lock(mu_);
    auto it = cache_.find(service);
    fresh = it != cache_.end() && !it->second.stale;
  }
  if (!fresh) {
    grpc::Status s = Lookup(service);
    if (status != nullptr) *status = s;
    if (!s.ok()) return {};
  }
  std::lock_guard lock(mu_);
  return cache_[service].nodes;
}

std::string Client::NextNode(const std::string& service, grpc::Status* status) {
  std::vector<std::string> nodes = Nodes(service, status);
  if (!status->ok()) return "";
  if (nodes.empty()) {
    *status = grpc::Status(grpc::StatusCode::NOT_FOUND,
                           "service " + service + " has no node in the registry");
    return "";
  }
  std::lock_guard lock(mu_);
  Cached& cached = cache_[service];
  if (cached.nodes.empty()) return nodes.front();
  const std::string address = cached.nodes[cached.next % cached.nodes.size()];
  cached.next = (cached.next + 1) % cached.nodes.size();
  return address;
}

std::shared_ptr<grpc::Channel> Client::ChannelTo(const std::string& address) {
  std::lock_guard lock(mu_);
  auto& channel = channels_[address];
  if (!channel) channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  return channel;
}

std::shared_ptr<grpc::Channel> Client::Channel(const std::string& service, grpc::Status* status) {
  *status = grpc::Status::OK;
  const std::string address = NextNode(service, status);
  if (!status->ok()) return nullptr;
  return ChannelTo(address);
}

grpc::Status Client::Call(const std::string& service, const std::string& method,
                          const google::protobuf::Message& request,
                          google::protobuf::Message* response, const CallOptions& options) {
  const auto deadline = std::chrono::system_clock::now() + options.timeout;
  std::chrono::milliseconds backoff = options.backoff;
  grpc::Status status;
  for (int attempt = 1; attempt <= std::max(1, options.attempts); ++attempt) {
    status = grpc::Status::OK;
    const std::string address = NextNode(service, &status);
    if (!status.ok()) return status;
    grpc::ClientContext context;
    context.set_deadline(deadline);
    for (const auto& [key, value] : options.metadata) context.AddMetadata(key, value);
    // The caller's identity travels with the call, for services that check it.
    std::string token;
    if (grpc::Status s = AccessToken(&token); s.ok() && !token.empty()) {
      context.AddMetadata("authorization", "Bearer " + token);
    }
    const grpc::internal::RpcMethod rpc(method.c_str(), grpc::internal::RpcMethod::NORMAL_RPC);
    status =
        grpc::internal::BlockingUnaryCall<google::protobuf::Message, google::protobuf::Message>(
            ChannelTo(address).get(), rpc, &context, request, response);
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE) return status;
    {
      // The node may be gone: look the service up again before the next try.
      std::lock_guard lock(mu_);
      cache_[service].stale = true;
    }
    if (attempt == options.attempts || std::chrono::system_clock::now() + backoff >= deadline) {
      break;
    }
    std::this_thread::sleep_for(backoff);
    backoff *= 2;
  }
  return status;
}

void Client::StartWatch() {
  std::lock_guard lock(mu_);
  if (watching_) return;
  watching_ = true;
  watch_->thread = std::thread([this] {
    while (!watch_->stop) {
      grpc::ClientContext context;
      context.AddMetadata("micro-namespace", options_.ns);
      std::string token;
      if (AccessToken(&token).ok() && !token.empty()) {
        context.AddMetadata("authorization", "Bearer " + token);
      }
      {
        std::lock_guard watch_lock(watch_->mu);
        if (watch_->stop) return;
        watch_->context = &context;
      }
      micro::registry::v1::WatchRequest request;
      auto reader = registry_->Watch(&context, request);
      micro::registry::v1::WatchEvent event;
      while (reader->Read(&event)) {
        std::lock_guard cache_lock(mu_);
        auto it = cache_.find(event.service().name());
        if (it != cache_.end()) {
          it->second.stale = true;
          ++it->second.changes;
        }
      }
      reader->Finish();
      {
        std::lock_guard watch_lock(watch_->mu);
        watch_->context = nullptr;
      }
      {
        std::lock_guard cache_lock(mu_);
        for (auto& [name, cached] : cache_) cached.stale = true;
      }
      std::unique_lock watch_lock(watch_->mu);
      watch_->cv.wait_for(watch_lock, std::chrono::seconds(1), [&] { return watch_->stop.load(); });
    }
  });
}

}  // namespace micro
