#include "services/auth/auth_service.h"

#include <fmt/format.h>

#include "rpc/grpc_status.h"
#include "rpc/handler_guard.h"

namespace micro::auth {
namespace {

void ToProto(const Account& in, v1::Account* out) {
  out->set_id(in.id);
  out->set_type(in.type);
  for (const std::string& scope : in.scopes) out->add_scopes(scope);
  out->mutable_metadata()->insert(in.metadata.begin(), in.metadata.end());
  out->set_namespace_(in.ns);
}

void ToProto(const Rule& in, v1::Rule* out) {
  out->set_id(in.id);
  out->set_scope(in.scope);
  out->mutable_resource()->set_type(in.resource.type);
  out->mutable_resource()->set_name(in.resource.name);
  out->mutable_resource()->set_endpoint(in.resource.endpoint);
  out->set_access(in.access == Access::kDenied ? v1::ACCESS_DENIED : v1::ACCESS_GRANTED);
  out->set_priority(in.priority);
}

void ToProto(const Token& in, v1::Token* out) {
  out->set_access_token(in.access_token);
  out->set_refresh_token(in.refresh_token);
  out->set_created_unix_ms(in.created_unix_ms);
  out->set_expiry_unix_ms(in.expiry_unix_ms);
}

}  // namespace

AuthServices::AuthServices(RocksDbAuth& auth, const CallContexts& contexts)
    : auth_(auth), contexts_(contexts) {}

grpc::ServerUnaryReactor* AuthServices::Run(grpc::CallbackServerContext* context,
                                            std::function<Status(const CallContext&)> work) {
  CallContext call = contexts_.Get(context);
  if (!call.error.ok()) return FinishUnary(context, call.error);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  worker_.Submit([reactor, call = std::move(call), work = std::move(work)] {
    reactor->Finish(ToGrpc(Guarded([&] { return work(call); })));
  });
  return reactor;
}

grpc::ServerUnaryReactor* AuthServices::AuthImpl::Generate(grpc::CallbackServerContext* context,
                                                           const v1::GenerateRequest* request,
                                                           v1::GenerateResponse* response) try {
  return s_.Run(context, [this, request, response](const CallContext& call) -> Status {
    std::vector<std::string> scopes(request->scopes().begin(), request->scopes().end());
    // A namespace admin cannot mint an admin of "micro": only the daemon's admins can.
    auto made = s_.auth_.Generate(
        call.ns, request->id(), request->secret(), scopes, request->type(),
        std::map<std::string, std::string>(request->metadata().begin(), request->metadata().end()));
    if (!made.ok()) return made.status();
    ToProto(*made, response->mutable_account());
    return absl::OkStatus();
  });
} catch (...) {
  return FailedUnary();
}

grpc::ServerUnaryReactor* AuthServices::AuthImpl::Token(grpc::CallbackServerContext* context,
                                                        const v1::TokenRequest* request,
                                                        v1::TokenResponse* response) try {
  return s_.Run(context, [this, request, response](const CallContext& call) -> Status {
    Result<auth::Token> token =
        request->refresh_token().empty()
            ? s_.auth_.Login(call.ns, request->id(), request->secret(), request->ttl_seconds(),
                             call.peer)
            : s_.auth_.Refresh(request->refresh_token(), request->ttl_seconds());
    if (!token.ok()) return token.status();
    ToProto(*token, response->mutable_token());
    return absl::OkStatus();
  });
} catch (...) {
  return FailedUnary();
}

grpc::ServerUnaryReactor* AuthServices::AuthImpl::Inspect(grpc::CallbackServerContext* context,
                                                          const v1::InspectRequest* request,
                                                          v1::InspectResponse* response) try {
  return s_.Run(context, [this, request, response](const CallContext&) -> Status {
    auto identity = s_.auth_.Verify(request->token());
    if (!identity.ok()) return identity.status();
    auto account = s_.auth_.Find(identity->ns, identity->id);
    if (!account) return absl::UnauthenticatedError("the token's account no longer exists");
    ToProto(*account, response->mutable_account());
    return absl::OkStatus();
  });
} catch (...) {
  return FailedUnary();
}

grpc::ServerUnaryReactor* AuthServices::AccountsImpl::List(grpc::CallbackServerContext* context,
                                                           const v1::ListAccountsRequest*,
                                                           v1::ListAccountsResponse* response) try {
  return s_.Run(context, [this, response](const CallContext& call) -> Status {
    auto accounts = s_.auth_.List(call.ns);
    if (!accounts.ok()) return accounts.status();
    for (const Account& account : *accounts) ToProto(account, response->add_accounts());
    return absl::OkStatus();
  });
} catch (...) {
  return FailedUnary();
}

grpc::ServerUnaryReactor* AuthServices::AccountsImpl::Delete(
    grpc::CallbackServerContext* context, const v1::DeleteAccountRequest* request,
    v1::DeleteAccountResponse*) try {
  return s_.Run(context, [this, request](const CallContext& call) -> Status {
    return s_.auth_.Delete(call.ns, request->id());
  });
} catch (...) {
  return FailedUnary();
}

grpc::ServerUnaryReactor* AuthServices::AccountsImpl::ChangeSecret(
    grpc::CallbackServerContext* context, const v1::ChangeSecretRequest* request,
    v1::ChangeSecretResponse*) try {
  return s_.Run(context, [this, request](const CallContext& call) -> Status {
    const CallIdentity& who = call.identity;
    const bool admin = who.admin || (who.ns_admin && who.ns == call.ns);
    const bool own = who.id == request->id() && who.ns == call.ns;
    if (!admin && !own) {
      return absl::PermissionDeniedError(fmt::format(
          "account '{}' may change only its own secret, not '{}'", who.id, request->id()));
    }
    // An admin resetting another account's secret does not know the old one.
    return s_.auth_.ChangeSecret(call.ns, request->id(), request->old_secret(),
                                 request->new_secret(), /*check_old=*/own || !admin);
  });
} catch (...) {
  return FailedUnary();
}

grpc::ServerUnaryReactor* AuthServices::RulesImpl::Create(grpc::CallbackServerContext* context,
                                                          const v1::CreateRuleRequest* request,
                                                          v1::CreateRuleResponse* response) try {
  return s_.Run(context, [this, request, response](const CallContext& call) -> Status {
    const v1::Rule& in = request->rule();
    if (in.access() == v1::ACCESS_UNSPECIFIED) {
      return absl::InvalidArgumentError("access is required: ACCESS_GRANTED or ACCESS_DENIED");
    }
    Rule rule;
    rule.id = in.id();
    rule.scope = in.scope();
    rule.resource = {in.resource().type(), in.resource().name(), in.resource().endpoint()};
    rule.access = in.access() == v1::ACCESS_DENIED ? Access::kDenied : Access::kGranted;
    rule.priority = in.priority();
    auto made = s_.auth_.CreateRule(call.ns, rule);
    if (!made.ok()) return made.status();
    ToProto(*made, response->mutable_rule());
    return absl::OkStatus();
  });
} catch (...) {
  return FailedUnary();
}

grpc::ServerUnaryReactor* AuthServices::RulesImpl::Delete(grpc::CallbackServerContext* context,
                                                          const v1::DeleteRuleRequest* request,
                                                          v1::DeleteRuleResponse*) try {
  return s_.Run(context, [this, request](const CallContext& call) -> Status {
    return s_.auth_.DeleteRule(call.ns, request->id());
  });
} catch (...) {
  return FailedUnary();
}

grpc::ServerUnaryReactor* AuthServices::RulesImpl::List(grpc::CallbackServerContext* context,
                                                        const v1::ListRulesRequest*,
                                                        v1::ListRulesResponse* response) try {
  return s_.Run(context, [this, response](const CallContext& call) -> Status {
    auto rules = s_.auth_.ListRules(call.ns);
    if (!rules.ok()) return rules.status();
    for (const Rule& rule : *rules) ToProto(rule, response->add_rules());
    return absl::OkStatus();
  });
} catch (...) {
  return FailedUnary();
}

}  // namespace micro::auth
