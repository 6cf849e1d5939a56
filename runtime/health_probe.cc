#include "runtime/health_probe.h"

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <istream>
#include <memory>

#include "grpc/health/v1/health.grpc.pb.h"

namespace micro::runtime {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

// Calls `done` once, whichever of the probe and its deadline comes first.
struct Once {
  std::function<void(Status)> done;
  void operator()(Status status) {
    if (!done) return;
    auto d = std::move(done);
    done = nullptr;
    d(std::move(status));
  }
};

}  // namespace

void HealthProber::Probe(const HealthCheck& check, const std::string& address,
                         const std::string& probe_id, const std::string& working_dir,
                         const Env& env, std::function<void(Status)> done) {
  const std::string target = check.address.empty() ? address : check.address;
  switch (check.kind) {
    case HealthCheckKind::kGrpc:
      return ProbeGrpc(check, target, std::move(done));
    case HealthCheckKind::kHttp:
      return ProbeSocket(check, target, true, std::move(done));
    case HealthCheckKind::kTcp:
      return ProbeSocket(check, target, false, std::move(done));
    case HealthCheckKind::kCommand:
      return ProbeCommand(check, probe_id, working_dir, env, std::move(done));
    case HealthCheckKind::kNone:
      break;
  }
  asio::post(io_, [done = std::move(done)] { done(absl::OkStatus()); });
}

void HealthProber::ProbeGrpc(const HealthCheck& check, const std::string& address,
                             std::function<void(Status)> done) {
  struct Call {
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<grpc::health::v1::Health::Stub> stub;
    grpc::ClientContext context;
    grpc::health::v1::HealthCheckRequest request;
    grpc::health::v1::HealthCheckResponse response;
  };
  auto call = std::make_shared<Call>();
  call->channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  call->stub = grpc::health::v1::Health::NewStub(call->channel);
  call->context.set_deadline(std::chrono::system_clock::now() + check.timeout);
  call->request.set_service(check.service);
  call->stub->async()->Check(
      &call->context, &call->request, &call->response,
      [this, call, address, done = std::move(done)](grpc::Status status) mutable {
        Status result = absl::OkStatus();
        if (!status.ok()) {
          result = absl::UnavailableError(
              fmt::format("grpc health check of {}: {}", address, status.error_message()));
        } else if (call->response.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
          result = absl::UnavailableError(fmt::format(
              "grpc health check of {}: {}", address,
              grpc::health::v1::HealthCheckResponse::ServingStatus_Name(call->response.status())));
        }
        asio::post(io_, [call, done = std::move(done), result] { done(result); });
      });
}

void HealthProber::ProbeSocket(const HealthCheck& check, const std::string& address, bool http,
                               std::function<void(Status)> done) {
  struct Probe {
    Probe(asio::io_context& io, Timers& timers)
        : socket(io), timer(timers.NewTimer()), resolver(io) {}
    tcp::socket socket;
    std::unique_ptr<Timer> timer;
    tcp::resolver resolver;
    asio::streambuf response;
    std::string request;
    Once once;
  };
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    asio::post(io_, [done = std::move(done), address] {
      done(absl::InvalidArgumentError(
          fmt::format("health check address '{}' has no port", address)));
    });
    return;
  }
  auto probe = std::make_shared<Probe>(io_, timers_);
  const std::string what = fmt::format("{} health check of {}", http ? "http" : "tcp", address);
  probe->once.done = std::move(done);
  // The timer's closure holds the probe until it fires or is cancelled: every path below ends
  // in one of the two.
  probe->timer->Start(check.timeout, [probe, what, timeout = check.timeout] {
    probe->once(absl::DeadlineExceededError(
        fmt::format("{}: no answer within {} ms", what, timeout.count())));
    boost::system::error_code ignored;
    probe->socket.close(ignored);
    probe->resolver.cancel();
  });
  auto fail = [probe, what](const boost::system::error_code& ec) {
    probe->timer->Cancel();
    probe->once(absl::UnavailableError(fmt::format("{}: {}", what, ec.message())));
  };
  std::string host = address.substr(0, colon);
  if (host.empty()) host = "127.0.0.1";
  if (http) {
    probe->request = fmt::format("GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: micro-health\r\n\r\n",
                                 check.path.empty() ? "/" : check.path, address);
  }
  probe->resolver.async_resolve(
      host, address.substr(colon + 1),
      [probe, http, what, fail](const boost::system::error_code& ec,
                                tcp::resolver::results_type results) {
        if (ec) return fail(ec);
        asio::async_connect(
            probe->socket, results,
            [probe, http, what, fail](const boost::system::error_code& ec, const tcp::endpoint&) {
              if (ec) return fail(ec);
              if (!http) {
                probe->timer->Cancel();
                return probe->once(absl::OkStatus());
              }
              asio::async_write(
                  probe->socket, asio::buffer(probe->request),
                  [probe, what, fail](const boost::system::error_code& ec, size_t) {
                    if (ec) return fail(ec);
                    asio::async_read_until(
                        probe->socket, probe->response, "\r\n",
                        [probe, what, fail](const boost::system::error_code& ec, size_t) {
                          if (ec) return fail(ec);
                          probe->timer->Cancel();
                          std::istream in(&probe->response);
                          std::string version;
                          int code = 0;
                          in >> version >> code;
                          if (code >= 200 && code < 300) return probe->once(absl::OkStatus());
                          probe->once(absl::UnavailableError(
                              fmt::format("{}: answered HTTP {}", what, code)));
                        });
                  });
            });
      });
}

void HealthProber::ProbeCommand(const HealthCheck& check, const std::string& probe_id,
                                const std::string& working_dir, const Env& env,
                                std::function<void(Status)> done) {
  auto once = std::make_shared<Once>();
  once->done = std::move(done);
  std::shared_ptr<Timer> timer = timers_.NewTimer();
  LaunchRequest request;
  request.instance_id = probe_id;
  request.command = check.command.front();
  request.args.assign(check.command.begin() + 1, check.command.end());
  request.env = env;
  request.working_dir = working_dir;
  const std::string what = fmt::format("health check command '{}'", request.command);
  LaunchCallbacks callbacks;
  callbacks.on_started = [this, once, timer, probe_id, what,
                          timeout = check.timeout](Result<Launched> launched) {
    if (!launched.ok()) {
      return (*once)(absl::UnavailableError(
          fmt::format("{}: {}", what, std::string(launched.status().message()))));
    }
    // From the start on: the time to fork and exec is not the command's.
    timer->Start(timeout, [this, once, probe_id, what, timeout] {
      commands_.Signal(probe_id, SIGKILL);
      (*once)(absl::DeadlineExceededError(
          fmt::format("{}: still running after {} ms", what, timeout.count())));
    });
  };
  callbacks.on_output = [](OutputStream, std::string_view) {};
  callbacks.on_exit = [once, timer, what](Exit exit) {
    timer->Cancel();
    if (exit.code == 0) return (*once)(absl::OkStatus());
    (*once)(absl::UnavailableError(exit.signal
                                       ? fmt::format("{}: killed by signal {}", what, exit.signal)
                                       : fmt::format("{}: exit code {}", what, exit.code)));
  };
  commands_.Start(request, std::move(callbacks));
}

}  // namespace micro::runtime
