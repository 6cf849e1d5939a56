#!/usr/bin/python3
"""Independent-client conformance test for micro.events.v1.Events.

Shares no code or protos with the project: the events API is discovered from the running daemon
by server reflection (see conformance_lib.py); the bidirectional Consume call is built on the
reflected message classes.

Usage: /usr/bin/python3 events_conformance.py PATH/TO/micro
Exit status: 0 if every check passed, 1 otherwise.
"""

import queue
import sys
import threading

import grpc

from conformance_lib import (RPC_TIMEOUT, check, info, main, rpc_status, start, wait_until)

EVENTS = "micro.events.v1.Events"
TOPIC = "conformance"


class Consumer:
    """One Consume stream: a request queue feeding the call, and a reader thread."""

    def __init__(self, channel, api, subscription):
        self.ConsumeRequest = api.message("micro.events.v1.ConsumeRequest")
        self.Ack = api.message("micro.events.v1.Ack")
        event_class = api.message("micro.events.v1.Event")
        call = channel.stream_stream("/%s/Consume" % EVENTS,
                                     request_serializer=self.ConsumeRequest.SerializeToString,
                                     response_deserializer=event_class.FromString)
        self.requests = queue.Queue()
        self.requests.put(self.ConsumeRequest(subscription=subscription))
        self.call = call(iter(self.requests.get, None), timeout=60)
        self.events = []
        self.lock = threading.Lock()
        self.code = None
        self.details = None
        self.ended = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for event in self.call:
                with self.lock:
                    self.events.append(event)
            self.code, self.details = grpc.StatusCode.OK, ""
        except grpc.RpcError as e:
            self.code, self.details = e.code(), e.details()
        finally:
            self.ended.set()

    def ack(self, event_id, success=True):
        self.requests.put(self.ConsumeRequest(ack=self.Ack(id=event_id, success=success)))

    def close(self):
        """Closes our side: the daemon ends the stream with OK after the acks before it."""
        self.requests.put(None)
        self.ended.wait(RPC_TIMEOUT)

    def snapshot(self):
        with self.lock:
            return list(self.events)


