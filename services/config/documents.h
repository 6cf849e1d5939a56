#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "core/status.h"
#include "storage/rocks_db.h"

namespace micro::config {

// Where the per-namespace documents are kept: the only part that differs between backends.
class Documents {
 public:
  virtual ~Documents() = default;
  // The stored text of a namespace's document, or nullopt if it has none.
  [[nodiscard]] virtual Result<std::optional<std::string>> Load(const std::string& ns) = 0;
  // Replaces it durably; an empty text removes it.
  [[nodiscard]] virtual Status Save(const std::string& ns, const std::string& text) = 0;
};

// In this process's memory; nothing survives a restart.
class MemoryDocuments final : public Documents {
 public:
  Result<std::optional<std::string>> Load(const std::string& ns) override;
  Status Save(const std::string& ns, const std::string& text) override;

 private:
  std::mutex mu_;
  std::map<std::string, std::string> documents_;
};

// In the daemon's RocksDB, family "config", one key per namespace, written with a synced WAL.
class RocksDbDocuments final : public Documents {
 public:
  static constexpr const char* kFamily = "config";
  explicit RocksDbDocuments(storage::RocksDb& db) : db_(db) {}  // `db` must outlive this

  Result<std::optional<std::string>> Load(const std::string& ns) override;
  Status Save(const std::string& ns, const std::string& text) override;

 private:
  storage::RocksDb& db_;
};

}  // namespace micro::config
