#!/usr/bin/python3
"""helloworld in Python: the same Greeter API as examples/helloworld, using only proto/ and
Debian's python3-grpcio and python3-protobuf (no micro SDK). It does by hand what the C++ SDK
does: logs in with the service account the runtime gives it, registers its node with a TTL and
heartbeats, calls other services by name through the registry, and deregisters on SIGTERM.

Deploy it with `micro run .` from this folder: micro.yaml's build step generates the Python
modules of the protos with protoc into ./gen.
"""
import os
import signal
import sys
import threading
import time
from concurrent import futures

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

import grpc  # noqa: E402
from helloworld.v1 import helloworld_pb2  # noqa: E402
from micro.auth.v1 import auth_pb2  # noqa: E402
from micro.registry.v1 import registry_pb2  # noqa: E402

NAME = os.environ.get("MICRO_SERVICE_NAME", "helloworld-python")
VERSION = os.environ.get("MICRO_SERVICE_VERSION", "latest")
ADDRESS = os.environ.get("MICRO_SERVICE_ADDRESS", "127.0.0.1:0")
DAEMON = os.environ.get("MICRO_SERVER", "127.0.0.1:8081")
NAMESPACE = os.environ.get("MICRO_NAMESPACE", "micro")
NODE_ID = os.environ.get("MICRO_INSTANCE_ID", NAME + "-" + str(os.getpid()))
TTL, HEARTBEAT = 15, 5


def unary(channel, method, response_type):
    return channel.unary_unary(method, request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=response_type.FromString)


class Daemon:
    """The daemon's registry and auth, with this service's token."""

    def __init__(self):
        ca = os.environ.get("MICRO_TLS_CA")
        if ca:
            creds = grpc.ssl_channel_credentials(open(ca, "rb").read())
            self.channel = grpc.secure_channel(DAEMON, creds)
        else:
            self.channel = grpc.insecure_channel(DAEMON)
        self.token, self.expiry_ms = "", 0
        self.lock = threading.Lock()

    def metadata(self):
        md = [("micro-namespace", NAMESPACE)]
        account = os.environ.get("MICRO_AUTH_ID")
        if not account:
            return md
        with self.lock:
            if time.time() * 1000 > self.expiry_ms - 60_000:
                token = unary(self.channel, "/micro.auth.v1.Auth/Token", auth_pb2.TokenResponse)(
                    auth_pb2.TokenRequest(id=account, secret=os.environ["MICRO_AUTH_SECRET"]),
                    metadata=md, timeout=10).token
                self.token, self.expiry_ms = token.access_token, token.expiry_unix_ms
            return md + [("authorization", "Bearer " + self.token)]

    def register(self, address, deregister=False):
        service = registry_pb2.Service(
            name=NAME, version=VERSION,
            endpoints=[registry_pb2.Endpoint(name="Greeter.SayHello"),
                       registry_pb2.Endpoint(name="Greeter.Relay")],
            nodes=[registry_pb2.Node(id=NODE_ID, address=address)])
        if deregister:
            unary(self.channel, "/micro.registry.v1.Registry/Deregister",
                  registry_pb2.DeregisterResponse)(
                registry_pb2.DeregisterRequest(service=service), metadata=self.metadata(), timeout=5)
        else:
            unary(self.channel, "/micro.registry.v1.Registry/Register",
                  registry_pb2.RegisterResponse)(
                registry_pb2.RegisterRequest(service=service, ttl_seconds=TTL),
                metadata=self.metadata(), timeout=5)

    def node_of(self, name):
        found = unary(self.channel, "/micro.registry.v1.Registry/GetService",
                      registry_pb2.GetServiceResponse)(
            registry_pb2.GetServiceRequest(name=name), metadata=self.metadata(), timeout=5)
        nodes = [n.address for s in found.services for n in s.nodes]
        if not nodes:
            raise LookupError(name + " has no node")
        return nodes[int(time.time() * 1000) % len(nodes)]


def serve():
    daemon = Daemon()

    def say_hello(request, context):
        if not request.name:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "name is required")
        return helloworld_pb2.HelloReply(message="Hello " + request.name, node=NODE_ID)

    def relay(request, context):
        # Another service by its registry name, with this service's identity.
        try:
            node = daemon.node_of(request.service)
        except grpc.RpcError as e:
            context.abort(e.code(), e.details())
        except LookupError as e:
            context.abort(grpc.StatusCode.NOT_FOUND, str(e))
        with grpc.insecure_channel(node) as channel:
            try:
                return unary(channel, "/helloworld.v1.Greeter/SayHello", helloworld_pb2.HelloReply)(
                    helloworld_pb2.HelloRequest(name=request.name), metadata=daemon.metadata(),
                    timeout=10)
            except grpc.RpcError as e:
                context.abort(e.code(), e.details())

    handlers = grpc.method_handlers_generic_handler("helloworld.v1.Greeter", {
        "SayHello": grpc.unary_unary_rpc_method_handler(
            say_hello, request_deserializer=helloworld_pb2.HelloRequest.FromString,
            response_serializer=lambda m: m.SerializeToString()),
        "Relay": grpc.unary_unary_rpc_method_handler(
            relay, request_deserializer=helloworld_pb2.RelayRequest.FromString,
            response_serializer=lambda m: m.SerializeToString()),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((handlers,))
    port = server.add_insecure_port(ADDRESS)
    if port == 0:
        print("cannot listen on " + ADDRESS, file=sys.stderr)
        return 1
    server.start()
    address = ADDRESS.rsplit(":", 1)[0] + ":" + str(port)
    try:
        daemon.register(address)
    except grpc.RpcError as e:
        print("cannot register with the daemon at %s: %s" % (DAEMON, e.details()), file=sys.stderr)
        server.stop(0)
        return 1
    print("%s serving on %s (node %s)" % (NAME, address, NODE_ID), file=sys.stderr, flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(HEARTBEAT):
        try:
            daemon.register(address)
        except grpc.RpcError as e:
            print("heartbeat failed: " + str(e.details()), file=sys.stderr, flush=True)
    # Deregistered first, so callers stop picking this node; then the calls in flight finish.
    try:
        daemon.register(address, deregister=True)
    except grpc.RpcError:
        pass
    server.stop(10).wait()
    return 0


if __name__ == "__main__":
    sys.exit(serve())
