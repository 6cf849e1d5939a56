#!/usr/bin/python3
"""Independent-client conformance test for micro.registry.v1.Registry.

Shares no code or protos with the project: the only proto it compiles is the upstream gRPC
reflection proto from Debian's grpc-proto package; everything else (the registry API, the health
service) is discovered from the running daemon by server reflection.

Usage: /usr/bin/python3 registry_conformance.py PATH/TO/micro
Exit status: 0 if every check passed, 1 otherwise.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import grpc
from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory

REFLECTION_PROTO = "/usr/share/grpc-proto/grpc/reflection/v1alpha/reflection.proto"
GRPC_PYTHON_PLUGIN = "/usr/bin/grpc_python_plugin"
REGISTRY = "micro.registry.v1.Registry"
HEALTH = "grpc.health.v1.Health"
REFLECTION = "grpc.reflection.v1alpha.ServerReflection"
RPC_TIMEOUT = 5.0
STARTUP_TIMEOUT = 10.0
STOP_TIMEOUT = 15.0

PASSED = []


def check(condition, message):
    """Asserts `condition`; prints one line when it holds."""
    assert condition, message
    PASSED.append(message)
    print("PASS: " + message, flush=True)


def wait_until(predicate, timeout, interval=0.05):
    """Polls `predicate` until it is truthy or `timeout` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


# --------------------------------------------------------------------------------------------
# Reflection stubs (compiled from the upstream proto at test time) and API discovery
# --------------------------------------------------------------------------------------------

def compile_reflection_stubs(tmp):
    """Compiles the upstream reflection proto into `tmp`; returns (pb2, pb2_grpc) modules."""
    if not os.path.exists(REFLECTION_PROTO):
        raise RuntimeError(REFLECTION_PROTO + " is missing (apt-get install grpc-proto)")
    src = os.path.join(tmp, "proto")
    out = os.path.join(tmp, "py")
    os.makedirs(src)
    os.makedirs(out)
    # Copied to a flat path: compiled under grpc/reflection/... the generated module would be
    # imported as `grpc.reflection...`, which clashes with the real `grpc` package.
    shutil.copy(REFLECTION_PROTO, os.path.join(src, "reflection.proto"))
    subprocess.run(["protoc", "-I", src, "--python_out=" + out, "--grpc_out=" + out,
                    "--plugin=protoc-gen-grpc=" + GRPC_PYTHON_PLUGIN, "reflection.proto"],
                   check=True)
    sys.path.insert(0, out)
    import reflection_pb2  # pylint: disable=import-error,import-outside-toplevel
    import reflection_pb2_grpc  # pylint: disable=import-error,import-outside-toplevel
    return reflection_pb2, reflection_pb2_grpc


class Reflection:
    """A client of grpc.reflection.v1alpha.ServerReflection."""

    def __init__(self, channel, pb2, pb2_grpc):
        self.pb2 = pb2
        self.stub = pb2_grpc.ServerReflectionStub(channel)

    def _ask(self, **request):
        responses = list(self.stub.ServerReflectionInfo(
            iter([self.pb2.ServerReflectionRequest(**request)]), timeout=RPC_TIMEOUT))
        assert len(responses) == 1, "reflection: %d responses to %r" % (len(responses), request)
        response = responses[0]
        kind = response.WhichOneof("message_response")
        if kind == "error_response":
            raise LookupError("reflection %r: error %d %s" % (
                request, response.error_response.error_code,
                response.error_response.error_message))
        return kind, response

    def list_services(self):
        kind, response = self._ask(list_services="")
        assert kind == "list_services_response", "reflection list_services answered " + kind
        return [s.name for s in response.list_services_response.service]

    def _files(self, **request):
        kind, response = self._ask(**request)
        assert kind == "file_descriptor_response", "reflection %r answered %s" % (request, kind)
        return [descriptor_pb2.FileDescriptorProto.FromString(b)
                for b in response.file_descriptor_response.file_descriptor_proto]

    def load_symbol(self, symbol, pool, loaded):
        """Adds the file defining `symbol` and its transitive dependencies to `pool`."""
        files = {}
        for f in self._files(file_containing_symbol=symbol):
            files.setdefault(f.name, f)
        # Follow dependencies the server did not volunteer.
        pending = [d for f in list(files.values()) for d in f.dependency]
        while pending:
            name = pending.pop()
            if name in files or name in loaded:
                continue
            for f in self._files(file_by_filename=name):
                if f.name not in files:
                    files[f.name] = f
                    pending.extend(f.dependency)
            assert name in files, "reflection file_by_filename %s did not return it" % name

        def add(name):
            if name in loaded:
                return
            for dep in files[name].dependency:
                add(dep)
            pool.Add(files[name])
            loaded.add(name)

        for name in list(files):
            add(name)


class Api:
    """Message classes and method callables built from reflected descriptors."""

    def __init__(self, channel, pool):
        self.channel = channel
        self.pool = pool
        self.factory = None if hasattr(message_factory, "GetMessageClass") \
            else message_factory.MessageFactory(pool)

    def message_class(self, descriptor):
        if self.factory is None:
            return message_factory.GetMessageClass(descriptor)
        return self.factory.GetPrototype(descriptor)

    def message(self, full_name):
        return self.message_class(self.pool.FindMessageTypeByName(full_name))

    def method(self, service_name, method_name):
        """Returns (callable, request class) for one method of a reflected service."""
        service = self.pool.FindServiceByName(service_name)
        method = service.methods_by_name.get(method_name)
        assert method is not None, "%s has no method %s" % (service_name, method_name)
        request = self.message_class(method.input_type)
        response = self.message_class(method.output_type)
        path = "/%s/%s" % (service_name, method_name)
        if method.client_streaming:
            raise NotImplementedError(path)
        make = self.channel.unary_stream if method.server_streaming else self.channel.unary_unary
        call = make(path, request_serializer=request.SerializeToString,
                    response_deserializer=response.FromString)
        return call, request


