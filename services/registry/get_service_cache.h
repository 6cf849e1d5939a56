#pragma once

#include <grpcpp/support/slice.h>

#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>

#include "core/clock.h"
#include "services/registry/registry.h"

namespace micro::registry {

// Serialized GetService answers, kept while the registry says they are current (same revision,
// no TTL deadline passed), so a hot lookup costs a hash probe and a slice reference instead of
// copying, building and serializing the service. Thread-safe; bounded in entries.
class GetServiceCache {
 public:
  explicit GetServiceCache(size_t max_entries = 4096) : max_entries_(max_entries) {}

  // The answer kept for `key` if it is still current at `now` under `current`.
  std::optional<grpc::Slice> Find(const std::string& key, const Freshness& current,
                                  Clock::TimePoint now) const {
    std::shared_lock lock(mu_);
    auto it = entries_.find(key);
    if (it == entries_.end()) return std::nullopt;
    const Entry& entry = it->second;
    if (entry.freshness.revision != current.revision) return std::nullopt;
    if (entry.freshness.valid_until && now >= *entry.freshness.valid_until) return std::nullopt;
    // A heartbeat with a shorter TTL moves a deadline earlier without a new revision.
    if (current.valid_until && now >= *current.valid_until) return std::nullopt;
    return entry.bytes;
  }

  // Keeps `bytes`, read under `freshness` (taken before the read), for `key`.
  void Store(const std::string& key, const Freshness& freshness, const grpc::Slice& bytes) {
    std::unique_lock lock(mu_);
    if (entries_.size() >= max_entries_ && entries_.count(key) == 0) entries_.clear();
    entries_.insert_or_assign(key, Entry{freshness, bytes});
  }

 private:
  struct Entry {
    Freshness freshness;
    grpc::Slice bytes;
  };

  const size_t max_entries_;
  mutable std::shared_mutex mu_;
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace micro::registry
