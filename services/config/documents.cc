#include "services/config/documents.h"

namespace micro::config {

Result<std::optional<std::string>> MemoryDocuments::Load(const std::string& ns) {
  std::lock_guard lock(mu_);
  auto it = documents_.find(ns);
  if (it == documents_.end()) return std::optional<std::string>();
  return std::optional<std::string>(it->second);
}

Status MemoryDocuments::Save(const std::string& ns, const std::string& text) {
  std::lock_guard lock(mu_);
  if (text.empty()) {
    documents_.erase(ns);
  } else {
    documents_[ns] = text;
  }
  return absl::OkStatus();
}

Result<std::optional<std::string>> RocksDbDocuments::Load(const std::string& ns) {
  std::string text;
  rocksdb::Status s = db_.db().Get(rocksdb::ReadOptions(), db_.family(kFamily), ns, &text);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return storage::FromRocks(s, "cannot read config of namespace " + ns);
  return std::optional<std::string>(std::move(text));
}

Status RocksDbDocuments::Save(const std::string& ns, const std::string& text) {
  rocksdb::WriteOptions options;
  options.sync = true;  // acknowledged means on disk
  rocksdb::Status s = text.empty() ? db_.db().Delete(options, db_.family(kFamily), ns)
                                   : db_.db().Put(options, db_.family(kFamily), ns, text);
  return storage::FromRocks(s, "cannot write config of namespace " + ns);
}

}  // namespace micro::config
