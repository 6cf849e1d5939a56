#!/usr/bin/python3
"""Independent-client conformance test for micro.broker.v1.Broker.

Shares no code or protos with the project: the broker API is discovered from the running daemon
by server reflection (see conformance_lib.py).

Usage: /usr/bin/python3 broker_conformance.py PATH/TO/micro
Exit status: 0 if every check passed, 1 otherwise.
"""

import os
import signal
import sys
import time

import grpc

from conformance_lib import (RPC_TIMEOUT, WatchCollector, check, main, rpc_status, start,
                             wait_until)

BROKER = "micro.broker.v1.Broker"


def run_checks(binary, tmp, daemon_holder):
    session = start(binary, tmp, daemon_holder)
    daemon = session.daemon

    services = session.reflection.list_services()
    check(BROKER in services, "reflection lists %s (got %s)" % (BROKER, services))
    session.load(BROKER)
    api = session.api
    publish, PublishRequest = api.method(BROKER, "Publish")
    subscribe, SubscribeRequest = api.method(BROKER, "Subscribe")
    publish_stream, PublishBatch = api.method(BROKER, "PublishStream")
    subscribe_batches, SubscribeBatchesRequest = api.method(BROKER, "SubscribeBatches")
    Message = api.message("micro.broker.v1.Message")
    for name in ("Publish", "Subscribe", "PublishStream", "SubscribeBatches"):
        check(name in session.pool.FindServiceByName(BROKER).methods_by_name,
              "%s has the method %s" % (BROKER, name))

    def subscribe_live(topic, queue="", namespace=None):
        metadata = [("micro-namespace", namespace)] if namespace else None
        collector = WatchCollector(subscribe(SubscribeRequest(topic=topic, queue=queue),
                                             timeout=120, metadata=metadata))
        check(collector.live.wait(RPC_TIMEOUT) and not collector.ended.is_set(),
              "Subscribe(%r, queue=%r, namespace=%r) is open" % (topic, queue, namespace))
        return collector

    def pub(topic, body, header=None, namespace=None):
        metadata = [("micro-namespace", namespace)] if namespace else None
        publish(PublishRequest(topic=topic, message=Message(header=header or {}, body=body)),
                timeout=RPC_TIMEOUT, metadata=metadata)

    # --- fan-out, wildcards, header and bytes --------------------------------------------
    exact = subscribe_live("orders.created")
    star = subscribe_live("orders.*")
    rest = subscribe_live("orders.>")
    pub("orders.created", b"\x00\x01binary", {"trace": "t-1"})
    pub("orders.created.eu", b"deep")
    got = wait_until(lambda: len(rest.snapshot()) >= 2, 5.0)
    check(got, "orders.> got both messages (got %d)" % len(rest.snapshot()))
    first = exact.snapshot()[0] if exact.snapshot() else None
    check(first is not None and first.topic == "orders.created"
          and first.body == b"\x00\x01binary" and dict(first.header) == {"trace": "t-1"},
          "a subscriber gets topic, header and binary body as published (got %r)" % first)
    check([m.topic for m in rest.snapshot()] == ["orders.created", "orders.created.eu"],
          "'>' matches one or more tokens, in publish order")
    time.sleep(0.2)
    check([m.topic for m in star.snapshot()] == ["orders.created"],
          "'*' matches exactly one token (got %s)" % [m.topic for m in star.snapshot()])

    # --- queue groups -----------------------------------------------------------------------
    members = [subscribe_live("jobs", queue="workers") for _ in range(3)]
    plain = subscribe_live("jobs")
    for i in range(30):
        pub("jobs", str(i).encode())
    wait_until(lambda: len(plain.snapshot()) >= 30
               and sum(len(m.snapshot()) for m in members) >= 30, 5.0)
    bodies = sorted(int(x.body) for m in members for x in m.snapshot())
    check(bodies == list(range(30)),
          "each message reaches exactly one member of the queue group (got %s)" % bodies)
    check(all(len(m.snapshot()) > 0 for m in members),
          "every member of the group gets a share (%s)" % [len(m.snapshot()) for m in members])
    check(len(plain.snapshot()) == 30, "a plain subscriber gets every message of the topic")

    # --- namespaces ---------------------------------------------------------------------------
    team_a = subscribe_live("t", namespace="team-a")
    team_b = subscribe_live("t", namespace="team-b")
    pub("t", b"for-a", namespace="team-a")
    wait_until(lambda: team_a.snapshot(), 5.0)
    time.sleep(0.2)
    check([m.body for m in team_a.snapshot()] == [b"for-a"] and not team_b.snapshot(),
          "the micro-namespace metadata isolates topics")

    # --- streaming publish and batched delivery ------------------------------------------
    batches = WatchCollector(subscribe_batches(
        SubscribeBatchesRequest(topic="fast.>", max_messages=64), timeout=120))
    check(batches.live.wait(RPC_TIMEOUT), "SubscribeBatches is open")

    def requests():
        for b in range(10):
            yield PublishBatch(requests=[
                PublishRequest(topic="fast.x", message=Message(body=b"%d" % (b * 100 + i)))
                for i in range(100)])

    response = publish_stream(requests(), timeout=30)
    check(response.published == 1000, "PublishStream answers published=1000 (got %d)"
          % response.published)
    wait_until(lambda: sum(len(b.messages) for b in batches.snapshot()) >= 1000, 10.0)
    received = [int(m.body) for b in batches.snapshot() for m in b.messages]
    check(received == list(range(1000)),
          "SubscribeBatches delivers all 1000 in order (got %d)" % len(received))
    check(all(len(b.messages) <= 64 for b in batches.snapshot()),
          "no batch holds more than max_messages")
    check(all(b.dropped == 0 for b in batches.snapshot()), "a reader that keeps up loses nothing")

    # --- errors -----------------------------------------------------------------------------
    code, details = rpc_status(publish, PublishRequest(topic="orders.*", message=Message()),
                               timeout=RPC_TIMEOUT)
    check(code == grpc.StatusCode.INVALID_ARGUMENT and "wildcard" in details,
          "Publish to a wildcard topic is INVALID_ARGUMENT (got %s %r)" % (code, details))
    code, details = rpc_status(publish, PublishRequest(
        topic="t", message=Message(body=b"x" * ((1 << 20) + 1))), timeout=RPC_TIMEOUT)
    check(code == grpc.StatusCode.INVALID_ARGUMENT and "1048576" in details,
          "a body over 1 MiB is INVALID_ARGUMENT naming the limit (got %s %r)" % (code, details))
    code, details = rpc_status(publish, PublishRequest(
        topic="t", message=Message(header={"micro-dropped": "1"})), timeout=RPC_TIMEOUT)
    check(code == grpc.StatusCode.INVALID_ARGUMENT and "reserved" in details,
          "a header key with the reserved prefix micro- is INVALID_ARGUMENT (got %s %r)"
          % (code, details))
    bad = WatchCollector(subscribe(SubscribeRequest(topic="a.>.b"), timeout=RPC_TIMEOUT))
    bad.ended.wait(RPC_TIMEOUT)
    check(bad.code == grpc.StatusCode.INVALID_ARGUMENT and "last token" in (bad.details or ""),
          "Subscribe to 'a.>.b' is INVALID_ARGUMENT (got %s %r)" % (bad.code, bad.details))

    def bad_stream():
        yield PublishBatch(requests=[PublishRequest(topic="ok", message=Message()),
                                     PublishRequest(topic="not ok", message=Message())])

    code, details = rpc_status(publish_stream, bad_stream(), timeout=RPC_TIMEOUT)
    check(code == grpc.StatusCode.INVALID_ARGUMENT and "message 2 of the stream" in details,
          "PublishStream ends at the first bad message, naming it (got %s %r)" % (code, details))

    # --- shutdown ---------------------------------------------------------------------------
    os.kill(daemon.proc.pid, signal.SIGTERM)
    check(exact.ended.wait(5.0), "Subscribe streams end within 5 s of SIGTERM")
    check(exact.code == grpc.StatusCode.UNAVAILABLE,
          "Subscribe ends with UNAVAILABLE at shutdown (got %s %r)" % (exact.code, exact.details))
    check(daemon.stop() == 0, "daemon exits 0 after SIGTERM")
    session.channel.close()


if __name__ == "__main__":
    sys.exit(main(run_checks))
