#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "services/config/config.h"
#include "services/config/documents.h"
#include "services/config/secret_box.h"

namespace micro::config {

// Config over nlohmann::json documents kept in `Documents`. A secret leaf is stored as
// {"$secret": "<sealed>"}; reads mask or open it. Writes of all namespaces are serialized by
// one mutex: settings change rarely, and order then equals the order watchers see.
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
  struct Subscription;

  void Publish(const std::string& ns, const std::string& path, const std::string& value);
  void Unsubscribe(const Subscription* subscription);

  std::unique_ptr<Documents> documents_;
  const SecretBox secrets_;
  const Limits limits_;

  std::mutex mu_;  // document read-modify-write, then watcher fan-out; order: mu_, watch_mu_
  std::mutex watch_mu_;
  std::vector<std::shared_ptr<Subscription>> subscriptions_;
  bool closed_ = false;
};

}  // namespace micro::config
