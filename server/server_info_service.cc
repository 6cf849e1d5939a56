#include "server/server_info_service.h"

#include "rpc/grpc_status.h"
#include "rpc/handler_guard.h"

namespace micro::server {

grpc::ServerUnaryReactor* ServerInfoService::Info(grpc::CallbackServerContext* context,
                                                  const v1::InfoRequest*,
                                                  v1::InfoResponse* response) try {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  CallContext call = contexts_.Get(context);
  if (!call.error.ok()) {
    reactor->Finish(ToGrpc(call.error));
    return reactor;
  }
  std::lock_guard lock(mu_);
  response->set_version(info_.version);
  response->set_pid(info_.pid);
  response->set_started_unix_ms(info_.started_unix_ms);
  response->set_grpc_address(info_.grpc_address);
  response->set_data_dir(info_.data_dir);
  response->set_namespace_(call.ns);
  if (alarms_) {
    for (std::string& alarm : alarms_()) response->add_alarms(std::move(alarm));
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
} catch (...) {
  return FailedUnary();
}

}  // namespace micro::server
