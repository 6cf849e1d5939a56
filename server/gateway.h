#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "core/status.h"
#include "rpc/call_context.h"
#include "server/config.h"
#include "server/proxy.h"
#include "services/registry/registry.h"

namespace micro::server {

// The HTTP gateway (docs/gateway.md): `POST /{service}/{Service}/{Method}` or
// `POST /{service}/{method}` with a JSON body becomes a gRPC call to a node of the registered
// service, its types taken from the service's reflection (cached); the JSON response, or the
// error as JSON with the gRPC code mapped to an HTTP status, comes back. `GET /health` and
// `GET /metrics` (Prometheus text) are served too. Runs on the daemon's io_context; the
// descriptors are fetched on threads of its own, the calls are asynchronous.
class Gateway {
 public:
  struct Deps {
    registry::Registry& registry;
    Proxy& proxy;                                 // its channels to the nodes are shared
    const CallContexts& contexts;                 // draining: new requests get 503
    CallGuard* guard;                             // null: auth is off
    std::function<std::string()> render_metrics;  // the body of /metrics
    // Called once per HTTP request when its response is sent: the route ("call", "health",
    // "metrics", "other"), the HTTP status and how long it took.
    std::function<void(const char* route, int status, std::chrono::nanoseconds took)> observe;
  };

  // Listens on config.address. Errors: the address is busy or not on this machine.
  [[nodiscard]] static Result<std::unique_ptr<Gateway>> Start(boost::asio::io_context& io,
                                                              const GatewayConfig& config,
                                                              Deps deps);
  ~Gateway();

  // HOST:PORT with the real port.
  const std::string& address() const;
  // The HTTP calls in flight (the daemon waits for them when it drains).
  size_t InFlight() const;
  // Stops accepting and closes every connection; calls in flight end unanswered. On the
  // io_context's thread, or after it stopped.
  void Stop();

  class Impl;

 private:
  explicit Gateway(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

// The HTTP status of a gRPC code (the mapping of grpc-gateway): NOT_FOUND 404, ...
int HttpStatusOf(int grpc_code);

}  // namespace micro::server
