#!/usr/bin/python3
"""Independent-client conformance test for micro.store.v1.Store and micro.config.v1.Config.

Shares no code or protos with the project: the only proto it compiles is the upstream gRPC
reflection proto from Debian's grpc-proto package; the store and config APIs are discovered from
the running daemon by server reflection (see conformance_lib.py).

Usage: /usr/bin/python3 store_config_conformance.py PATH/TO/micro
Exit status: 0 if every check passed, 1 otherwise.
"""

import json
import sys
import time

import grpc

from conformance_lib import (REFLECTION, RPC_TIMEOUT, WatchCollector, check, info, main,
                             rpc_status, start, wait_until)

STORE = "micro.store.v1.Store"
CONFIG = "micro.config.v1.Config"

DB = "confdb"
TABLE = "conftable"
SCAN_TABLE = "scan"
BULK_TABLE = "bulk"
BULK_KEYS = 2500
LIST_CHUNK_MAX = 1000
OTHER_NS = "conf-ns"
# Not valid UTF-8 (0xff, 0xfe, 0x80, 0xc3 0x28), plus NUL: the value must round-trip as bytes.
BINARY_VALUE = b"\x00\xff\xfe\x80bin\xc3\x28ary\x00\x01\x7f\xf0\x28\x8c\xbc"


