#include "services/store/make_store.h"

#include "services/store/memory_store.h"
#include "services/store/rocksdb_store.h"

namespace micro::store {

Result<std::unique_ptr<Store>> MakeStore(const StoreConfig& config, storage::RocksDb& db,
                                         Clock& clock) {
  if (config.backend == "memory") return std::make_unique<MemoryStore>(clock);
  if (config.backend == "rocksdb") {
    auto store = RocksDbStore::Open(db, clock, Limits{},
                                    RocksDbStore::Options{config.snapshot_dir, config.quota_bytes});
    if (!store.ok()) return store.status();
    return std::unique_ptr<Store>(std::move(*store));
  }
  return absl::InvalidArgumentError("store.backend '" + config.backend +
                                    "' is not known; valid backends: rocksdb, memory");
}

}  // namespace micro::store
