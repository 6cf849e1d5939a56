#include "services/registry/memory_registry.h"

#include <fmt/format.h>

#include "core/watch_queue.h"
#include "services/registry/validation.h"

namespace micro::registry {

namespace {

size_t MapBytes(const Metadata& m) {
  size_t n = 0;
  for (const auto& [k, v] : m) n += k.size() + v.size() + 64;
  return n;
}

// Roughly the memory a version's description (all but its nodes) and a node hold.
size_t InfoBytes(const Service& s) {
  size_t n = sizeof(Service) + s.name.size() + s.version.size() + MapBytes(s.metadata);
  for (const Endpoint& e : s.endpoints)
    n += sizeof(Endpoint) + e.name.size() + MapBytes(e.metadata);
  return n;
}

size_t NodeBytes(const Node& node) {
  return sizeof(Node) + node.id.size() + node.address.size() + MapBytes(node.metadata);
}

// Roughly the memory an event holds, to bound what a slow watcher can pin.
size_t ApproxBytes(const Service& s) {
  size_t n = sizeof(Event) + InfoBytes(s);
  for (const Node& node : s.nodes) n += NodeBytes(node);
  return n;
}

}  // namespace

MemoryRegistry::MemoryRegistry(Clock& clock, Limits limits)
    : clock_(clock),
      limits_(limits),
      watchers_(WatcherBudget{limits.max_watchers, limits.watcher_queue_events,
                              limits.watcher_queue_bytes, "events", limits.stream_bytes}) {}

MemoryRegistry::~MemoryRegistry() = default;

Status MemoryRegistry::Register(const std::string& ns, const Service& given, int64_t ttl_seconds) {
  if (auto s = CheckRegister(given, ttl_seconds, limits_); !s.ok()) return s;
  const std::string version = given.version.empty() ? kDefaultVersion : given.version;
  const Clock::TimePoint now = clock_.Now();

  std::unique_lock lock(mu_);
  ExpireLocked(now);
  auto ns_it = namespaces_.find(ns);
  if (ns_it == namespaces_.end() && namespaces_.size() >= limits_.max_namespaces) {
    return absl::ResourceExhaustedError(
        fmt::format("{} namespaces hold services, the limit; deregister the services of one first",
                    namespaces_.size()));
  }
  Services no_services;
  const Services& existing_services = ns_it == namespaces_.end() ? no_services : ns_it->second;
  auto service_it = existing_services.find(given.name);
  if (service_it == existing_services.end() &&
      existing_services.size() >= limits_.max_services_per_namespace) {
    return absl::ResourceExhaustedError(fmt::format(
        "namespace '{}' already holds {} services, the limit", ns, existing_services.size()));
  }
  const Versions no_versions;
  const Versions& versions =
      service_it == existing_services.end() ? no_versions : service_it->second;
  auto version_it = versions.find(version);
  const bool created = version_it == versions.end();
  if (created && versions.size() >= limits_.max_versions_per_service) {
    return absl::ResourceExhaustedError(fmt::format(
        "service '{}' already has {} versions, the limit", given.name, versions.size()));
  }
  const VersionEntry* current = created ? nullptr : &version_it->second;
  const size_t charge = StaticCharge(current, given, ttl_seconds);
  const size_t charged = current ? current->static_bytes : 0;
  if (charge > charged && static_bytes_ - charged + charge > limits_.max_static_bytes) {
    return absl::ResourceExhaustedError(fmt::format(
        "registrations without a TTL would hold about {} bytes, over the limit of {} "
        "(max_static_bytes); register with ttl_seconds > 0 or deregister unused services",
        static_bytes_ - charged + charge, limits_.max_static_bytes));
  }
  size_t added = 0;
  for (const Node& node : given.nodes) {
    if (created || version_it->second.nodes.count(node.id) == 0) ++added;
  }
  const size_t existing = created ? 0 : version_it->second.nodes.size();
  if (existing + added > limits_.max_nodes_per_version) {
    return absl::ResourceExhaustedError(
        fmt::format("service '{}' version '{}' would have {} nodes; the limit is {}", given.name,
                    version, existing + added, limits_.max_nodes_per_version));
  }

  VersionEntry& entry = namespaces_[ns][given.name][version];
  Service info{given.name, version, given.metadata, given.endpoints, {}};
  bool changed = created || !(entry.info == info);
  entry.info = std::move(info);
  std::optional<Clock::TimePoint> expires;
  if (ttl_seconds > 0) expires = now + std::chrono::seconds(ttl_seconds);
  for (const Node& node : given.nodes) {
    auto [it, inserted] = entry.nodes.try_emplace(node.id);
    if (!inserted) ForgetExpiry(ns, entry.info, it->second);
    changed = changed || inserted || !(it->second.node == node);
    it->second = NodeEntry{node, expires};
    if (expires) expiry_.emplace(*expires, ns, given.name, version, node.id);
  }
  SetStaticBytes(entry, charge);
  if (changed) Publish(ns, created ? Action::kCreate : Action::kUpdate, Snapshot(entry, now));
  NoteNextDeadline();
  return absl::OkStatus();
}

Status MemoryRegistry::Deregister(const std::string& ns, const Service& given) {
  if (auto s = CheckDeregister(given, limits_); !s.ok()) return s;
  const std::string version = given.version.empty() ? kDefaultVersion : given.version;
  const Clock::TimePoint now = clock_.Now();

  std::unique_lock lock(mu_);
  ExpireLocked(now);
  auto ns_it = namespaces_.find(ns);
  Versions* versions = nullptr;
  if (ns_it != namespaces_.end()) {
    auto it = ns_it->second.find(given.name);
    if (it != ns_it->second.end()) versions = &it->second;
  }
  auto version_it = versions ? versions->find(version) : Versions::iterator();
  if (!versions || version_it == versions->end()) {
    return absl::NotFoundError(fmt::format(
        "service '{}' version '{}' is not registered in namespace '{}'", given.name, version, ns));
  }
  VersionEntry& entry = version_it->second;
  Service removed = entry.info;
  if (given.nodes.empty()) {
    removed = Snapshot(entry, now);
    for (const auto& [id, node] : entry.nodes) ForgetExpiry(ns, entry.info, node);
    entry.nodes.clear();
  } else {
    for (const Node& node : given.nodes) {
      auto it = entry.nodes.find(node.id);
      if (it == entry.nodes.end()) continue;
      ForgetExpiry(ns, entry.info, it->second);
      removed.nodes.push_back(std::move(it->second.node));
      entry.nodes.erase(it);
    }
    if (removed.nodes.empty()) return absl::OkStatus();  // none of them was there
  }
  SetStaticBytes(entry, entry.nodes.empty() ? 0 : StaticCharge(entry));
  if (entry.nodes.empty()) {
    versions->erase(version_it);
    if (versions->empty()) ns_it->second.erase(given.name);
    if (ns_it->second.empty()) namespaces_.erase(ns_it);
  }
  Publish(ns, Action::kDelete, std::move(removed));
  NoteNextDeadline();
  return absl::OkStatus();
}

Result<std::vector<Service>> MemoryRegistry::GetService(const std::string& ns,
                                                        const std::string& name,
                                                        const std::string& version) {
  if (auto s = CheckServiceName(name, limits_); !s.ok()) return s;
  if (!version.empty()) {
    if (auto s = CheckVersion(version, limits_); !s.ok()) return s;
  }
  const Clock::TimePoint now = clock_.Now();
  std::vector<Service> result;
  {
    std::shared_lock lock(mu_);
    auto ns_it = namespaces_.find(ns);
    if (ns_it != namespaces_.end()) {
      auto it = ns_it->second.find(name);
      if (it != ns_it->second.end()) {
        for (const auto& [v, entry] : it->second) {
          if ((version.empty() || v == version) && Visible(entry, now)) {
            result.push_back(Snapshot(entry, now));
          }
        }
      }
    }
  }
  if (result.empty()) {
    if (version.empty()) {
      return absl::NotFoundError(
          fmt::format("service '{}' is not registered in namespace '{}'", name, ns));
    }
    return absl::NotFoundError(fmt::format(
        "service '{}' version '{}' is not registered in namespace '{}'", name, version, ns));
  }
  return result;
}

Result<std::vector<Service>> MemoryRegistry::ListServices(const std::string& ns) {
  const Clock::TimePoint now = clock_.Now();
  std::vector<Service> result;
  std::shared_lock lock(mu_);
  auto ns_it = namespaces_.find(ns);
  if (ns_it == namespaces_.end()) return result;
  for (const auto& [name, versions] : ns_it->second) {
    for (const auto& [version, entry] : versions) {
      if (Visible(entry, now)) result.push_back(Snapshot(entry, now));
    }
  }
  return result;
}

Result<std::unique_ptr<Watcher>> MemoryRegistry::Watch(const std::string& ns,
                                                       const std::string& name,
                                                       std::function<void()> notify) {
  if (!name.empty()) {
    if (auto s = CheckServiceName(name, limits_); !s.ok()) return s;
  }
  return watchers_.Subscribe<Watcher>(WatchFilter{ns, name}, std::move(notify));
}

std::optional<std::chrono::nanoseconds> MemoryRegistry::ExpireNodes() {
  const Clock::TimePoint now = clock_.Now();
  std::unique_lock lock(mu_);
  ExpireLocked(now);
  if (expiry_.empty()) return std::nullopt;
  return std::get<0>(*expiry_.begin()) - now;
}

void MemoryRegistry::CloseWatchers() {
  watchers_.CloseAll(absl::UnavailableError("the server is shutting down"));
}

void MemoryRegistry::ExpireLocked(Clock::TimePoint now) {
  // Group removals per version so a watcher sees one kDelete per version and sweep.
  std::map<std::tuple<std::string, std::string, std::string>, Service> removed;
  while (!expiry_.empty() && std::get<0>(*expiry_.begin()) <= now) {
    auto [deadline, ns, name, version, id] = *expiry_.begin();
    expiry_.erase(expiry_.begin());
    Versions& versions = namespaces_[ns][name];
    VersionEntry& entry = versions[version];
    auto node_it = entry.nodes.find(id);
    Service& gone = removed[{ns, name, version}];
    if (gone.name.empty()) gone = entry.info;
    gone.nodes.push_back(std::move(node_it->second.node));
    entry.nodes.erase(node_it);
    if (entry.nodes.empty()) {
      SetStaticBytes(entry, 0);
      versions.erase(version);
      if (versions.empty()) namespaces_[ns].erase(name);
      if (namespaces_[ns].empty()) namespaces_.erase(ns);
    }
  }
  for (auto& [key, service] : removed) {
    Publish(std::get<0>(key), Action::kDelete, std::move(service));
  }
  NoteNextDeadline();
}

void MemoryRegistry::NoteNextDeadline() {
  next_deadline_ns_.store(
      expiry_.empty() ? kNoDeadline : std::get<0>(*expiry_.begin()).time_since_epoch().count(),
      std::memory_order_release);
}

Freshness MemoryRegistry::CurrentFreshness() const {
  Freshness freshness{revision_.load(std::memory_order_acquire), std::nullopt};
  const int64_t deadline = next_deadline_ns_.load(std::memory_order_acquire);
  if (deadline != kNoDeadline) {
    freshness.valid_until = Clock::TimePoint(Clock::TimePoint::duration(deadline));
  }
  return freshness;
}

Service MemoryRegistry::Snapshot(const VersionEntry& entry, Clock::TimePoint now) const {
  Service service = entry.info;
  service.nodes.reserve(entry.nodes.size());
  for (const auto& [id, node] : entry.nodes) {
    if (!node.expires || *node.expires > now) service.nodes.push_back(node.node);
  }
  return service;
}

bool MemoryRegistry::Visible(const VersionEntry& entry, Clock::TimePoint now) const {
  if (entry.nodes.empty()) return true;  // registered without nodes: stays until deregistered
  for (const auto& [id, node] : entry.nodes) {
    if (!node.expires || *node.expires > now) return true;
  }
  return false;
}

void MemoryRegistry::Publish(const std::string& ns, Action action, Service service) {
  // Every visible change is published, so this is the one place the revision moves.
  revision_.fetch_add(1, std::memory_order_release);
  Event event{action, std::move(service), clock_.UnixMillis()};
  const size_t bytes = ApproxBytes(event.service);
  watchers_.Publish(
      [&](const WatchFilter& f) {
        return f.ns == ns && (f.name.empty() || f.name == event.service.name);
      },
      event, bytes);
}

size_t MemoryRegistry::StaticCharge(const VersionEntry& entry) {
  bool counts = entry.nodes.empty();
  size_t bytes = InfoBytes(entry.info);
  for (const auto& [id, node] : entry.nodes) {
    if (node.expires) continue;
    counts = true;
    bytes += NodeBytes(node.node);
  }
  return counts ? bytes : 0;
}

size_t MemoryRegistry::StaticCharge(const VersionEntry* entry, const Service& given,
                                    int64_t ttl_seconds) {
  // A heartbeat of a version whose nodes all have TTLs: the common case, kept O(given).
  if (ttl_seconds > 0 && !given.nodes.empty() && (entry == nullptr || entry->static_bytes == 0)) {
    return 0;
  }
  bool counts = given.nodes.empty() && (entry == nullptr || entry->nodes.empty());
  size_t bytes = InfoBytes(given);
  std::set<std::string> given_ids;
  for (const Node& node : given.nodes) {
    given_ids.insert(node.id);
    if (ttl_seconds > 0) continue;
    counts = true;
    bytes += NodeBytes(node);
  }
  if (entry != nullptr) {
    for (const auto& [id, node] : entry->nodes) {
      if (node.expires || given_ids.count(id) > 0) continue;
      counts = true;
      bytes += NodeBytes(node.node);
    }
  }
  return counts ? bytes : 0;
}

void MemoryRegistry::SetStaticBytes(VersionEntry& entry, size_t charge) {
  static_bytes_ = static_bytes_ - entry.static_bytes + charge;
  entry.static_bytes = charge;
}

void MemoryRegistry::ForgetExpiry(const std::string& ns, const Service& id, const NodeEntry& node) {
  if (node.expires) expiry_.erase({*node.expires, ns, id.name, id.version, node.node.id});
}

}  // namespace micro::registry