def run_checks(binary, tmp, daemon_holder):
    session = start(binary, tmp, daemon_holder)
    channel, api = session.channel, session.api
    services = session.reflection.list_services()
    check(EVENTS in services, "reflection lists %s" % EVENTS)
    session.load(EVENTS)

    publish, PublishRequest = api.method(EVENTS, "Publish")
    read, ReadRequest = api.method(EVENTS, "Read")
    topics, TopicsRequest = api.method(EVENTS, "Topics")
    Subscription = api.message("micro.events.v1.Subscription")

    # --- publish, dedup, read ------------------------------------------------------------
    first = publish(PublishRequest(topic=TOPIC, payload=b"\x00one", metadata={"k": "v"}),
                    timeout=RPC_TIMEOUT)
    check(first.sequence == 1 and first.id, "the first event of a topic has sequence 1 and an id")
    second = publish(PublishRequest(topic=TOPIC, payload=b"two", id="client-id-7"),
                     timeout=RPC_TIMEOUT)
    check(second.sequence == 2 and second.id == "client-id-7", "a client-given id is the event's")
    again = publish(PublishRequest(topic=TOPIC, payload=b"two again", id="client-id-7"),
                    timeout=RPC_TIMEOUT)
    check(again.duplicate and again.sequence == 2,
          "publishing the same id again is a duplicate with the first sequence")
    replay = read(ReadRequest(topic=TOPIC), timeout=RPC_TIMEOUT)
    check([e.sequence for e in replay.events] == [1, 2], "Read replays the topic in order")
    check(replay.events[0].payload == b"\x00one" and replay.events[0].metadata["k"] == "v",
          "payload bytes and metadata round-trip")
    limited = read(ReadRequest(topic=TOPIC, start_sequence=2, limit=1), timeout=RPC_TIMEOUT)
    check([e.sequence for e in limited.events] == [2], "Read honours start_sequence and limit")
    listed = topics(TopicsRequest(), timeout=RPC_TIMEOUT)
    check(any(t.name == TOPIC and t.last_sequence == 2 for t in listed.topics),
          "Topics lists the topic with its last sequence")

    # --- PublishStream ---------------------------------------------------------------------
    PublishBatch = api.message("micro.events.v1.PublishBatch")
    PublishAcks = api.message("micro.events.v1.PublishAcks")
    publish_stream = channel.stream_stream("/%s/PublishStream" % EVENTS,
                                           request_serializer=PublishBatch.SerializeToString,
                                           response_deserializer=PublishAcks.FromString)
    batches = [PublishBatch(requests=[PublishRequest(topic="streamed", payload=b"%d" % i)
                                      for i in range(10)]),
               PublishBatch(requests=[PublishRequest(topic="streamed", payload=b"a"),
                                      PublishRequest(topic="bad topic", payload=b"b"),
                                      PublishRequest(topic="streamed", payload=b"c")])]
    answers = list(publish_stream(iter(batches), timeout=RPC_TIMEOUT))
    check(len(answers) == 2 and [len(a.acks) for a in answers] == [10, 3],
          "PublishStream answers each batch with one ack per event")
    check([a.sequence for a in answers[0].acks] == list(range(1, 11)) and
          answers[1].acks[0].sequence == 11 and answers[1].acks[2].sequence == 12,
          "streamed events get sequences in the order they were sent")
    check(answers[1].acks[1].code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and
          "topic" in answers[1].acks[1].error,
          "a refused event gets its code and error in its ack; the others are stored")

    # --- per-topic retention ---------------------------------------------------------------
    configure, ConfigureRequest = api.method(EVENTS, "Configure")
    Retention = api.message("micro.events.v1.Retention")
    configured = configure(ConfigureRequest(topic="kept", retention=Retention(max_events=2)),
                           timeout=RPC_TIMEOUT)
    check(configured.retention.max_events == 2 and configured.configured.HasField("max_events")
          and not configured.configured.HasField("max_bytes"),
          "Configure sets one bound and reports the others as the defaults")
    for n in range(4):
        publish(PublishRequest(topic="kept", payload=b"%d" % n), timeout=RPC_TIMEOUT)
    check(wait_until(lambda: [e.payload for e in
                              read(ReadRequest(topic="kept"), timeout=RPC_TIMEOUT).events]
                     == [b"2", b"3"], 15),
          "a topic's own max_events trims its oldest events")
    listed = topics(TopicsRequest(), timeout=RPC_TIMEOUT)
    check(any(t.name == "kept" and t.configured.max_events == 2 for t in listed.topics),
          "Topics shows a topic's own retention")
    code, details = rpc_status(configure,
                               ConfigureRequest(topic="kept", retention=Retention(max_age_ms=-1)),
                               timeout=RPC_TIMEOUT)
    check(code == grpc.StatusCode.INVALID_ARGUMENT and "max_age_ms" in details,
          "a negative max_age_ms is INVALID_ARGUMENT (%s)" % details)

    # --- error codes -----------------------------------------------------------------------
    code, details = rpc_status(publish, PublishRequest(topic="bad topic"), timeout=RPC_TIMEOUT)
    check(code == grpc.StatusCode.INVALID_ARGUMENT and "topic" in details,
          "a bad topic is INVALID_ARGUMENT naming it (%s)" % details)
    code, details = rpc_status(publish, PublishRequest(topic=TOPIC, payload=b"x" * ((1 << 20) + 1)),
                               timeout=RPC_TIMEOUT)
    check(code == grpc.StatusCode.INVALID_ARGUMENT and "payload" in details,
          "a payload over 1 MiB is INVALID_ARGUMENT (%s)" % details)
    bad = Consumer(channel, api, Subscription(topic=TOPIC, start_sequence=1, start_unix_ms=5))
    bad.ended.wait(RPC_TIMEOUT)
    check(bad.code == grpc.StatusCode.INVALID_ARGUMENT,
          "a subscription with two starts is INVALID_ARGUMENT (%s)" % bad.details)
    bad.requests.put(None)

    # --- groups, acks, redelivery, dead letter ---------------------------------------------
    a = Consumer(channel, api, Subscription(topic=TOPIC, group="a", start_sequence=1))
    b = Consumer(channel, api, Subscription(topic=TOPIC, group="b", start_sequence=1))
    for c in (a, b):
        check(wait_until(lambda c=c: len(c.snapshot()) >= 2, RPC_TIMEOUT),
              "every group gets every event")
    for e in a.snapshot():
        a.ack(e.id)
    a.close()
    check(a.code == grpc.StatusCode.OK, "closing the request side ends the consumer with OK")
    third = publish(PublishRequest(topic=TOPIC, payload=b"three"), timeout=RPC_TIMEOUT)
    a2 = Consumer(channel, api, Subscription(topic=TOPIC, group="a", start_sequence=1))
    check(wait_until(lambda: a2.snapshot(), RPC_TIMEOUT) and
          a2.snapshot()[0].sequence == third.sequence,
          "a group resumes after its acknowledged events")
    a2.close()
    # b never acknowledged: with a short ack_wait its events come again.
    b.close()
    b2 = Consumer(channel, api, Subscription(topic=TOPIC, group="b", ack_wait_ms=200,
                                             retry_limit=1, start_sequence=1))
    check(wait_until(lambda: any(e.delivery_count >= 2 for e in b2.snapshot()), 10),
          "an event not acknowledged within ack_wait is delivered again, delivery_count 2")
    dead = wait_until(lambda: read(ReadRequest(topic=TOPIC + ".dead"), timeout=RPC_TIMEOUT).events,
                      15)
    check(dead and dead[0].metadata["dead-letter-group"] == "b",
          "past retry_limit an event goes to <topic>.dead with its origin in the metadata")
    b2.close()

    # --- auto_ack --------------------------------------------------------------------------
    auto = Consumer(channel, api, Subscription(topic=TOPIC, group="auto", start_sequence=1,
                                               auto_ack=True))
    check(wait_until(lambda: len(auto.snapshot()) >= 3, RPC_TIMEOUT), "auto_ack delivers")
    auto.close()
    publish(PublishRequest(topic=TOPIC, payload=b"four"), timeout=RPC_TIMEOUT)
    auto2 = Consumer(channel, api, Subscription(topic=TOPIC, group="auto", start_sequence=1,
                                                auto_ack=True))
    check(wait_until(lambda: auto2.snapshot(), RPC_TIMEOUT) and
          auto2.snapshot()[0].payload == b"four",
          "with auto_ack the group's position moves without acks")
    auto2.close()
    info("events conformance done")


if __name__ == "__main__":
    sys.exit(main(run_checks))
