#include "services/auth/auth_guard.h"

#include <fmt/format.h>

namespace micro::auth {
namespace {

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// What an account that is not an admin may call where no rule says otherwise.
bool DefaultAllowed(std::string_view method) {
  if (StartsWith(method, "/micro.runtime.")) return false;  // runs commands as the daemon's user
  if (StartsWith(method, "/micro.auth.v1.Accounts/")) {
    return method == "/micro.auth.v1.Accounts/ChangeSecret";  // its own: checked by the service
  }
  if (StartsWith(method, "/micro.auth.v1.Rules/")) return false;
  if (method == "/micro.auth.v1.Auth/Generate") return false;
  return true;
}

}  // namespace

bool AuthGuard::IsPublic(std::string_view method) {
  return StartsWith(method, "/grpc.health.v1.Health/") || StartsWith(method, "/grpc.reflection.") ||
         method == "/micro.auth.v1.Auth/Token";
}

Resource AuthGuard::ResourceOf(std::string_view method) {
  // "/micro.store.v1.Store/Read": package micro.store.v1, service Store, method Read.
  Resource resource;
  resource.type = "service";
  const size_t slash = method.find('/', 1);
  const std::string_view full = method.substr(1, slash == std::string_view::npos ? 0 : slash - 1);
  const std::string_view call = slash == std::string_view::npos ? "" : method.substr(slash + 1);
  const size_t last_dot = full.rfind('.');
  const std::string_view service =
      last_dot == std::string_view::npos ? full : full.substr(last_dot + 1);
  std::string_view name = full;
  if (StartsWith(full, "micro.")) {
    name = full.substr(6);
    name = name.substr(0, name.find('.'));
  }
  resource.name = std::string(name);
  resource.endpoint = std::string(service) + "." + std::string(call);
  return resource;
}

Status AuthGuard::Check(std::string_view method, CallContext* context) {
  if (IsPublic(method)) return absl::OkStatus();
  auto identity = Verified(context);
  if (!identity.ok()) return identity.status();
  const CallIdentity& who = context->identity;
  if (who.admin) return absl::OkStatus();
  const Resource resource = ResourceOf(method);
  const bool fallback = who.ns_admin || DefaultAllowed(method);
  if (!auth_.Allowed(*identity, context->ns, resource, fallback)) {
    return absl::PermissionDeniedError(fmt::format(
        "account '{}' may not call {} in namespace '{}' ({}); an admin can grant it with a rule",
        who.id, resource.endpoint, context->ns,
        fallback ? "a rule denies it" : "only the namespace's admins may by default"));
  }
  return absl::OkStatus();
}

Status AuthGuard::Identify(CallContext* context) { return Verified(context).status(); }

Result<Identity> AuthGuard::Verified(CallContext* context) {
  if (context->token.empty()) {
    return absl::UnauthenticatedError(
        "this call needs an access token: log in with 'micro login' (clients send "
        "'authorization: Bearer <token>', from Auth.Token)");
  }
  auto identity = auth_.Verify(context->token);
  if (!identity.ok()) return identity.status();
  CallIdentity& who = context->identity;
  who.id = identity->id;
  who.ns = identity->ns;
  who.type = identity->type;
  who.scopes = identity->scopes;
  who.admin = identity->IsAdmin();
  who.ns_admin = identity->HasScope(kAdminScope);
  if (!context->ns_explicit) context->ns = who.ns;
  if (!who.admin && context->ns != who.ns) {
    return absl::PermissionDeniedError(fmt::format(
        "account '{}' of namespace '{}' may not use namespace '{}'", who.id, who.ns, context->ns));
  }
  return identity;
}

}  // namespace micro::auth
