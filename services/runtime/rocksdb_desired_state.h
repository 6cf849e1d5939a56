#pragma once

#include <string>
#include <vector>

#include "runtime/desired_state.h"
#include "storage/rocks_db.h"

namespace micro::runtime {

// Deployed services in the daemon's RocksDB, family "runtime", key NAMESPACE/NAME/VERSION, value
// a micro.runtime.v1.CreateRequest; every write synced before it is acknowledged.
class RocksDbDesiredState final : public DesiredState {
 public:
  static constexpr const char* kFamily = "runtime";
  explicit RocksDbDesiredState(storage::RocksDb& db) : db_(db) {}  // `db` must outlive this

  Status Save(const DeployedService& service) override;
  Status Remove(const std::string& ns, const std::string& name,
                const std::string& version) override;
  Result<std::vector<DeployedService>> LoadAll() override;

 private:
  storage::RocksDb& db_;
};

}  // namespace micro::runtime
