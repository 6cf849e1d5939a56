#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/watcher_set.h"
#include "services/config/config.h"
#include "services/config/documents.h"
#include "services/config/namespace_locks.h"
#include "services/config/secret_box.h"

namespace micro::config {

// Config over nlohmann::json documents kept in `Documents`. A secret leaf is stored as
// {"$secret": "<sealed>"}, sealed for its namespace and path; reads mask or open it. Writes of
// one namespace are serialized by that namespace's mutex (read, change, durable save, then
// publish), so watchers see its changes in the order they were saved; writes and reads of other
// namespaces never wait for them. Reads take no lock: a save is atomic.
class JsonConfig final : public Config {
 public:
  JsonConfig(std::unique_ptr<Documents> documents, SecretBox secrets, Limits limits = {});
  ~JsonConfig() override;

  Result<std::string> Get(const std::string& ns, const std::string& path,
                          bool reveal_secrets) override;
  Status Set(const std::string& ns, const std::string& path, const std::string& value,
             bool secret) override;
  Status Delete(const std::string& ns, const std::string& path) override;
  Result<std::unique_ptr<ConfigWatcher>> Watch(const std::string& ns, const std::string& path,
                                               std::function<void()> notify) override;
  void CloseWatchers() override;

 private:
  // What one watcher watches.
  struct WatchFilter {
    std::string ns;
    std::string path;
  };

  void Publish(const std::string& ns, const std::string& path, const std::string& value);

  std::unique_ptr<Documents> documents_;
  const SecretBox secrets_;
  const Limits limits_;

  NamespaceLocks namespace_locks_;  // held across a namespace's read-change-save-publish
  WatcherSet<WatchFilter, Change> watchers_;
};

}  // namespace micro::config
