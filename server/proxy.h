#pragma once

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/generic/generic_stub.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "core/status.h"
#include "rpc/call_context.h"
#include "services/registry/registry.h"

namespace micro::server {

// The proxy on the daemon's gRPC port (docs/gateway.md): a call to a method no core service
// serves is forwarded to a node of the user service that registered it, so a client that
// knows only the daemon's address reaches every service. The call's context was resolved and
// guarded like any other (token, namespace, rules, with resource name the gRPC service's full
// name); the caller's metadata goes along. Unary methods only: a second request message is
// UNIMPLEMENTED.
//
// Which service: the `micro-service` metadata names it; without it, the one service of the
// namespace whose registered endpoints include `Service.Method` (FAILED_PRECONDITION if several
// do). Nodes are taken in turn.
class Proxy final : public grpc::CallbackGenericService {
 public:
  // Both must outlive the proxy.
  Proxy(registry::Registry& registry, const CallContexts& contexts)
      : registry_(registry), contexts_(contexts) {}

  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override;

  // The node address for `method` ("/pkg.Service/Method") in `ns`; `service` may name the
  // registered service (empty: found by endpoint).
  Result<std::string> Route(const std::string& ns, const std::string& method,
                            const std::string& service);
  // A stub on a channel to `address`, shared by every call to it.
  std::shared_ptr<grpc::GenericStub> StubFor(const std::string& address);
  // That channel.
  std::shared_ptr<grpc::Channel> ChannelFor(const std::string& address);

 private:
  registry::Registry& registry_;
  const CallContexts& contexts_;
  std::atomic<uint64_t> next_{0};
  std::mutex mu_;
  struct Peer {
    std::shared_ptr<grpc::Channel> channel;
    std::shared_ptr<grpc::GenericStub> stub;
  };
  Peer& PeerFor(const std::string& address);  // with mu_ held

  std::map<std::string, Peer> peers_;
};

}  // namespace micro::server
