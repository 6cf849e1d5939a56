#include "services/store/store_service.h"

#include "rpc/grpc_status.h"
#include "rpc/handler_guard.h"

namespace micro::store {
namespace {

constexpr const char* kDefaultTable = "default";

// The database of a deployed service's account ("svc.<name>"): "<namespace>.<name>".
std::string ServiceDatabase(const CallContext& call) {
  const std::string& id = call.identity.id;
  return call.ns + "." + (id.rfind("svc.", 0) == 0 ? id.substr(4) : id);
}

// The database a request addresses: its own field, else the caller's namespace (for a deployed
// service's account, the service's own database).
std::string Database(const std::string& given, const CallContext& call) {
  if (!given.empty()) return given;
  return call.identity.type == "service" ? ServiceDatabase(call) : call.ns;
}

// An account reaches the databases of its namespace: the one named after it and those named
// "<namespace>.<anything>"; the daemon's admins reach every database.
Status CheckDatabase(const std::string& db, const CallContext& call) {
  const CallIdentity& who = call.identity;
  if (who.id.empty() || who.admin) return absl::OkStatus();
  if (who.type == "service") {  // least privilege: a deployed service has its own database
    if (db == ServiceDatabase(call)) return absl::OkStatus();
    return absl::PermissionDeniedError(
        "the account of a deployed service may use its own "
        "database '" +
        ServiceDatabase(call) + "', not '" + db + "'");
  }
  if (db == who.ns || db.rfind(who.ns + ".", 0) == 0) return absl::OkStatus();
  return absl::PermissionDeniedError("account '" + who.id + "' of namespace '" + who.ns +
                                     "' may use the databases '" + who.ns + "' and '" + who.ns +
                                     ".*', not '" + db + "'");
}
std::string Table(const std::string& given) { return given.empty() ? kDefaultTable : given; }

Order FromProto(v1::Order order) { return order == v1::ORDER_DESC ? Order::kDesc : Order::kAsc; }

void ToProto(const Record& in, v1::Record* out) {
  out->set_key(in.key);
  out->set_value(in.value);
  out->set_ttl_seconds(in.ttl_seconds);
  for (const auto& [k, v] : in.metadata) (*out->mutable_metadata())[k] = v;
  out->set_revision(in.revision);
}

// Streams a table's keys, one bounded chunk per message, reading the next chunk only once the
// previous one is written, so a slow client holds one chunk of memory at most.
class ListReactor final : public grpc::ServerWriteReactor<v1::ListResponse> {
 public:
  ListReactor(Result<std::unique_ptr<KeyCursor>> cursor, size_t chunk) : chunk_(chunk) {
    if (!cursor.ok()) {
      Finish(ToGrpc(cursor.status()));
      return;
    }
    cursor_ = std::move(*cursor);
    WriteNext();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::CANCELLED);
      return;
    }
    WriteNext();
  }

  void OnDone() override { delete this; }

 private:
  // A chunk steps over a bounded number of keys: a sparse scan sends an empty message rather
  // than hold this callback thread until it finds a match.
  void WriteNext() {
    Result<std::vector<std::string>> keys = std::vector<std::string>();
    try {  // a reactor callback: nothing may escape it
      keys = cursor_->Next(chunk_);
    } catch (...) {
      keys = StatusOfCurrentException();
    }
    if (!keys.ok()) {
      Finish(ToGrpc(keys.status()));
      return;
    }
    if (keys->empty() && cursor_->AtEnd()) {
      Finish(grpc::Status::OK);
      return;
    }
    message_.Clear();
    for (auto& key : *keys) message_.add_keys(std::move(key));
    StartWrite(&message_);
  }

  const size_t chunk_;
  std::unique_ptr<KeyCursor> cursor_;
  v1::ListResponse message_;
};

}  // namespace

grpc::ServerUnaryReactor* StoreService::Read(grpc::CallbackServerContext* context,
                                             const v1::ReadRequest* request,
                                             v1::ReadResponse* response) try {
  CallContext call = contexts_.Get(context);
  if (!call.error.ok()) return FinishUnary(context, call.error);
  const std::string db = Database(request->database(), call);
  if (Status s = CheckDatabase(db, call); !s.ok()) return FinishUnary(context, s);
  const std::string table = Table(request->table());
  if (!request->prefix() && !request->suffix()) {
    auto record = store_.Get(db, table, request->key());
    if (!record.ok()) return FinishUnary(context, record.status());
    ToProto(*record, response->add_records());
    return FinishUnary(context, absl::OkStatus());
  }
  Scan scan;
  if (request->prefix()) scan.prefix = request->key();
  if (request->suffix()) scan.suffix = request->key();
  scan.limit = request->limit();
  scan.offset = request->offset();
  scan.order = FromProto(request->order());
  auto page = store_.Read(db, table, scan);
  if (!page.ok()) return FinishUnary(context, page.status());
  for (const Record& r : page->records) ToProto(r, response->add_records());
  if (page->more) {
    response->set_more(true);
    response->set_next_offset(scan.offset + static_cast<uint32_t>(page->records.size()));
  }
  return FinishUnary(context, absl::OkStatus());
} catch (...) {
  return FailedUnary();
}

