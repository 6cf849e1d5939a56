#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace micro::config {

// One mutex per namespace, made on first use and dropped once no caller holds or waits for it,
// so writes of one namespace are ordered while other namespaces go on. Thread-safe.
class NamespaceLocks {
  struct Entry;

 public:
  // Holds one namespace's mutex until destroyed.
  class Guard {
   public:
    Guard(NamespaceLocks& owner, const std::string& ns) : owner_(owner), ns_(ns) {
      entry_ = owner_.Enter(ns_);
      entry_->mu.lock();
    }
    ~Guard() {
      entry_->mu.unlock();
      owner_.Leave(ns_);
    }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;

   private:
    NamespaceLocks& owner_;
    const std::string ns_;
    Entry* entry_;
  };

  // Waits for and takes `ns`'s mutex.
  [[nodiscard]] Guard Lock(const std::string& ns) { return Guard(*this, ns); }

 private:
  struct Entry {
    std::mutex mu;
    size_t users = 0;  // holders and waiters, under NamespaceLocks::mu_
  };

  Entry* Enter(const std::string& ns) {
    std::lock_guard lock(mu_);
    auto& entry = entries_[ns];
    if (!entry) entry = std::make_unique<Entry>();
    ++entry->users;
    return entry.get();
  }

  void Leave(const std::string& ns) {
    std::lock_guard lock(mu_);
    auto it = entries_.find(ns);
    if (--it->second->users == 0) entries_.erase(it);
  }

  std::mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<Entry>> entries_;
};

}  // namespace micro::config
