#!/usr/bin/python3
"""Independent-client conformance test for micro.runtime.v1.Runtime.

Shares no code or protos with the project: the runtime API is discovered from the running daemon
by server reflection (see conformance_lib.py). It deploys /bin/sh programs with Create, reads
their status with Read, their output with Logs (a snapshot, then a follow), and removes them with
Delete, checking through /proc that no process is left.

Usage: /usr/bin/python3 runtime_conformance.py PATH/TO/micro
Exit status: 0 if every check passed, 1 otherwise.
"""

import os
import sys
import time

import grpc

from conformance_lib import (REFLECTION, RPC_TIMEOUT, WatchCollector, check, info, main,
                             rpc_status, start, wait_until)

RUNTIME = "micro.runtime.v1.Runtime"
MARK = "CONFORMANCE_MARK=runtime-%d" % os.getpid()


def live_pids_with(marker):
    """Processes (not zombies) whose environment holds `marker`."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % name, "rb") as f:
                if marker.encode() not in f.read():
                    continue
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
            if stat[stat.rfind(")") + 2] == "Z":
                continue
            pids.append(int(name))
        except OSError:
            continue
    return pids


def run_checks(binary, tmp, daemon_holder):
    session = start(binary, tmp, daemon_holder)
    api = session.api
    services = session.reflection.list_services()
    for name in (RUNTIME, REFLECTION):
        check(name in services, "reflection lists %s (got %s)" % (name, services))
    session.load(RUNTIME)

    create, CreateRequest = api.method(RUNTIME, "Create")
    read, ReadRequest = api.method(RUNTIME, "Read")
    update, UpdateRequest = api.method(RUNTIME, "Update")
    delete, DeleteRequest = api.method(RUNTIME, "Delete")
    logs, LogsRequest = api.method(RUNTIME, "Logs")
    Service = api.message("micro.runtime.v1.Service")
    CreateOptions = api.message("micro.runtime.v1.CreateOptions")
    running = api.enum_value("micro.runtime.v1.Status", "STATUS_RUNNING")
    on_failure = api.enum_value("micro.runtime.v1.RestartPolicy", "RESTART_POLICY_ON_FAILURE")

    # --- Create ----------------------------------------------------------------------------
    options = CreateOptions(command="/bin/sh",
                            args=["-c", 'echo "hello $MICRO_SERVICE_NAME"; echo oops >&2; '
                                        "exec sleep 300"],
                            instances=2, restart=on_failure)
    options.env["CONFORMANCE_MARK"] = MARK.split("=", 1)[1]
    created = create(CreateRequest(service=Service(name="conf-svc", version="v1"),
                                   options=options), timeout=RPC_TIMEOUT)
    check(created.service.name == "conf-svc" and created.service.version == "v1",
          "Create answers with the service (%s %s)" % (created.service.name,
                                                      created.service.version))
    code, _ = rpc_status(create, CreateRequest(service=Service(name="conf-svc", version="v1"),
                                               options=options), timeout=RPC_TIMEOUT)
    check(code == grpc.StatusCode.ALREADY_EXISTS, "Create of a deployed service: ALREADY_EXISTS")
    code, details = rpc_status(create, CreateRequest(service=Service(name="bad name"),
                                                     options=CreateOptions(command="/bin/true")),
                               timeout=RPC_TIMEOUT)
    check(code == grpc.StatusCode.INVALID_ARGUMENT and "name" in details,
          "Create with a bad name: INVALID_ARGUMENT naming it (%s)" % details)
    code, details = rpc_status(create, CreateRequest(service=Service(name="nocmd"),
                                                     options=CreateOptions()),
                               timeout=RPC_TIMEOUT)
    check(code == grpc.StatusCode.INVALID_ARGUMENT, "Create without a command: INVALID_ARGUMENT "
          "(%s)" % details)

    # --- Read ------------------------------------------------------------------------------
    def both_running():
        got = read(ReadRequest(name="conf-svc"), timeout=RPC_TIMEOUT).services
        return got if got and got[0].status == running else None

    got = wait_until(both_running, 15)
    check(got is not None, "Read shows the service STATUS_RUNNING")
    service = got[0]
    check(len(service.instances) == 2, "two instances (%d)" % len(service.instances))
    for instance in service.instances:
        check(instance.pid > 0 and os.path.exists("/proc/%d" % instance.pid),
              "instance %s runs as pid %d" % (instance.id, instance.pid))
    check(wait_until(lambda: len(live_pids_with(MARK)) == 2, 10),
          "exactly two processes carry the service's environment")
    code, _ = rpc_status(read, ReadRequest(name="never-deployed"), timeout=RPC_TIMEOUT)
    check(code == grpc.StatusCode.NOT_FOUND, "Read of an unknown service: NOT_FOUND")
    listed = read(ReadRequest(), timeout=RPC_TIMEOUT).services
    check([s.name for s in listed] == ["conf-svc"], "Read with no name lists every service")

    # --- Logs ------------------------------------------------------------------------------
    def both_greeted():
        records = list(logs(LogsRequest(name="conf-svc"), timeout=RPC_TIMEOUT))
        hello = [r for r in records if r.message == "hello conf-svc" and r.stream == "stdout"]
        return records if len(hello) == 2 else None

    records = wait_until(both_greeted, 10)
    check(records is not None, "Logs returns each instance's stdout line")
    check(all(r.timestamp_unix_ms > 0 for r in records), "records carry timestamps")
    check({r.instance for r in records if r.stream == "stdout"} == {"conf-svc-0", "conf-svc-1"},
          "records name their instance")
    check(any(r.stream == "stderr" and r.message == "oops" for r in records),
          "stderr is captured as its own stream")
    one = list(logs(LogsRequest(name="conf-svc", instance="conf-svc-1", lines=-1),
                    timeout=RPC_TIMEOUT))
    check(one and all(r.instance == "conf-svc-1" for r in one), "Logs of one instance")
    last = list(logs(LogsRequest(name="conf-svc", lines=1), timeout=RPC_TIMEOUT))
    check(len(last) == 1, "lines=1 gives one record")
    code, _ = rpc_status(lambda r, timeout: list(logs(r, timeout=timeout)),
                         LogsRequest(name="never-deployed"), timeout=RPC_TIMEOUT)
    check(code == grpc.StatusCode.NOT_FOUND, "Logs of an unknown service: NOT_FOUND")

    # Follow, then an update restarts the instances: the new runs' lines arrive on the stream.
    follower = WatchCollector(logs(LogsRequest(name="conf-svc", follow=True, lines=1)))
    check(follower.live.wait(10), "the follow stream is live")
    updated = update(UpdateRequest(service=Service(name="conf-svc", version="v1")),
                     timeout=RPC_TIMEOUT)
    check(updated.service.name == "conf-svc", "Update without options restarts the service")

    def greeted_again():
        with follower.lock:
            return sum(1 for e in follower.events if e.message == "hello conf-svc") >= 2

    check(wait_until(greeted_again, 15), "the follower sees the restarted instances' output")

    # --- Delete ----------------------------------------------------------------------------
    delete(DeleteRequest(name="conf-svc"), timeout=30)
    check(live_pids_with(MARK) == [], "after Delete no process of the service is left")
    check(follower.ended.wait(10) and follower.code == grpc.StatusCode.OK,
          "the follow stream ends with OK when the service is removed (%s)" % follower.code)
    code, _ = rpc_status(read, ReadRequest(name="conf-svc"), timeout=RPC_TIMEOUT)
    check(code == grpc.StatusCode.NOT_FOUND, "Read after Delete: NOT_FOUND")
    code, _ = rpc_status(delete, DeleteRequest(name="conf-svc"), timeout=RPC_TIMEOUT)
    check(code == grpc.StatusCode.NOT_FOUND, "Delete again: NOT_FOUND")
    kept = list(logs(LogsRequest(name="conf-svc", lines=-1), timeout=RPC_TIMEOUT))
    check(any(r.message == "hello conf-svc" for r in kept), "logs outlive the service")
    info("runtime conformance: all checks passed")


if __name__ == "__main__":
    sys.exit(main(run_checks))
