#pragma once

#include <memory>
#include <string>

#include "core/clock.h"
#include "core/status.h"
#include "services/store/store.h"
#include "storage/rocks_db.h"

namespace micro::store {

// The `store:` section of micro.yaml.
struct StoreConfig {
  std::string backend = "rocksdb";
};

// Builds the backend named in `config`: "rocksdb" (in `db`, the daemon's RocksDB) or "memory".
// INVALID_ARGUMENT, naming the valid choices, for anything else. `db` and `clock` must outlive
// the result.
[[nodiscard]] Result<std::unique_ptr<Store>> MakeStore(const StoreConfig& config,
                                                       storage::RocksDb& db, Clock& clock);

}  // namespace micro::store
