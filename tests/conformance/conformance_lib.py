"""Shared helpers of the independent-client conformance tests.

Shares no code or protos with the project: the only proto it compiles is the upstream gRPC
reflection proto from Debian's grpc-proto package; everything else is discovered from the running
daemon by server reflection. Needs Debian's /usr/bin/python3 with python3-grpcio and
python3-protobuf, protobuf-compiler, protobuf-compiler-grpc and grpc-proto.
"""

import collections
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


def info(message):
    print("INFO: " + message, flush=True)


def wait_until(predicate, timeout, interval=0.05):
    """Polls `predicate` until it is truthy or `timeout` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def rpc_status(fn, *args, **kwargs):
    """Calls fn; returns (code, details) of the RpcError it raised, or (OK, "")."""
    try:
        fn(*args, **kwargs)
    except grpc.RpcError as e:
        return e.code(), e.details()
    return grpc.StatusCode.OK, ""


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
            if f.name not in loaded:
                files.setdefault(f.name, f)
        # Follow dependencies the server did not volunteer.
        pending = [d for f in list(files.values()) for d in f.dependency]
        while pending:
            name = pending.pop()
            if name in files or name in loaded:
                continue
            for f in self._files(file_by_filename=name):
                if f.name not in files and f.name not in loaded:
                    files[f.name] = f
                    pending.extend(f.dependency)
            assert name in files or name in loaded, \
                "reflection file_by_filename %s did not return it" % name

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

    def enum_value(self, enum_full_name, value_name):
        """The number of `value_name` in the reflected enum `enum_full_name`."""
        enum = self.pool.FindEnumTypeByName(enum_full_name)
        value = enum.values_by_name.get(value_name)
        assert value is not None, "enum %s has no value %s (has %s)" % (
            enum_full_name, value_name, sorted(enum.values_by_name))
        return value.number

    def method(self, service_name, method_name):
        """Returns (callable, request class) for one method of a reflected service."""
        service = self.pool.FindServiceByName(service_name)
        method = service.methods_by_name.get(method_name)
        assert method is not None, "%s has no method %s" % (service_name, method_name)
        request = self.message_class(method.input_type)
        response = self.message_class(method.output_type)
        path = "/%s/%s" % (service_name, method_name)
        if method.client_streaming:
            make = self.channel.stream_stream if method.server_streaming \
                else self.channel.stream_unary
        else:
            make = self.channel.unary_stream if method.server_streaming \
                else self.channel.unary_unary
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

    def terminate(self):
        """Sends SIGTERM (by PID) if the daemon still runs."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)

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


class Session:
    """A started daemon, a ready channel to it, and a reflection client."""

    def __init__(self, daemon, channel, reflection):
        self.daemon = daemon
        self.channel = channel
        self.reflection = reflection
        self.pool = descriptor_pool.DescriptorPool()
        self.loaded = set()
        self.api = Api(channel, self.pool)

    def load(self, *symbols):
        for symbol in symbols:
            self.reflection.load_symbol(symbol, self.pool, self.loaded)


def start(binary, tmp, daemon_holder):
    """Compiles the reflection stubs, starts the daemon (appended to `daemon_holder` so that
    `main` always stops it) and returns a Session."""
    pb2, pb2_grpc = compile_reflection_stubs(tmp)
    check(True, "compiled upstream reflection.proto with protoc + grpc_python_plugin")

    daemon = Daemon(binary, tmp)
    daemon_holder.append(daemon)
    address = daemon.wait_address()
    check(True, "daemon pid %d serving on %s" % (daemon.proc.pid, address))

    raw = grpc.insecure_channel(address)
    grpc.channel_ready_future(raw).result(timeout=STARTUP_TIMEOUT)
    session = Session(daemon, raw, Reflection(raw, pb2, pb2_grpc))
    # Every call but health, reflection and Auth.Token needs a token: log in as the daemon's
    # admin with the secret it wrote to its data dir, through the reflected Auth service.
    session.load("micro.auth.v1.Auth")
    token_call, TokenRequest = session.api.method("micro.auth.v1.Auth", "Token")
    with open(os.path.join(daemon.data_dir, "admin.secret")) as f:
        secret = f.read().strip()
    session.token = token_call(TokenRequest(id="admin", secret=secret, ttl_seconds=3600),
                               timeout=RPC_TIMEOUT).token.access_token
    check(bool(session.token), "logged in as admin with <data dir>/admin.secret")
    session.raw_channel = raw
    session.channel = grpc.intercept_channel(raw, BearerInterceptor(session.token))
    session.api = Api(session.channel, session.pool)
    return session


class _CallDetails(collections.namedtuple(
        "_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready",
                         "compression")), grpc.ClientCallDetails):
    pass


class BearerInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                        grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds `authorization: Bearer <token>` to every call."""

    def __init__(self, token):
        self.header = ("authorization", "Bearer " + token)

    def _details(self, d):
        metadata = list(d.metadata or []) + [self.header]
        return _CallDetails(d.method, d.timeout, metadata, d.credentials,
                            getattr(d, "wait_for_ready", None), getattr(d, "compression", None))

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, requests):
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._details(details), requests)


# --------------------------------------------------------------------------------------------
# Stream collector
# --------------------------------------------------------------------------------------------

class WatchCollector:
    """Reads a server stream in a background thread."""

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
# Entry point
# --------------------------------------------------------------------------------------------

def main(run_checks):
    """Runs `run_checks(binary, tmp, daemon_holder)`; always stops the daemon by PID.
    Returns the process exit status: 0 if every check passed, 1 otherwise (2: usage)."""
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
