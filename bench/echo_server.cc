// micro-bench-echo: a gRPC server that does no work, answering Echo with response_size bytes. Its
// throughput is the ceiling for any service on the same gRPC stack and machine, so the registry's
// distance from it is what the registry itself costs.
//
//   micro-bench-echo [--address 127.0.0.1:0]
// prints "listening HOST:PORT" as its first line, serves until SIGTERM or SIGINT.

#include <absl/synchronization/mutex.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "micro/bench/v1/echo.grpc.pb.h"

namespace micro::bench {
namespace {

// Larger answers measure memcpy, not the RPC stack.
constexpr uint32_t kMaxResponseSize = 4 << 20;
constexpr auto kShutdownGrace = std::chrono::seconds(2);

class EchoService final : public v1::Echo::CallbackService {
  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* context,
                                 const v1::EchoRequest* request,
                                 v1::EchoResponse* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    if (request->response_size() > kMaxResponseSize) {
      reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                   "response_size is at most " + std::to_string(kMaxResponseSize)));
      return reactor;
    }
    response->mutable_payload()->assign(request->response_size(), 'x');
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

struct EchoFlags {
  std::string address = "127.0.0.1:0";
};

bool ParseFlags(int argc, char** argv, EchoFlags* flags) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--address" && i + 1 < argc) {
      flags->address = argv[++i];
    } else if (arg.rfind("--address=", 0) == 0) {
      flags->address = arg.substr(std::strlen("--address="));
    } else {
      return false;
    }
  }
  return !flags->address.empty();
}

// "127.0.0.1:0" with the port chosen -> "127.0.0.1:PORT"; "[::1]:0" keeps its brackets.
std::string BoundAddress(const std::string& requested, int port) {
  const auto colon = requested.rfind(':');
  return requested.substr(0, colon) + ":" + std::to_string(port);
}

int Main(int argc, char** argv) {
  EchoFlags flags;
  if (!ParseFlags(argc, argv, &flags)) {
    std::fprintf(stderr, "usage: micro-bench-echo [--address HOST:PORT]\n");
    return 2;
  }
  // The same stack setting as micro server, so the ceiling is measured on equal terms.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // Blocked before gRPC starts its threads, so they inherit the mask and sigwait() below is the
  // only receiver: shutdown then runs on an ordinary thread, not in a signal handler.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  grpc::EnableDefaultHealthCheckService(true);
  EchoService service;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(flags.address, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "micro-bench-echo: cannot listen on %s\n", flags.address.c_str());
    return 1;
  }
  std::printf("listening %s\n", BoundAddress(flags.address, port).c_str());
  std::fflush(stdout);

  int signal = 0;
  sigwait(&stop_signals, &signal);
  server->Shutdown(std::chrono::system_clock::now() + kShutdownGrace);
  return 0;
}

}  // namespace
}  // namespace micro::bench

int main(int argc, char** argv) { return micro::bench::Main(argc, argv); }
