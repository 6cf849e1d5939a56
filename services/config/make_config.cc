#include "services/config/make_config.h"

#include "services/config/documents.h"
#include "services/config/json_config.h"
#include "services/config/secret_box.h"

namespace micro::config {

Result<std::unique_ptr<Config>> MakeConfig(const ConfigConfig& config, storage::RocksDb& db,
                                           const std::string& data_dir, StreamBytes* stream_bytes) {
  std::unique_ptr<Documents> documents;
  if (config.backend == "rocksdb") {
    documents = std::make_unique<RocksDbDocuments>(db);
  } else if (config.backend == "memory") {
    documents = std::make_unique<MemoryDocuments>();
  } else {
    return absl::InvalidArgumentError("config.backend '" + config.backend +
                                      "' is not known; valid backends: rocksdb, memory");
  }
  auto box = config.secret_key.empty() ? SecretBox::FromKeyFile(data_dir + "/config.key")
                                       : SecretBox::FromKeyText(config.secret_key);
  if (!box.ok()) return box.status();
  Limits limits;
  limits.stream_bytes = stream_bytes;
  return std::unique_ptr<Config>(std::make_unique<JsonConfig>(std::move(documents), *box, limits));
}

}  // namespace micro::config