grpc::ServerUnaryReactor* StoreService::Write(grpc::CallbackServerContext* context,
                                              const v1::WriteRequest* request,
                                              v1::WriteResponse* response) try {
  CallContext call = contexts_.Get(context);
  if (!call.error.ok()) return FinishUnary(context, call.error);
  const v1::Record& in = request->record();
  Record record{in.key(), in.value(), in.ttl_seconds(),
                Metadata(in.metadata().begin(), in.metadata().end()), 0};
  if (Status s = CheckDatabase(Database(request->database(), call), call); !s.ok()) {
    return FinishUnary(context, s);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  store_.Write(Database(request->database(), call), Table(request->table()), std::move(record),
               Condition{request->if_revision(), request->if_absent()},
               [reactor, response](Result<uint64_t> revision) {
                 if (revision.ok()) response->set_revision(*revision);
                 reactor->Finish(ToGrpc(revision.status()));
               });
  return reactor;
} catch (...) {
  return FailedUnary();
}

grpc::ServerUnaryReactor* StoreService::Delete(grpc::CallbackServerContext* context,
                                               const v1::DeleteRequest* request,
                                               v1::DeleteResponse*) try {
  CallContext call = contexts_.Get(context);
  if (!call.error.ok()) return FinishUnary(context, call.error);
  if (Status s = CheckDatabase(Database(request->database(), call), call); !s.ok()) {
    return FinishUnary(context, s);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  store_.Delete(Database(request->database(), call), Table(request->table()), request->key(),
                [reactor](Status status) { reactor->Finish(ToGrpc(status)); });
  return reactor;
} catch (...) {
  return FailedUnary();
}

grpc::ServerWriteReactor<v1::ListResponse>* StoreService::List(grpc::CallbackServerContext* context,
                                                               const v1::ListRequest* request) try {
  CallContext call = contexts_.Get(context);
  const size_t chunk = Limits().list_chunk_keys;
  if (!call.error.ok()) return new ListReactor(call.error, chunk);
  if (Status s = CheckDatabase(Database(request->database(), call), call); !s.ok()) {
    return new ListReactor(s, chunk);
  }
  Scan scan{request->prefix(), request->suffix(), request->limit(), request->offset(),
            FromProto(request->order())};
  return new ListReactor(
      store_.List(Database(request->database(), call), Table(request->table()), scan), chunk);
} catch (...) {
  return new ListReactor(StatusOfCurrentException(), Limits().list_chunk_keys);
}

grpc::ServerUnaryReactor* StoreService::Databases(grpc::CallbackServerContext* context,
                                                  const v1::DatabasesRequest*,
                                                  v1::DatabasesResponse* response) try {
  CallContext call = contexts_.Get(context);
  if (!call.error.ok()) return FinishUnary(context, call.error);
  auto databases = store_.Databases();
  if (!databases.ok()) return FinishUnary(context, databases.status());
  for (auto& db : *databases) {
    if (CheckDatabase(db, call).ok()) response->add_databases(std::move(db));  // its own only
  }
  return FinishUnary(context, absl::OkStatus());
} catch (...) {
  return FailedUnary();
}

grpc::ServerUnaryReactor* StoreService::Tables(grpc::CallbackServerContext* context,
                                               const v1::TablesRequest* request,
                                               v1::TablesResponse* response) try {
  CallContext call = contexts_.Get(context);
  if (!call.error.ok()) return FinishUnary(context, call.error);
  if (Status s = CheckDatabase(Database(request->database(), call), call); !s.ok()) {
    return FinishUnary(context, s);
  }
  auto tables = store_.Tables(Database(request->database(), call));
  if (!tables.ok()) return FinishUnary(context, tables.status());
  for (auto& t : *tables) response->add_tables(std::move(t));
  return FinishUnary(context, absl::OkStatus());
} catch (...) {
  return FailedUnary();
}

grpc::ServerUnaryReactor* StoreService::Snapshot(grpc::CallbackServerContext* context,
                                                 const v1::SnapshotRequest* request,
                                                 v1::SnapshotResponse* response) try {
  CallContext call = contexts_.Get(context);
  if (!call.error.ok()) return FinishUnary(context, call.error);
  if (!call.identity.id.empty() && !call.identity.admin) {
    return FinishUnary(
        context, absl::PermissionDeniedError("a snapshot holds every namespace's records: only the "
                                             "daemon's admins may take one"));
  }
  // A checkpoint flushes the memtables and syncs files: seconds on a slow disk, so it runs on
  // the service's own thread, never on a callback thread, and snapshots run one at a time.
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  snapshots_.Submit([this, reactor, dir = request->dir(), response] {
    Status status = Guarded([&]() -> Status {
      auto snapshot = store_.Snapshot(dir);
      if (!snapshot.ok()) return snapshot.status();
      response->set_dir(snapshot->dir);
      response->set_revision(snapshot->revision);
      return absl::OkStatus();
    });
    reactor->Finish(ToGrpc(status));
  });
  return reactor;
} catch (...) {
  return FailedUnary();
}

}  // namespace micro::store
