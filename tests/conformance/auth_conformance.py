#!/usr/bin/python3
"""Independent-client conformance test for micro.auth.v1 (Auth, Accounts, Rules) and the
per-call check every other service gets.

Shares no code or protos with the project: the API is discovered by server reflection (see
conformance_lib.py), which is public, as are health and Auth.Token.

Usage: /usr/bin/python3 auth_conformance.py PATH/TO/micro
Exit status: 0 if every check passed, 1 otherwise.
"""

import sys

import grpc

from conformance_lib import (Api, BearerInterceptor, RPC_TIMEOUT, check, info, main, rpc_status,
                             start)

AUTH = "micro.auth.v1.Auth"
ACCOUNTS = "micro.auth.v1.Accounts"
RULES = "micro.auth.v1.Rules"
STORE = "micro.store.v1.Store"


def run_checks(binary, tmp, daemon_holder):
    session = start(binary, tmp, daemon_holder)  # logs in as admin
    session.load(AUTH, ACCOUNTS, RULES, STORE)
    services = session.reflection.list_services()
    for name in (AUTH, ACCOUNTS, RULES):
        check(name in services, "reflection lists %s" % name)

    api = session.api  # calls carry the admin's token
    generate, GenerateRequest = api.method(AUTH, "Generate")
    list_accounts, ListAccountsRequest = api.method(ACCOUNTS, "List")
    create_rule, CreateRuleRequest = api.method(RULES, "Create")
    Rule = api.message("micro.auth.v1.Rule")
    Resource = api.message("micro.auth.v1.Resource")

    # The same calls without a token, or with a bad one.
    anonymous = Api(session.raw_channel, session.pool)
    read_anon, ReadRequest = anonymous.method(STORE, "Read")
    code, details = rpc_status(read_anon, ReadRequest(key="k"), timeout=RPC_TIMEOUT)
    check(code == grpc.StatusCode.UNAUTHENTICATED and "token" in details,
          "a call without a token is UNAUTHENTICATED and says how to get one (%s)" % details)
    garbage = Api(grpc.intercept_channel(session.raw_channel, BearerInterceptor("not.a.jwt")),
                  session.pool)
    read_garbage, _ = garbage.method(STORE, "Read")
    code, _ = rpc_status(read_garbage, ReadRequest(key="k"), timeout=RPC_TIMEOUT)
    check(code == grpc.StatusCode.UNAUTHENTICATED, "a garbage token is UNAUTHENTICATED")

    # An account of its own namespace.
    made = generate(GenerateRequest(id="carol", secret="carol-secret", scopes=["reader"]),
                    timeout=RPC_TIMEOUT, metadata=[("micro-namespace", "team-c")])
    check(made.account.namespace == "team-c" and made.account.id == "carol",
          "the admin creates an account in another namespace")
    check(not hasattr(made.account, "secret") or not made.account.secret,
          "an Account never carries its secret")
    listed = list_accounts(ListAccountsRequest(), timeout=RPC_TIMEOUT,
                           metadata=[("micro-namespace", "team-c")])
    check([a.id for a in listed.accounts] == ["carol"], "Accounts.List lists it")

    token_call, TokenRequest = anonymous.method(AUTH, "Token")
    code, _ = rpc_status(token_call, TokenRequest(id="carol", secret="wrong-secret"),
                         timeout=RPC_TIMEOUT, metadata=[("micro-namespace", "team-c")])
    check(code == grpc.StatusCode.UNAUTHENTICATED, "a wrong secret is UNAUTHENTICATED")
    carol = token_call(TokenRequest(id="carol", secret="carol-secret"), timeout=RPC_TIMEOUT,
                       metadata=[("micro-namespace", "team-c")]).token
    check(carol.access_token.count(".") == 2 and carol.refresh_token,
          "a login answers a JWT access token and a refresh token")
    as_carol = Api(grpc.intercept_channel(session.raw_channel,
                                          BearerInterceptor(carol.access_token)), session.pool)
    write, WriteRequest = as_carol.method(STORE, "Write")
    Record = as_carol.message("micro.store.v1.Record")
    write(WriteRequest(record=Record(key="k", value=b"v")), timeout=RPC_TIMEOUT)
    check(True, "the account writes to the store of its own namespace")
    code, details = rpc_status(write, WriteRequest(record=Record(key="k", value=b"v")),
                               timeout=RPC_TIMEOUT, metadata=[("micro-namespace", "team-d")])
    check(code == grpc.StatusCode.PERMISSION_DENIED,
          "another namespace is PERMISSION_DENIED (%s)" % details)
    gen_as_carol, _ = as_carol.method(AUTH, "Generate")
    code, _ = rpc_status(gen_as_carol, GenerateRequest(id="eve", secret="eve-secret!"),
                         timeout=RPC_TIMEOUT)
    check(code == grpc.StatusCode.PERMISSION_DENIED,
          "an account without the admin scope cannot create accounts")

    # A rule that denies, in carol's namespace.
    create_rule(CreateRuleRequest(rule=Rule(id="no-writes", resource=Resource(
        type="service", name="store", endpoint="Store.Write"), access=2)),
        timeout=RPC_TIMEOUT, metadata=[("micro-namespace", "team-c")])
    code, _ = rpc_status(write, WriteRequest(record=Record(key="k", value=b"v")),
                         timeout=RPC_TIMEOUT)
    check(code == grpc.StatusCode.PERMISSION_DENIED, "a deny rule takes effect at once")

    # Refresh rotates; a replayed refresh token revokes the login.
    fresh = token_call(TokenRequest(refresh_token=carol.refresh_token), timeout=RPC_TIMEOUT).token
    check(fresh.refresh_token != carol.refresh_token, "a refresh token rotates on use")
    code, _ = rpc_status(token_call, TokenRequest(refresh_token=carol.refresh_token),
                         timeout=RPC_TIMEOUT)
    check(code == grpc.StatusCode.UNAUTHENTICATED, "a replayed refresh token is refused")
    code, _ = rpc_status(token_call, TokenRequest(refresh_token=fresh.refresh_token),
                         timeout=RPC_TIMEOUT)
    check(code == grpc.StatusCode.UNAUTHENTICATED,
          "... and revokes the tokens descended from the same login")

    # Deleting the account stops its access token at once.
    delete, DeleteAccountRequest = api.method(ACCOUNTS, "Delete")
    delete(DeleteAccountRequest(id="carol"), timeout=RPC_TIMEOUT,
           metadata=[("micro-namespace", "team-c")])
    read_carol, _ = as_carol.method(STORE, "Read")
    code, _ = rpc_status(read_carol, ReadRequest(key="k"), timeout=RPC_TIMEOUT)
    check(code == grpc.StatusCode.UNAUTHENTICATED, "a deleted account's token stops at once")
    info("auth conformance done")


if __name__ == "__main__":
    sys.exit(main(run_checks))
