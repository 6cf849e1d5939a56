#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/watcher_set.h"
#include "services/registry/registry.h"

namespace micro::registry {

// The registry kept in this process's memory: the default backend. Nothing survives a restart,
// which suits a registry: services re-register on their heartbeat.
class MemoryRegistry final : public Registry {
 public:
  // `clock` must outlive the registry.
  explicit MemoryRegistry(Clock& clock, Limits limits = {});
  ~MemoryRegistry() override;

  Status Register(const std::string& ns, const Service& service, int64_t ttl_seconds) override;
  Status Deregister(const std::string& ns, const Service& service) override;
  Result<std::vector<Service>> GetService(const std::string& ns, const std::string& name,
                                          const std::string& version) override;
  Result<std::vector<Service>> ListServices(const std::string& ns) override;
  Result<std::unique_ptr<Watcher>> Watch(const std::string& ns, const std::string& name,
                                         std::function<void()> notify) override;
  std::optional<std::chrono::nanoseconds> ExpireNodes() override;
  Freshness CurrentFreshness() const override;
  void CloseWatchers() override;

 private:
  // What one watcher watches: a namespace, and a service name (empty: every service).
  struct WatchFilter {
    std::string ns;
    std::string name;
  };

  struct NodeEntry {
    Node node;
    std::optional<Clock::TimePoint> expires;
  };
  struct VersionEntry {
    Service info;  // name, version, metadata, endpoints; nodes kept apart
    std::map<std::string, NodeEntry> nodes;
    size_t static_bytes = 0;  // what this version counts against Limits::max_static_bytes
  };
  using Versions = std::map<std::string, VersionEntry>;
  using Services = std::map<std::string, Versions>;
  // (deadline, namespace, service, version, node id) of every node with a TTL.
  using ExpiryKey =
      std::tuple<Clock::TimePoint, std::string, std::string, std::string, std::string>;

  Service Snapshot(const VersionEntry& entry, Clock::TimePoint now) const;
  bool Visible(const VersionEntry& entry, Clock::TimePoint now) const;
  void ExpireLocked(Clock::TimePoint now);
  void Publish(const std::string& ns, Action action, Service service);
  // What a version counts against Limits::max_static_bytes as it is, or (`entry` null for a new
  // version) as it will be once `given` is registered with `ttl_seconds`.
  static size_t StaticCharge(const VersionEntry& entry);
  static size_t StaticCharge(const VersionEntry* entry, const Service& given, int64_t ttl_seconds);
  void SetStaticBytes(VersionEntry& entry, size_t charge);
  void NoteNextDeadline();
  void ForgetExpiry(const std::string& ns, const Service& id, const NodeEntry& node);

  Clock& clock_;
  const Limits limits_;

  // Lock order: mu_, then watchers_, then a watch queue's own mutex. Events are published while
  // mu_ is held exclusively, so every watcher sees changes in the order they happened.
  std::shared_mutex mu_;
  std::unordered_map<std::string, Services> namespaces_;
  std::set<ExpiryKey> expiry_;
  // Mirrors of what CurrentFreshness reports, written under mu_ and read without it.
  std::atomic<uint64_t> revision_{1};
  std::atomic<int64_t> next_deadline_ns_{kNoDeadline};
  static constexpr int64_t kNoDeadline = INT64_MAX;
  size_t static_bytes_ = 0;  // the sum of every VersionEntry::static_bytes, under mu_

  WatcherSet<WatchFilter, Event> watchers_;
};

}  // namespace micro::registry