# --------------------------------------------------------------------------------------------
# The daemon
# --------------------------------------------------------------------------------------------

class Daemon:
    def __init__(self, binary, tmp):
        self.data_dir = tempfile.mkdtemp(prefix="micro-conformance-data-")
        self.stderr_path = os.path.join(tmp, "daemon.stderr")
        self.stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [binary, "server", "--address", "127.0.0.1:0", "--data-dir", self.data_dir,
             "--log-level", "warn"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.stderr)
        self.exit_code = None

    def wait_address(self):
        path = os.path.join(self.data_dir, "server.json")

        def address():
            assert self.proc.poll() is None, "daemon exited with %s during startup: %s" % (
                self.proc.returncode, self.stderr_text())
            try:
                with open(path) as f:
                    return json.load(f).get("grpc_address")
            except (OSError, ValueError):
                return None  # not written yet (or being written)

        addr = wait_until(address, STARTUP_TIMEOUT)
        assert addr, "no grpc_address in %s within %.0f s" % (path, STARTUP_TIMEOUT)
        return addr

    def stop(self):
        """SIGTERMs the daemon (by PID) and waits; returns its exit code (None if it hung)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                self.exit_code = None
                return None
        if self.exit_code is None:
            self.exit_code = self.proc.returncode
        return self.exit_code

    def stderr_text(self):
        self.stderr.flush()
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def cleanup(self):
        if self.proc.poll() is None:
            self.stop()
        self.stderr.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Watch stream collector
# --------------------------------------------------------------------------------------------

class WatchCollector:
    """Reads a Watch stream in a background thread."""

    def __init__(self, call):
        self.call = call
        self.events = []
        self.lock = threading.Lock()
        self.live = threading.Event()  # response headers arrived: the watch is subscribed
        self.ended = threading.Event()
        self.code = None
        self.details = None
        self.thread = threading.Thread(target=self._run, name="watch", daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.call.initial_metadata()
            self.live.set()
            for event in self.call:
                with self.lock:
                    self.events.append(event)
            self.code, self.details = grpc.StatusCode.OK, ""
        except grpc.RpcError as e:
            self.code, self.details = e.code(), e.details()
        except Exception as e:  # pylint: disable=broad-except
            self.code, self.details = None, "unexpected %r" % e
        finally:
            self.live.set()
            self.ended.set()

    def snapshot(self):
        with self.lock:
            return list(self.events)


# --------------------------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------------------------

def rpc_status(fn, *args, **kwargs):
    """Calls fn; returns (code, details) of the RpcError it raised, or (OK, "")."""
    try:
        fn(*args, **kwargs)
    except grpc.RpcError as e:
        return e.code(), e.details()
    return grpc.StatusCode.OK, ""


def run_checks(binary, tmp, daemon_holder):
    pb2, pb2_grpc = compile_reflection_stubs(tmp)
    check(True, "compiled upstream reflection.proto with protoc + grpc_python_plugin")

    daemon = Daemon(binary, tmp)
    daemon_holder.append(daemon)
    address = daemon.wait_address()
    check(True, "daemon pid %d serving on %s" % (daemon.proc.pid, address))

    channel = grpc.insecure_channel(address)
    grpc.channel_ready_future(channel).result(timeout=STARTUP_TIMEOUT)

    # --- discovery -----------------------------------------------------------------------
    reflection = Reflection(channel, pb2, pb2_grpc)
    services = reflection.list_services()
    for name in (REGISTRY, HEALTH, REFLECTION):
        check(name in services, "reflection lists %s (got %s)" % (name, services))

    pool = descriptor_pool.DescriptorPool()
    loaded = set()
    reflection.load_symbol(REGISTRY, pool, loaded)
    reflection.load_symbol(HEALTH, pool, loaded)
    check(True, "reflection file descriptors loaded: %s" % sorted(loaded))
    api = Api(channel, pool)

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


def main():
    if len(sys.argv) != 2:
        print("usage: %s PATH/TO/micro" % sys.argv[0], file=sys.stderr)
        return 2
    binary = os.path.abspath(sys.argv[1])
    tmp = tempfile.mkdtemp(prefix="micro-conformance-")
    holder = []
    ok = False
    try:
        run_checks(binary, tmp, holder)
        ok = True
    except AssertionError as e:
        print("FAIL: %s" % e, flush=True)
    except Exception:  # pylint: disable=broad-except
        print("FAIL: unexpected error:\n" + traceback.format_exc(), flush=True)
    finally:
        if holder:
            daemon = holder[0]
            code = daemon.stop()
            if ok and code != 0:
                print("FAIL: daemon exit code %s" % code, flush=True)
                ok = False
            if not ok:
                print("--- daemon stderr ---\n" + daemon.stderr_text(), flush=True)
            daemon.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    print("%s: %d checks passed" % ("OK" if ok else "FAILED", len(PASSED)), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
