#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "services/config/config.h"
#include "storage/rocks_db.h"

namespace micro::config {

// The `config:` section of micro.yaml.
struct ConfigConfig {
  std::string backend = "rocksdb";  // or "memory"
  std::string secret_key;           // base64 of 32 bytes; empty: <data dir>/config.key
};

// Builds the config service backend and its secret key: `secret_key` if set, else the key file
// in `data_dir` (created with mode 0600 on first start). Its watchers' queued bytes count
// against `stream_bytes` (may be null). `db` and `stream_bytes` must outlive the result.
[[nodiscard]] Result<std::unique_ptr<Config>> MakeConfig(const ConfigConfig& config,
                                                         storage::RocksDb& db,
                                                         const std::string& data_dir,
                                                         StreamBytes* stream_bytes = nullptr);

}  // namespace micro::config
