#include "services/runtime/rocksdb_desired_state.h"

#include <spdlog/spdlog.h>

#include "micro/runtime/v1/runtime.pb.h"
#include "services/runtime/runtime_proto.h"

namespace micro::runtime {
namespace {

std::string KeyOf(const std::string& ns, const std::string& name, const std::string& version) {
  return ns + "/" + name + "/" + version;
}

}  // namespace

Status RocksDbDesiredState::Save(const DeployedService& service) {
  v1::CreateRequest request;
  SpecToProto(service.spec, request.mutable_service(), request.mutable_options());
  DeployedToProto(service, request.mutable_service());
  rocksdb::WriteOptions options;
  options.sync = true;  // acknowledged means on disk
  const std::string key = KeyOf(service.spec.ns, service.spec.name, service.spec.version);
  return storage::FromRocks(
      db_.db().Put(options, db_.family(kFamily), key, request.SerializeAsString()),
      "cannot save the desired state of " + key);
}

Status RocksDbDesiredState::Remove(const std::string& ns, const std::string& name,
                                   const std::string& version) {
  rocksdb::WriteOptions options;
  options.sync = true;
  const std::string key = KeyOf(ns, name, version);
  return storage::FromRocks(db_.db().Delete(options, db_.family(kFamily), key),
                            "cannot remove the desired state of " + key);
}

Result<std::vector<DeployedService>> RocksDbDesiredState::LoadAll() {
  std::vector<DeployedService> out;
  std::unique_ptr<rocksdb::Iterator> it(
      db_.db().NewIterator(rocksdb::ReadOptions(), db_.family(kFamily)));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const std::string key = it->key().ToString();
    v1::CreateRequest request;
    if (!request.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      spdlog::error("runtime: the desired state of {} is unreadable; it is skipped", key);
      continue;
    }
    auto spec = SpecFromProto(request.service(), request.options());
    if (!spec.ok()) {
      spdlog::error("runtime: the desired state of {} is invalid ({}); it is skipped", key,
                    std::string(spec.status().message()));
      continue;
    }
    spec->ns = key.substr(0, key.find('/'));
    DeployedService deployed;
    if (Status s = DeployedFromProto(request.service(), &deployed); !s.ok()) {
      // The current options hold; only the way back is lost.
      spdlog::error(
          "runtime: the previous options of {} are invalid ({}); a rollback is not "
          "possible",
          key, std::string(s.message()));
    }
    if (deployed.previous) deployed.previous->ns = spec->ns;
    deployed.spec = std::move(*spec);
    out.push_back(std::move(deployed));
  }
  if (Status s = storage::FromRocks(it->status(), "cannot read the desired state"); !s.ok()) {
    return s;
  }
  return out;
}

}  // namespace micro::runtime