def run_checks(binary, tmp, daemon_holder):
    session = start(binary, tmp, daemon_holder)
    daemon, channel, api = session.daemon, session.channel, session.api

    # --- discovery -----------------------------------------------------------------------
    services = session.reflection.list_services()
    for name in (STORE, CONFIG, REFLECTION):
        check(name in services, "reflection lists %s (got %s)" % (name, services))
    session.load(STORE, CONFIG)
    check(True, "reflection file descriptors loaded: %s" % sorted(session.loaded))

    read, ReadRequest = api.method(STORE, "Read")
    write, WriteRequest = api.method(STORE, "Write")
    delete, DeleteRequest = api.method(STORE, "Delete")
    list_keys, ListRequest = api.method(STORE, "List")
    databases, DatabasesRequest = api.method(STORE, "Databases")
    tables, TablesRequest = api.method(STORE, "Tables")
    Record = api.message("micro.store.v1.Record")
    order_desc = api.enum_value("micro.store.v1.Order", "ORDER_DESC")
    order_asc = api.enum_value("micro.store.v1.Order", "ORDER_ASC")
    check(order_desc != order_asc and order_desc != 0,
          "enum micro.store.v1.Order has ORDER_ASC=%d and ORDER_DESC=%d" % (order_asc, order_desc))

    def put(key, value, table=TABLE, database=DB, metadata=None, **kwargs):
        record = Record(key=key, value=value, metadata=metadata or {})
        return write(WriteRequest(database=database, table=table, record=record, **kwargs),
                     timeout=RPC_TIMEOUT).revision

    def get(key, table=TABLE, database=DB, **kwargs):
        reply = read(ReadRequest(database=database, table=table, key=key), timeout=RPC_TIMEOUT,
                     **kwargs)
        assert len(reply.records) == 1, "Read(%s/%s/%s) returned %d records" % (
            database, table, key, len(reply.records))
        return reply.records[0]

    def get_status(key, table=TABLE, database=DB, **kwargs):
        return rpc_status(read, ReadRequest(database=database, table=table, key=key),
                          timeout=RPC_TIMEOUT, **kwargs)

    # --- write / read round trip ---------------------------------------------------------
    meta = {"kind": "binary", "owner": "conformance"}
    rev1 = put("alpha", BINARY_VALUE, metadata=meta)
    check(rev1 > 0, "Write(alpha) returns a positive revision (got %d)" % rev1)
    got = get("alpha")
    check(got.key == "alpha" and got.value == BINARY_VALUE,
          "Read(alpha) returns the key and the exact non-UTF-8 value bytes (got %r %r)"
          % (got.key, got.value))
    check(dict(got.metadata) == meta,
          "Read(alpha) returns the metadata (got %s)" % dict(got.metadata))
    check(got.revision == rev1,
          "Read(alpha) returns the revision Write returned (got %d, want %d)"
          % (got.revision, rev1))
    check(got.ttl_seconds == 0, "Read(alpha) of a record without TTL has ttl_seconds 0 (got %d)"
          % got.ttl_seconds)

    rev2 = put("beta", b"b")
    rev3 = put("alpha", b"alpha-2")
    check(rev1 < rev2 < rev3, "revisions increase across writes (%d < %d < %d)"
          % (rev1, rev2, rev3))
    got = get("alpha")
    check(got.value == b"alpha-2" and got.revision == rev3 and dict(got.metadata) == {},
          "overwrite of alpha replaces value, metadata and revision (got %r %d %s)"
          % (got.value, got.revision, dict(got.metadata)))

    # --- errors --------------------------------------------------------------------------
    code, details = get_status("no-such-key")
    check(code == grpc.StatusCode.NOT_FOUND,
          "Read of a missing key is NOT_FOUND (got %s %r)" % (code, details))
    code, details = rpc_status(write, WriteRequest(database=DB, table=TABLE,
                                                   record=Record(key="", value=b"x")),
                               timeout=RPC_TIMEOUT)
    check(code == grpc.StatusCode.INVALID_ARGUMENT,
          "Write with an empty key is INVALID_ARGUMENT (got %s %r)" % (code, details))
    code, details = get_status("")
    check(code == grpc.StatusCode.INVALID_ARGUMENT,
          "Read of an empty key is INVALID_ARGUMENT (got %s %r)" % (code, details))

    # --- conditional writes --------------------------------------------------------------
    code, details = rpc_status(put, "alpha", b"must-not-be-written", if_absent=True)
    check(code == grpc.StatusCode.FAILED_PRECONDITION,
          "Write(alpha, if_absent) on an existing key is FAILED_PRECONDITION (got %s %r)"
          % (code, details))
    got = get("alpha")
    check(got.value == b"alpha-2" and got.revision == rev3,
          "after the failed if_absent write alpha is unchanged (got %r rev %d)"
          % (got.value, got.revision))
    rev_gamma = put("gamma", b"g", if_absent=True)
    check(rev_gamma > rev3, "Write(gamma, if_absent) on a new key succeeds (revision %d)"
          % rev_gamma)

    rev4 = put("alpha", b"alpha-3", if_revision=rev3)
    check(rev4 > rev_gamma, "Write(alpha, if_revision=current %d) succeeds (revision %d)"
          % (rev3, rev4))
    code, details = rpc_status(put, "alpha", b"stale", if_revision=rev3)
    check(code == grpc.StatusCode.FAILED_PRECONDITION,
          "Write(alpha, if_revision=stale %d) is FAILED_PRECONDITION (got %s %r)"
          % (rev3, code, details))
    got = get("alpha")
    check(got.value == b"alpha-3" and got.revision == rev4,
          "after the stale if_revision write alpha is unchanged (got %r rev %d)"
          % (got.value, got.revision))

    # --- prefix scans ----------------------------------------------------------------------
    for i in range(10):
        put("scan/%02d" % i, b"v%02d" % i, table=SCAN_TABLE)
    put("other/00", b"x", table=SCAN_TABLE)
    put("scan", b"x", table=SCAN_TABLE)  # "scan" does not start with "scan/"

    def scan(**kwargs):
        reply = read(ReadRequest(database=DB, table=SCAN_TABLE, key="scan/", prefix=True,
                                 **kwargs), timeout=RPC_TIMEOUT)
        return [(r.key, r.value) for r in reply.records]

    want_all = [("scan/%02d" % i, b"v%02d" % i) for i in range(10)]
    got = scan()
    check(got == want_all, "prefix Read('scan/') returns the 10 matching records in key order "
          "with values (got %s)" % got)
    got = scan(limit=3, offset=2, order=order_desc)
    want = [("scan/07", b"v07"), ("scan/06", b"v06"), ("scan/05", b"v05")]
    check(got == want, "prefix Read('scan/', limit 3, offset 2, ORDER_DESC) returns %s (got %s)"
          % ([k for k, _ in want], got))
    got = scan(limit=3, offset=2, order=order_asc)
    want = [("scan/02", b"v02"), ("scan/03", b"v03"), ("scan/04", b"v04")]
    check(got == want, "prefix Read('scan/', limit 3, offset 2, ORDER_ASC) returns %s (got %s)"
          % ([k for k, _ in want], got))
    reply = read(ReadRequest(database=DB, table=SCAN_TABLE, key="nothing/", prefix=True),
                 timeout=RPC_TIMEOUT)
    check(len(reply.records) == 0, "prefix Read with no match is OK with zero records (got %d)"
          % len(reply.records))

    # --- List: a server stream in bounded chunks -------------------------------------------
    started = time.monotonic()
    bulk_keys = ["k%05d" % i for i in range(BULK_KEYS)]
    pending = []
    for key in bulk_keys:
        pending.append(write.future(WriteRequest(database=DB, table=BULK_TABLE,
                                                 record=Record(key=key, value=b"v")),
                                    timeout=60))
        if len(pending) >= 64:
            for f in pending:
                f.result()
            pending = []
    for f in pending:
        f.result()
    info("wrote %d keys in %.2f s" % (BULK_KEYS, time.monotonic() - started))
    chunks = [list(r.keys) for r in list_keys(ListRequest(database=DB, table=BULK_TABLE),
                                              timeout=30)]
    sizes = [len(c) for c in chunks]
    listed = [k for c in chunks for k in c]
    check(sizes and all(0 < n <= LIST_CHUNK_MAX for n in sizes),
          "List of %d keys arrives in non-empty chunks of at most %d keys (chunk sizes %s)"
          % (BULK_KEYS, LIST_CHUNK_MAX, sizes))
    check(len(chunks) >= (BULK_KEYS + LIST_CHUNK_MAX - 1) // LIST_CHUNK_MAX,
          "List of %d keys takes at least %d messages (got %d)"
          % (BULK_KEYS, (BULK_KEYS + LIST_CHUNK_MAX - 1) // LIST_CHUNK_MAX, len(chunks)))
    check(len(listed) == BULK_KEYS, "List chunks total %d keys (got %d)"
          % (BULK_KEYS, len(listed)))
    check(listed == bulk_keys, "List returns every key once, in ascending key order")

    # --- Databases / Tables ----------------------------------------------------------------
    dbs = list(databases(DatabasesRequest(), timeout=RPC_TIMEOUT).databases)
    check(DB in dbs, "Databases contains %s (got %s)" % (DB, dbs))
    tabs = list(tables(TablesRequest(database=DB), timeout=RPC_TIMEOUT).tables)
    check(set(tabs) == {TABLE, SCAN_TABLE, BULK_TABLE},
          "Tables(%s) lists exactly %s (got %s)" % (DB, sorted({TABLE, SCAN_TABLE, BULK_TABLE}),
                                                    tabs))

    # --- default database = the caller's namespace -----------------------------------------
    ns_md = (("micro-namespace", OTHER_NS),)
    write(WriteRequest(record=Record(key="ns-key", value=b"in-ns")), metadata=ns_md,
          timeout=RPC_TIMEOUT)
    dbs = list(databases(DatabasesRequest(), timeout=RPC_TIMEOUT).databases)
    check(OTHER_NS in dbs, "Write with micro-namespace %s and no database: Databases contains "
          "%s (got %s)" % (OTHER_NS, OTHER_NS, dbs))
    tabs = list(tables(TablesRequest(), metadata=ns_md, timeout=RPC_TIMEOUT).tables)
    check(tabs == ["default"], "Tables() in namespace %s lists ['default'] (got %s)"
          % (OTHER_NS, tabs))
    got = get("ns-key", table="default", database=OTHER_NS)
    check(got.value == b"in-ns", "Read(database=%s, table=default, ns-key) finds the record "
          "(got %r)" % (OTHER_NS, got.value))
    got = get("ns-key", table="", database="", metadata=ns_md)
    check(got.value == b"in-ns", "Read with micro-namespace %s, no database and no table finds "
          "the record (got %r)" % (OTHER_NS, got.value))

    # --- TTL -------------------------------------------------------------------------------
    written = time.monotonic()
    record = Record(key="short-lived", value=b"t", ttl_seconds=1)
    write(WriteRequest(database=DB, table=TABLE, record=record), timeout=RPC_TIMEOUT)
    got = get("short-lived")
    check(got.value == b"t" and 0 < got.ttl_seconds <= 1,
          "a ttl_seconds=1 record is readable at once with 0 < ttl_seconds <= 1 (got %r, %d)"
          % (got.value, got.ttl_seconds))
    gone = wait_until(lambda: get_status("short-lived")[0] == grpc.StatusCode.NOT_FOUND,
                      3.0 - (time.monotonic() - written), 0.1)
    took = time.monotonic() - written
    code, details = get_status("short-lived")
    check(gone and code == grpc.StatusCode.NOT_FOUND,
          "the ttl_seconds=1 record is NOT_FOUND within 3 s of the write (after %.1f s: %s %r)"
          % (took, code, details))
    info("ttl_seconds=1 record expired %.2f s after the write" % took)

    # --- Delete ----------------------------------------------------------------------------
    delete(DeleteRequest(database=DB, table=TABLE, key="alpha"), timeout=RPC_TIMEOUT)
    code, details = get_status("alpha")
    check(code == grpc.StatusCode.NOT_FOUND, "after Delete(alpha), Read(alpha) is NOT_FOUND "
          "(got %s %r)" % (code, details))
    code, details = rpc_status(delete, DeleteRequest(database=DB, table=TABLE, key="alpha"),
                               timeout=RPC_TIMEOUT)
    check(code == grpc.StatusCode.OK, "Delete of a missing key is OK (got %s %r)"
          % (code, details))
    check(get("beta").value == b"b", "Delete(alpha) leaves beta alone")

    # ======================================================================================
    # Config
    # ======================================================================================
    cfg_get, GetRequest = api.method(CONFIG, "Get")
    cfg_set, SetRequest = api.method(CONFIG, "Set")
    cfg_delete, CfgDeleteRequest = api.method(CONFIG, "Delete")
    cfg_watch, WatchRequest = api.method(CONFIG, "Watch")

    def get_json(path, **kwargs):
        text = cfg_get(GetRequest(path=path, **kwargs), timeout=RPC_TIMEOUT).value
        try:
            return json.loads(text)
        except ValueError:
            raise AssertionError("Config.Get(%r) returned invalid JSON %r" % (path, text))

    def get_code(path, **kwargs):
        return rpc_status(cfg_get, GetRequest(path=path, **kwargs), timeout=RPC_TIMEOUT)

    # Watches opened before any Set.
    db_watch = WatchCollector(cfg_watch(WatchRequest(path="db"), timeout=120))
    other_watch = WatchCollector(cfg_watch(WatchRequest(path="cache"), timeout=120))
    for name, w in (("db", db_watch), ("cache", other_watch)):
        check(w.live.wait(RPC_TIMEOUT) and not w.ended.is_set(),
              "Config.Watch(path=%r) is open before any Set (ended=%s code=%s %r)"
              % (name, w.ended.is_set(), w.code, w.details))

    def watch_events():
        return [(e.path, e.value) for e in db_watch.snapshot()]

    def find_event(path, predicate):
        for e in db_watch.snapshot():
            if e.path == path:
                try:
                    value = json.loads(e.value)
                except ValueError:
                    raise AssertionError("Watch event for %r has invalid JSON %r"
                                         % (e.path, e.value))
                if predicate(value):
                    return e
        return None

    code, details = get_code("")
    check(code == grpc.StatusCode.NOT_FOUND,
          "Config.Get('') of an empty namespace is NOT_FOUND (got %s %r)" % (code, details))

    cfg_set(SetRequest(path="", value=json.dumps({"db": {"host": "h", "port": 1}})),
            timeout=RPC_TIMEOUT)
    port = get_json("db.port")
    check(port == 1 and not isinstance(port, bool),
          "Set '' to {db:{host:h,port:1}}: Get('db.port') is the JSON number 1 (got %r)" % port)
    check(get_json("db.host") == "h", "Get('db.host') is \"h\"")
    check(get_json("") == {"db": {"host": "h", "port": 1}},
          "Get('') is the whole document (got %s)" % get_json(""))

    cfg_set(SetRequest(path="db", value=json.dumps({"port": 2, "user": "u"})),
            timeout=RPC_TIMEOUT)
    got = get_json("db")
    check(got == {"host": "h", "port": 2, "user": "u"},
          "Set 'db' to {port:2,user:u} merges leaf by leaf, keeping host (got %s)" % got)
    cfg_set(SetRequest(path="", value=json.dumps({"db": {"port": 3}, "app": {"name": "c"}})),
            timeout=RPC_TIMEOUT)
    got = get_json("")
    check(got == {"db": {"host": "h", "port": 3, "user": "u"}, "app": {"name": "c"}},
          "Set '' to {db:{port:3},app:{name:c}} merges nested objects leaf by leaf (got %s)" % got)

    for bad in ("{not json", "{\"a\":", "nul"):
        code, details = rpc_status(cfg_set, SetRequest(path="db.port", value=bad),
                                   timeout=RPC_TIMEOUT)
        check(code == grpc.StatusCode.INVALID_ARGUMENT,
              "Set with invalid JSON %r is INVALID_ARGUMENT (got %s %r)" % (bad, code, details))
    check(get_json("db.port") == 3, "the invalid Sets left db.port unchanged")

    for path in ("db.missing", "nothing.here", "db.host.deeper"):
        code, details = get_code(path)
        check(code == grpc.StatusCode.NOT_FOUND,
              "Get(%r) of a missing path is NOT_FOUND (got %s %r)" % (path, code, details))

    # --- secrets ---------------------------------------------------------------------------
    cfg_set(SetRequest(path="db.password", value=json.dumps("s3cret"), secret=True),
            timeout=RPC_TIMEOUT)
    got = get_json("db.password")
    check(got == "[secret]", "Get('db.password') of a secret returns \"[secret]\" (got %r)" % got)
    got = get_json("db")
    check(got.get("password") == "[secret]" and got.get("host") == "h",
          "Get('db') masks the secret leaf (got %s)" % got)
    got = get_json("db.password", secret=True)
    check(got == "s3cret", "Get('db.password', secret=true) returns the value (got %r)" % got)

    # --- watch -----------------------------------------------------------------------------
    event = wait_until(lambda: find_event("db", lambda v: v == {"host": "h", "port": 2,
                                                                 "user": "u"}), 2.0)
    check(event is not None, "Watch('db') received path 'db' with the merged value after Set "
          "'db' (events %s)" % watch_events())
    event = wait_until(lambda: find_event("db.password", lambda v: v == "[secret]"), 2.0)
    check(event is not None, "Watch('db') received path 'db.password' with value \"[secret]\" "
          "(events %s)" % watch_events())
    check(all("s3cret" not in e.value for e in db_watch.snapshot()),
          "no Watch event carries the secret in clear (events %s)" % watch_events())

    cfg_set(SetRequest(path="db.host", value=json.dumps("h2")), timeout=RPC_TIMEOUT)
    event = wait_until(lambda: find_event("db.host", lambda v: v == "h2"), 2.0)
    check(event is not None, "Watch('db') received path 'db.host' value \"h2\" (events %s)"
          % watch_events())

    cfg_delete(CfgDeleteRequest(path="db.port"), timeout=RPC_TIMEOUT)
    code, details = get_code("db.port")
    check(code == grpc.StatusCode.NOT_FOUND, "after Delete('db.port'), Get is NOT_FOUND (got %s "
          "%r)" % (code, details))
    event = wait_until(lambda: find_event("db.port", lambda v: v is None), 2.0)
    check(event is not None and event.value.strip() == "null",
          "Watch('db') received path 'db.port' value \"null\" after Delete (events %s)"
          % watch_events())
    cfg_delete(CfgDeleteRequest(path="db"), timeout=RPC_TIMEOUT)
    event = wait_until(lambda: find_event("db", lambda v: v is None), 2.0)
    check(event is not None and event.value.strip() == "null",
          "Watch('db') received path 'db' value \"null\" after Delete('db') (events %s)"
          % watch_events())
    code, details = get_code("db")
    check(code == grpc.StatusCode.NOT_FOUND, "after Delete('db'), Get('db') is NOT_FOUND (got %s "
          "%r)" % (code, details))
    check(get_json("app.name") == "c", "Delete('db') leaves app.name alone")
    code, details = rpc_status(cfg_delete, CfgDeleteRequest(path="no.such.path"),
                               timeout=RPC_TIMEOUT)
    check(code == grpc.StatusCode.OK, "Delete of a missing path is OK (got %s %r)"
          % (code, details))
    time.sleep(0.2)  # let any stray event arrive
    paths = [e.path for e in other_watch.snapshot()]
    check(all(p == "" or p == "cache" or p.startswith("cache.") for p in paths),
          "Watch('cache') got no changes to unrelated paths (got %s)" % paths)

    # --- shutdown with the watches open ----------------------------------------------------
    watches = (("db", db_watch), ("cache", other_watch))
    for name, w in watches:
        check(not w.ended.is_set(), "Config.Watch(%r) still open before SIGTERM (code %s %r)"
              % (name, w.code, w.details))
    sent = time.monotonic()
    daemon.terminate()
    for name, w in watches:
        ended = w.ended.wait(max(0.0, 5.0 - (time.monotonic() - sent)))
        check(ended, "Config.Watch(%r) stream ends within 5 s of SIGTERM" % name)
        info("Config.Watch(%r) ended %.2f s after SIGTERM with %s %r"
             % (name, time.monotonic() - sent, w.code, w.details))
        check(w.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.OK,
                         grpc.StatusCode.CANCELLED),
              "Config.Watch(%r) ends with UNAVAILABLE, OK or CANCELLED (got %s %r)"
              % (name, w.code, w.details))
    exit_code = daemon.stop()
    check(exit_code == 0, "daemon exits 0 after SIGTERM (got %s after %.2f s)"
          % (exit_code, time.monotonic() - sent))
    channel.close()


if __name__ == "__main__":
    sys.exit(main(run_checks))
