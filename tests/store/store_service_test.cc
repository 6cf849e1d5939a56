// micro.store.v1.Store and micro.config.v1.Config on the wire: every error code and the
// namespace defaults, through the in-process channel.
#include "services/store/store_service.h"

#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>

#include "core/fake_clock.h"
#include "micro/config/v1/config.grpc.pb.h"
#include "micro/store/v1/store.grpc.pb.h"
#include "services/config/config_service.h"
#include "services/config/documents.h"
#include "services/config/json_config.h"
#include "services/store/memory_store.h"
#include "tests/support/in_process_server.h"

namespace micro {
namespace {

using Code = grpc::StatusCode;

struct Harness {
  FakeClock clock;
  store::MemoryStore store{clock};
  config::JsonConfig settings{std::make_unique<config::MemoryDocuments>(),
                              *config::SecretBox::FromKey(std::string(32, 'k'))};
  CallContexts contexts;
  store::StoreService store_service{store, contexts};
  config::ConfigService config_service{settings, contexts};
  testing::InProcessServer server{contexts, {&store_service, &config_service}};
  std::unique_ptr<store::v1::Store::Stub> kv = store::v1::Store::NewStub(server.channel());
  std::unique_ptr<config::v1::Config::Stub> cfg = config::v1::Config::NewStub(server.channel());
};

std::unique_ptr<grpc::ClientContext> Context(const std::string& ns = "") {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!ns.empty()) context->AddMetadata("micro-namespace", ns);
  return context;
}

grpc::Status Write(Harness& h, const std::string& key, uint64_t if_revision = 0,
                   bool if_absent = false, const std::string& ns = "",
                   store::v1::WriteResponse* out = nullptr) {
  store::v1::WriteRequest request;
  request.mutable_record()->set_key(key);
  request.mutable_record()->set_value("v");
  request.set_if_revision(if_revision);
  request.set_if_absent(if_absent);
  store::v1::WriteResponse response;
  return h.kv->Write(Context(ns).get(), request, out ? out : &response);
}

TEST_CASE("store wire codes and the default database and table", "[store][rpc]") {
  Harness h;
  store::v1::WriteResponse written;
  REQUIRE(Write(h, "k", 0, false, "team-a", &written).ok());
  CHECK(written.revision() > 0);

  store::v1::ReadRequest read;
  read.set_database("team-a");
  read.set_table("default");
  read.set_key("k");
  store::v1::ReadResponse got;
  REQUIRE(h.kv->Read(Context().get(), read, &got).ok());
  CHECK(got.records(0).revision() == written.revision());

  read.set_key("missing");
  CHECK(h.kv->Read(Context().get(), read, &got).error_code() == Code::NOT_FOUND);
  read.set_key("");
  CHECK(h.kv->Read(Context().get(), read, &got).error_code() == Code::INVALID_ARGUMENT);
  read.set_prefix(true);  // an empty prefix scans the table
  got.Clear();
  REQUIRE(h.kv->Read(Context().get(), read, &got).ok());
  CHECK(got.records_size() == 1);

  CHECK(Write(h, "k", 0, true, "team-a").error_code() == Code::FAILED_PRECONDITION);
  CHECK(Write(h, "k", written.revision() + 5, false, "team-a").error_code() ==
        Code::FAILED_PRECONDITION);
  CHECK(Write(h, "").error_code() == Code::INVALID_ARGUMENT);
  CHECK(Write(h, "k", 0, false, "NOT-valid").error_code() == Code::INVALID_ARGUMENT);

  store::v1::DatabasesResponse databases;
  REQUIRE(h.kv->Databases(Context().get(), {}, &databases).ok());
  REQUIRE(databases.databases_size() == 1);
  CHECK(databases.databases(0) == "team-a");
  store::v1::TablesResponse tables;
  REQUIRE(h.kv->Tables(Context("team-a").get(), {}, &tables).ok());
  CHECK(tables.tables(0) == "default");

  store::v1::SnapshotRequest snapshot;
  snapshot.set_dir("/tmp/x");
  store::v1::SnapshotResponse snapped;
  CHECK(h.kv->Snapshot(Context().get(), snapshot, &snapped).error_code() == Code::UNIMPLEMENTED);

  store::v1::DeleteRequest del;
  del.set_database("team-a");
  del.set_key("k");
  store::v1::DeleteResponse deleted;
  REQUIRE(h.kv->Delete(Context().get(), del, &deleted).ok());
  del.set_key("");
  CHECK(h.kv->Delete(Context().get(), del, &deleted).error_code() == Code::INVALID_ARGUMENT);
}

TEST_CASE("store List streams keys in chunks of at most 1000", "[store][rpc]") {
  Harness h;
  for (int i = 0; i < 2500; ++i) REQUIRE(Write(h, "k" + std::to_string(100000 + i)).ok());
  store::v1::ListRequest request;
  auto context = Context();
  auto reader = h.kv->List(context.get(), request);
  store::v1::ListResponse chunk;
  std::vector<int> sizes;
  size_t total = 0;
  while (reader->Read(&chunk)) {
    sizes.push_back(chunk.keys_size());
    total += static_cast<size_t>(chunk.keys_size());
  }
  REQUIRE(reader->Finish().ok());
  CHECK(total == 2500);
  CHECK(sizes == std::vector<int>{1000, 1000, 500});

  request.set_table("bad table");
  auto bad_context = Context();
  auto bad = h.kv->List(bad_context.get(), request);
  CHECK_FALSE(bad->Read(&chunk));
  CHECK(bad->Finish().error_code() == Code::INVALID_ARGUMENT);
}

TEST_CASE("config wire codes, namespaces and watch", "[config][rpc]") {
  Harness h;
  auto watch_context = Context("team-a");
  config::v1::WatchRequest watch;
  watch.set_path("db");
  auto reader = h.cfg->Watch(watch_context.get(), watch);
  reader->WaitForInitialMetadata();

  config::v1::SetRequest set;
  set.set_path("db.password");
  set.set_value(R"("pw")");
  set.set_secret(true);
  config::v1::SetResponse done;
  REQUIRE(h.cfg->Set(Context("team-a").get(), set, &done).ok());
  set.set_value("{bad");
  CHECK(h.cfg->Set(Context("team-a").get(), set, &done).error_code() == Code::INVALID_ARGUMENT);

  config::v1::GetRequest get;
  get.set_path("db.password");
  config::v1::GetResponse value;
  REQUIRE(h.cfg->Get(Context("team-a").get(), get, &value).ok());
  CHECK(value.value() == R"("[secret]")");
  get.set_secret(true);
  REQUIRE(h.cfg->Get(Context("team-a").get(), get, &value).ok());
  CHECK(value.value() == R"("pw")");
  CHECK(h.cfg->Get(Context().get(), get, &value).error_code() == Code::NOT_FOUND);
  get.set_namespace_("team-a");  // the field names the namespace, whoever calls
  REQUIRE(h.cfg->Get(Context().get(), get, &value).ok());
  get.set_namespace_("Bad NS");
  CHECK(h.cfg->Get(Context().get(), get, &value).error_code() == Code::INVALID_ARGUMENT);

  config::v1::WatchResponse change;
  REQUIRE(reader->Read(&change));
  CHECK(change.path() == "db.password");
  CHECK(change.value() == R"("[secret]")");
  h.settings.CloseWatchers();
  CHECK_FALSE(reader->Read(&change));
  CHECK(reader->Finish().error_code() == Code::UNAVAILABLE);
}

}  // namespace
}  // namespace micro
