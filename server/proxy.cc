#include "server/proxy.h"

#include <fmt/format.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <algorithm>
#include <chrono>

#include "rpc/grpc_status.h"

namespace micro::server {
namespace {

constexpr std::chrono::seconds kMaxProxiedCall{60};

// "Greeter.SayHello" of "/helloworld.v1.Greeter/SayHello", as the SDK registers endpoints.
std::string EndpointOf(const std::string& method) {
  const size_t slash = method.find('/', 1);
  if (slash == std::string::npos) return "";
  const std::string full = method.substr(1, slash - 1);
  const size_t dot = full.rfind('.');
  return (dot == std::string::npos ? full : full.substr(dot + 1)) + "." + method.substr(slash + 1);
}

// One proxied call: reads the request, forwards it, writes the response.
class ProxyReactor final : public grpc::ServerGenericBidiReactor {
 public:
  ProxyReactor(Proxy& proxy, grpc::GenericCallbackServerContext* server, CallContext call)
      : proxy_(proxy), server_(server), call_(std::move(call)) {
    if (!call_.error.ok()) {
      Finish(ToGrpc(call_.error));
      return;
    }
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      if (!have_request_) {
        Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the call sent no request"));
      } else {
        Forward();
      }
      return;
    }
    if (have_request_) {
      Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                          "the daemon's proxy forwards unary calls only; call a streaming method "
                          "on the service's node (micro services NAME shows it)"));
      return;
    }
    have_request_ = true;
    StartRead(&extra_);  // the end of the client's stream, or a second message
  }

  void OnCancel() override {
    std::lock_guard lock(mu_);
    cancelled_ = true;
    if (forwarding_) upstream_.TryCancel();
  }

  void OnDone() override { delete this; }

 private:
  void Forward() {
    std::string service;
    const auto& metadata = server_->client_metadata();
    if (auto it = metadata.find("micro-service"); it != metadata.end()) {
      service.assign(it->second.data(), it->second.size());
    }
    auto address = proxy_.Route(call_.ns, server_->method(), service);
    if (!address.ok()) {
      Finish(ToGrpc(address.status()));
      return;
    }
    // The caller's metadata (its token included) and deadline go along.
    for (const auto& [key, value] : metadata) {
      const std::string k(key.data(), key.size());
      if (k.rfind("grpc-", 0) == 0 || k[0] == ':' || k == "micro-service" || k == "user-agent") {
        continue;
      }
      upstream_.AddMetadata(k, std::string(value.data(), value.size()));
    }
    if (metadata.find("micro-namespace") == metadata.end()) {
      upstream_.AddMetadata("micro-namespace", call_.ns);
    }
    // The caller's deadline, and never more than kMaxProxiedCall: a node that accepts and
    // never answers must not hold the call forever.
    upstream_.set_deadline(
        std::min(server_->deadline(), std::chrono::system_clock::now() + kMaxProxiedCall));
    stub_ = proxy_.StubFor(*address);
    {
      // A call cancelled before this point (the client gave up, or the read ended because
      // of it) is never forwarded.
      std::lock_guard lock(mu_);
      if (cancelled_) {
        Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the caller cancelled the call"));
        return;
      }
      forwarding_ = true;
    }
    stub_->UnaryCall(&upstream_, server_->method(), grpc::StubOptions(), &request_, &response_,
                     [this](grpc::Status status) {
                       if (status.ok()) {
                         StartWriteAndFinish(&response_, grpc::WriteOptions(), status);
                       } else {
                         Finish(status);
                       }
                     });
  }

  Proxy& proxy_;
  grpc::GenericCallbackServerContext* server_;
  const CallContext call_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer extra_;
  grpc::ByteBuffer response_;
  bool have_request_ = false;
  grpc::ClientContext upstream_;
  std::shared_ptr<grpc::GenericStub> stub_;
  std::mutex mu_;
  bool forwarding_ = false;  // upstream_ is in flight
  bool cancelled_ = false;   // OnCancel came
};

}  // namespace

grpc::ServerGenericBidiReactor* Proxy::CreateReactor(grpc::GenericCallbackServerContext* ctx) {
  return new ProxyReactor(*this, ctx, contexts_.Get(ctx));
}

Result<std::string> Proxy::Route(const std::string& ns, const std::string& method,
                                 const std::string& service) {
  const std::string endpoint = EndpointOf(method);
  std::vector<registry::Service> candidates;
  if (!service.empty()) {
    auto found = registry_.GetService(ns, service, "");
    if (!found.ok()) return found.status();
    candidates = std::move(*found);
  } else {
    auto all = registry_.ListServices(ns);
    if (!all.ok()) return all.status();
    std::string names;
    for (registry::Service& s : *all) {
      for (const registry::Endpoint& e : s.endpoints) {
        if (e.name != endpoint) continue;
        if (!candidates.empty() && candidates.front().name != s.name) {
          names = candidates.front().name + ", " + s.name;
        }
        candidates.push_back(s);
        break;
      }
    }
    if (!names.empty()) {
      return absl::FailedPreconditionError(
          fmt::format("several services serve {} ({}); name one with the metadata micro-service",
                      endpoint, names));
    }
    if (candidates.empty()) {
      return absl::UnimplementedError(fmt::format(
          "no core service serves {} and no service registered in namespace '{}' has the "
          "endpoint {}; name the service with the metadata micro-service",
          method, ns, endpoint));
    }
  }
  std::vector<const registry::Node*> nodes;
  for (const registry::Service& s : candidates) {
    for (const registry::Node& n : s.nodes) nodes.push_back(&n);
  }
  if (nodes.empty()) {
    return absl::UnavailableError(
        fmt::format("service {} has no node to take the call", candidates.front().name));
  }
  return nodes[next_++ % nodes.size()]->address;
}

Proxy::Peer& Proxy::PeerFor(const std::string& address) {
  Peer& peer = peers_[address];
  if (!peer.channel) {
    peer.channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
    peer.stub = std::make_shared<grpc::GenericStub>(peer.channel);
  }
  return peer;
}

std::shared_ptr<grpc::GenericStub> Proxy::StubFor(const std::string& address) {
  std::lock_guard lock(mu_);
  return PeerFor(address).stub;
}

std::shared_ptr<grpc::Channel> Proxy::ChannelFor(const std::string& address) {
  std::lock_guard lock(mu_);
  return PeerFor(address).channel;
}

}  // namespace micro::server
