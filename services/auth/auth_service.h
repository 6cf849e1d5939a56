#pragma once

#include "core/serial_executor.h"
#include "micro/auth/v1/auth.grpc.pb.h"
#include "rpc/call_context.h"
#include "services/auth/rocksdb_auth.h"

namespace micro::auth {

// micro.auth.v1 Auth, Accounts and Rules over gRPC. The guard has checked who may call what;
// these check what depends on the request (whose secret is changed). Hashing and synced writes
// take tens of milliseconds, so every call runs on the service's own thread, one at a time.
class AuthServices {
 public:
  // Both must outlive the services.
  AuthServices(RocksDbAuth& auth, const CallContexts& contexts);

  grpc::Service* auth() { return &auth_service_; }
  grpc::Service* accounts() { return &accounts_service_; }
  grpc::Service* rules() { return &rules_service_; }

 private:
  class AuthImpl final : public v1::Auth::CallbackService {
   public:
    explicit AuthImpl(AuthServices& s) : s_(s) {}
    grpc::ServerUnaryReactor* Generate(grpc::CallbackServerContext* context,
                                       const v1::GenerateRequest* request,
                                       v1::GenerateResponse* response) override;
    grpc::ServerUnaryReactor* Token(grpc::CallbackServerContext* context,
                                    const v1::TokenRequest* request,
                                    v1::TokenResponse* response) override;
    grpc::ServerUnaryReactor* Inspect(grpc::CallbackServerContext* context,
                                      const v1::InspectRequest* request,
                                      v1::InspectResponse* response) override;

   private:
    AuthServices& s_;
  };
  class AccountsImpl final : public v1::Accounts::CallbackService {
   public:
    explicit AccountsImpl(AuthServices& s) : s_(s) {}
    grpc::ServerUnaryReactor* List(grpc::CallbackServerContext* context,
                                   const v1::ListAccountsRequest* request,
                                   v1::ListAccountsResponse* response) override;
    grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* context,
                                     const v1::DeleteAccountRequest* request,
                                     v1::DeleteAccountResponse* response) override;
    grpc::ServerUnaryReactor* ChangeSecret(grpc::CallbackServerContext* context,
                                           const v1::ChangeSecretRequest* request,
                                           v1::ChangeSecretResponse* response) override;

   private:
    AuthServices& s_;
  };
  class RulesImpl final : public v1::Rules::CallbackService {
   public:
    explicit RulesImpl(AuthServices& s) : s_(s) {}
    grpc::ServerUnaryReactor* Create(grpc::CallbackServerContext* context,
                                     const v1::CreateRuleRequest* request,
                                     v1::CreateRuleResponse* response) override;
    grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* context,
                                     const v1::DeleteRuleRequest* request,
                                     v1::DeleteRuleResponse* response) override;
    grpc::ServerUnaryReactor* List(grpc::CallbackServerContext* context,
                                   const v1::ListRulesRequest* request,
                                   v1::ListRulesResponse* response) override;

   private:
    AuthServices& s_;
  };

  // Runs `work` on the service's thread with the call's context and finishes the call with
  // what it returns.
  grpc::ServerUnaryReactor* Run(grpc::CallbackServerContext* context,
                                std::function<Status(const CallContext&)> work);

  RocksDbAuth& auth_;
  const CallContexts& contexts_;
  AuthImpl auth_service_{*this};
  AccountsImpl accounts_service_{*this};
  RulesImpl rules_service_{*this};
  SerialExecutor worker_{"auth"};  // last: drains before the members above go
};

}  // namespace micro::auth
