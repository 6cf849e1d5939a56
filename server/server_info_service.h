#pragma once

#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "micro/server/v1/server.grpc.pb.h"
#include "rpc/call_context.h"

namespace micro::server {

// What micro.server.v1.Server/Info reports.
struct ServerInfo {
  std::string version;
  int pid = 0;
  int64_t started_unix_ms = 0;
  std::string grpc_address;
  std::string data_dir;
};

// micro.server.v1.Server: facts about this daemon, for `micro health` and scripts.
class ServerInfoService final : public v1::Server::CallbackService {
 public:
  // `contexts` must outlive the service.
  explicit ServerInfoService(const CallContexts& contexts) : contexts_(contexts) {}

  void set_info(ServerInfo info) {
    std::lock_guard lock(mu_);
    info_ = std::move(info);
  }

  // What Info reports as alarms: conditions that need the operator (a full store). Called on
  // every Info call; must be cheap and thread-safe.
  void set_alarms(std::function<std::vector<std::string>()> alarms) {
    std::lock_guard lock(mu_);
    alarms_ = std::move(alarms);
  }

  grpc::ServerUnaryReactor* Info(grpc::CallbackServerContext* context,
                                 const v1::InfoRequest* request,
                                 v1::InfoResponse* response) override;

 private:
  const CallContexts& contexts_;
  std::mutex mu_;
  ServerInfo info_;
  std::function<std::vector<std::string>()> alarms_;
};

}  // namespace micro::server
