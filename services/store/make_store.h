#pragma once

#include <cstdint>
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
  std::string snapshot_dir;  // where Snapshot writes (absolute); the daemon's default is
                             // <data dir>/snapshots
  uint64_t quota_bytes = uint64_t{4} << 30;  // RocksDbStore::Options::quota_bytes; 0: none
};

// Builds the backend named in `config`: "rocksdb" (in `db`, the daemon's RocksDB) or "memory".
// INVALID_ARGUMENT, naming the valid choices, for anything else. `db` and `clock` must outlive
// the result.
[[nodiscard]] Result<std::unique_ptr<Store>> MakeStore(const StoreConfig& config,
                                                       storage::RocksDb& db, Clock& clock);

}  // namespace micro::store
