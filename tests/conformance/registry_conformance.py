#!/usr/bin/python3
"""Independent-client conformance test for micro.registry.v1.Registry.

Shares no code or protos with the project: the only proto it compiles is the upstream gRPC
reflection proto from Debian's grpc-proto package; everything else (the registry API, the health
service) is discovered from the running daemon by server reflection.

Usage: /usr/bin/python3 registry_conformance.py PATH/TO/micro
Exit status: 0 if every check passed, 1 otherwise.
"""

import os
import signal
import sys
import time

import grpc

from conformance_lib import (HEALTH, REFLECTION, RPC_TIMEOUT, WatchCollector, check, main,
                             rpc_status, start, wait_until)

REGISTRY = "micro.registry.v1.Registry"


def run_checks(binary, tmp, daemon_holder):
    session = start(binary, tmp, daemon_holder)
    daemon, channel = session.daemon, session.channel

    # --- discovery -----------------------------------------------------------------------
    services = session.reflection.list_services()
    for name in (REGISTRY, HEALTH, REFLECTION):
        check(name in services, "reflection lists %s (got %s)" % (name, services))

    session.load(REGISTRY, HEALTH)
    check(True, "reflection file descriptors loaded: %s" % sorted(session.loaded))
    pool, api = session.pool, session.api

    action_enum = pool.FindEnumTypeByName("micro.registry.v1.Action")
    action_name = lambda number: action_enum.values_by_number[number].name  # noqa: E731
    for value in ("ACTION_UNSPECIFIED", "ACTION_CREATE", "ACTION_UPDATE", "ACTION_DELETE"):
        check(value in action_enum.values_by_name, "enum Action has %s" % value)

    health_check, HealthCheckRequest = api.method(HEALTH, "Check")
    register, RegisterRequest = api.method(REGISTRY, "Register")
    deregister, DeregisterRequest = api.method(REGISTRY, "Deregister")
    get_service, GetServiceRequest = api.method(REGISTRY, "GetService")
    list_services, ListServicesRequest = api.method(REGISTRY, "ListServices")
    watch, WatchRequest = api.method(REGISTRY, "Watch")
    Service = api.message("micro.registry.v1.Service")

    # --- health ----------------------------------------------------------------------------
    reply = health_check(HealthCheckRequest(service=""), timeout=RPC_TIMEOUT)
    status_name = reply.DESCRIPTOR.fields_by_name["status"].enum_type \
        .values_by_number[reply.status].name
    check(status_name == "SERVING", "health Check('') is SERVING (got %s)" % status_name)

    # --- watch, opened before anything is registered -------------------------------------
    watcher = WatchCollector(watch(WatchRequest(name=""), timeout=120))
    check(watcher.live.wait(RPC_TIMEOUT) and not watcher.ended.is_set(),
          "Watch(name='') is open (response headers received) before registering "
          "(ended=%s code=%s details=%r)" % (watcher.ended.is_set(), watcher.code,
                                              watcher.details))

    # --- register / get / list ---------------------------------------------------------
    service = Service(name="conformance", version="1.0.0")
    service.metadata["team"] = "conformance"
    service.metadata["lang"] = "python"
    endpoint = service.endpoints.add(name="Conformance.Ping")
    endpoint.metadata["stream"] = "false"
    node = service.nodes.add(id="conformance-1", address="127.0.0.1:10001")
    node.metadata["zone"] = "a"
    node = service.nodes.add(id="conformance-2", address="127.0.0.1:10002")
    node.metadata["zone"] = "b"
    register(RegisterRequest(service=service, ttl_seconds=0), timeout=RPC_TIMEOUT)
    check(True, "Register conformance/1.0.0 with 2 nodes, metadata, an endpoint, ttl 0")

    got = get_service(GetServiceRequest(name="conformance"), timeout=RPC_TIMEOUT)
    versions = {s.version: s for s in got.services}
    check(list(versions) == ["1.0.0"] and all(s.name == "conformance" for s in got.services),
          "GetService(conformance) returns version 1.0.0 (got %s)" % list(versions))
    s = versions["1.0.0"]
    nodes = {n.id: n for n in s.nodes}
    check(sorted(nodes) == ["conformance-1", "conformance-2"],
          "GetService returns both nodes (got %s)" % sorted(nodes))
    check(nodes["conformance-1"].address == "127.0.0.1:10001"
          and nodes["conformance-2"].address == "127.0.0.1:10002"
          and dict(nodes["conformance-1"].metadata) == {"zone": "a"}
          and dict(nodes["conformance-2"].metadata) == {"zone": "b"},
          "GetService returns node addresses and node metadata (got %s)"
          % [(n.id, n.address, dict(n.metadata)) for n in s.nodes])
    check(dict(s.metadata) == {"team": "conformance", "lang": "python"},
          "GetService returns service metadata (got %s)" % dict(s.metadata))
    check([(e.name, dict(e.metadata)) for e in s.endpoints]
          == [("Conformance.Ping", {"stream": "false"})],
          "GetService returns the endpoint (got %s)"
          % [(e.name, dict(e.metadata)) for e in s.endpoints])

    one = get_service(GetServiceRequest(name="conformance", version="1.0.0"), timeout=RPC_TIMEOUT)
    check([x.version for x in one.services] == ["1.0.0"],
          "GetService(conformance, 1.0.0) returns that version")

    listed = list_services(ListServicesRequest(), timeout=RPC_TIMEOUT)
    pairs = [(x.name, x.version) for x in listed.services]
    check(("conformance", "1.0.0") in pairs, "ListServices includes conformance/1.0.0 (got %s)"
          % pairs)

    # --- errors --------------------------------------------------------------------------
    code, details = rpc_status(get_service,
                                GetServiceRequest(name="no-such-service"), timeout=RPC_TIMEOUT)
    check(code == grpc.StatusCode.NOT_FOUND,
          "GetService(unknown) is NOT_FOUND (got %s %r)" % (code, details))

    bad = Service(name="bad name!", version="1.0.0")
    bad.nodes.add(id="bad-1", address="127.0.0.1:1")
    code, details = rpc_status(register, RegisterRequest(service=bad), timeout=RPC_TIMEOUT)
    check(code == grpc.StatusCode.INVALID_ARGUMENT,
          "Register(name 'bad name!') is INVALID_ARGUMENT (got %s %r)" % (code, details))

    # --- namespaces ------------------------------------------------------------------------
    other = (("micro-namespace", "other"),)
    listed = list_services(ListServicesRequest(), metadata=other, timeout=RPC_TIMEOUT)
    names = [x.name for x in listed.services]
    check("conformance" not in names,
          "namespace 'other': ListServices does not contain conformance (got %s)" % names)
    code, details = rpc_status(get_service, GetServiceRequest(name="conformance"),
                                metadata=other, timeout=RPC_TIMEOUT)
    check(code == grpc.StatusCode.NOT_FOUND,
          "namespace 'other': GetService(conformance) is NOT_FOUND (got %s %r)" % (code, details))
    code, details = rpc_status(list_services, ListServicesRequest(),
                                metadata=(("micro-namespace", "BAD"),), timeout=RPC_TIMEOUT)
    check(code == grpc.StatusCode.INVALID_ARGUMENT,
          "namespace 'BAD' is INVALID_ARGUMENT (got %s %r)" % (code, details))

    # --- ttl expiry ------------------------------------------------------------------------
    ttl_service = Service(name="conformance", version="ttl")
    ttl_service.nodes.add(id="conformance-ttl", address="127.0.0.1:10003")
    register(RegisterRequest(service=ttl_service, ttl_seconds=1), timeout=RPC_TIMEOUT)
    got = get_service(GetServiceRequest(name="conformance", version="ttl"), timeout=RPC_TIMEOUT)
    check([n.id for x in got.services for n in x.nodes] == ["conformance-ttl"],
          "Register conformance/ttl node with ttl_seconds=1: visible right away")

    def ttl_node_present():
        try:
            reply = get_service(GetServiceRequest(name="conformance"), timeout=RPC_TIMEOUT)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise
        return any(n.id == "conformance-ttl" for x in reply.services for n in x.nodes)

    started = time.monotonic()
    gone = wait_until(lambda: not ttl_node_present(), 4.0, 0.1)
    check(gone, "ttl node disappears from GetService within 4 s (after %.1f s)"
          % (time.monotonic() - started))
    got = get_service(GetServiceRequest(name="conformance"), timeout=RPC_TIMEOUT)
    check(sorted(n.id for x in got.services if x.version == "1.0.0" for n in x.nodes)
          == ["conformance-1", "conformance-2"],
          "ttl-0 nodes of conformance/1.0.0 survive the expiry")

    def find(action, version, node_id=None):
        for e in watcher.snapshot():
            if (action_name(e.action) == action and e.service.name == "conformance"
                    and e.service.version == version
                    and (node_id is None or any(n.id == node_id for n in e.service.nodes))):
                return e
        return None

    def describe_events():
        return [(action_name(e.action), e.service.name, e.service.version,
                 [n.id for n in e.service.nodes]) for e in watcher.snapshot()]

    created = wait_until(lambda: find("ACTION_CREATE", "1.0.0"), 2.0)
    check(created is not None, "Watch received ACTION_CREATE for conformance/1.0.0 (events %s)"
          % describe_events())
    check(created.timestamp_unix_ms > 0 and abs(created.timestamp_unix_ms / 1000 - time.time())
          < 60, "Watch event timestamp_unix_ms is current (%d)" % created.timestamp_unix_ms)
    deleted = wait_until(lambda: find("ACTION_DELETE", "ttl", "conformance-ttl"), 2.0)
    check(deleted is not None,
          "Watch received ACTION_DELETE for the expired node conformance/ttl conformance-ttl "
          "(events %s)" % describe_events())
    check(not any(e.service.name != "conformance" for e in watcher.snapshot()),
          "Watch events concern only what was registered (events %s)" % describe_events())

    # --- deregister ------------------------------------------------------------------------
    deregister(DeregisterRequest(service=Service(name="conformance", version="1.0.0")),
               timeout=RPC_TIMEOUT)
    check(True, "Deregister conformance/1.0.0 (no nodes listed: the whole version)")
    code, details = rpc_status(get_service, GetServiceRequest(name="conformance"),
                                timeout=RPC_TIMEOUT)
    check(code == grpc.StatusCode.NOT_FOUND,
          "after Deregister, GetService(conformance) is NOT_FOUND (got %s %r)" % (code, details))
    listed = list_services(ListServicesRequest(), timeout=RPC_TIMEOUT)
    check(all(x.name != "conformance" for x in listed.services),
          "after Deregister, ListServices does not contain conformance")
    removed = wait_until(lambda: find("ACTION_DELETE", "1.0.0"), 2.0)
    check(removed is not None, "Watch received ACTION_DELETE for conformance/1.0.0 (events %s)"
          % describe_events())

    # --- shutdown with the watch open ----------------------------------------------------
    check(not watcher.ended.is_set(), "Watch stream still open before SIGTERM (code %s %r)"
          % (watcher.code, watcher.details))
    sent = time.monotonic()
    os.kill(daemon.proc.pid, signal.SIGTERM)
    ended = watcher.ended.wait(5.0)
    took = time.monotonic() - sent
    check(ended, "Watch stream ends within 5 s of SIGTERM")
    print("INFO: Watch stream ended %.2f s after SIGTERM with %s %r"
          % (took, watcher.code, watcher.details), flush=True)
    check(watcher.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.OK,
                           grpc.StatusCode.CANCELLED),
          "Watch stream ends with UNAVAILABLE, OK or CANCELLED (got %s %r)"
          % (watcher.code, watcher.details))
    check(watcher.code == grpc.StatusCode.UNAVAILABLE and "shutting down" in (watcher.details or ""),
          "Watch stream ends with UNAVAILABLE 'shutting down' (got %s %r)"
          % (watcher.code, watcher.details))
    exit_code = daemon.stop()
    check(exit_code == 0, "daemon exits 0 after SIGTERM (got %s after %.2f s)"
          % (exit_code, time.monotonic() - sent))
    channel.close()


if __name__ == "__main__":
    sys.exit(main(run_checks))
