#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/limits.h"
#include "core/status.h"
#include "core/stream_bytes.h"

namespace micro::registry {

using Metadata = std::map<std::string, std::string>;

struct Node {
  std::string id;
  std::string address;
  Metadata metadata;
};

struct Endpoint {
  std::string name;
  Metadata metadata;
};

// One version of a named service with the nodes that serve it.
struct Service {
  std::string name;
  std::string version;
  Metadata metadata;
  std::vector<Endpoint> endpoints;
  std::vector<Node> nodes;
};

inline bool operator==(const Node& a, const Node& b) {
  return a.id == b.id && a.address == b.address && a.metadata == b.metadata;
}
inline bool operator==(const Endpoint& a, const Endpoint& b) {
  return a.name == b.name && a.metadata == b.metadata;
}
inline bool operator==(const Service& a, const Service& b) {
  return a.name == b.name && a.version == b.version && a.metadata == b.metadata &&
         a.endpoints == b.endpoints && a.nodes == b.nodes;
}

enum class Action { kCreate, kUpdate, kDelete };

struct Event {
  Action action = Action::kCreate;
  // For kCreate and kUpdate, the version as it is after the change. For kDelete, the version
  // with the nodes that were removed (all of them when the whole version went).
  Service service;
  int64_t timestamp_unix_ms = 0;
};

// Explicit limits, documented for users in docs/architecture.md. Sizes, charsets and the counts
// inside one request (metadata entries, endpoints) give INVALID_ARGUMENT; counts of stored
// things (nodes, versions, services, namespaces, watchers) give RESOURCE_EXHAUSTED.
struct Limits {
  size_t max_name_bytes = limits::kServiceNameBytes;       // [A-Za-z0-9._-]; endpoints printable
  size_t max_version_bytes = limits::kVersionBytes;        // [A-Za-z0-9._+-]
  size_t max_node_id_bytes = limits::kNodeIdBytes;         // printable ASCII, no spaces
  size_t max_address_bytes = limits::kAddressBytes;        // printable ASCII, no spaces
  size_t max_metadata_entries = limits::kMetadataEntries;  // per map
  size_t max_metadata_key_bytes = limits::kMetadataKeyBytes;
  size_t max_metadata_value_bytes = limits::kMetadataValueBytes;
  size_t max_endpoints = 256;  // per service version
  size_t max_nodes_per_version = 1024;
  size_t max_versions_per_service = 64;
  size_t max_services_per_namespace = 10000;
  size_t max_namespaces = 1024;  // namespaces holding at least one service
  int64_t max_ttl_seconds = 86400;
  size_t max_watchers = 1024;            // open Watch streams, all namespaces together
  size_t watcher_queue_events = 1024;    // undelivered events before a slow watcher is closed
  size_t watcher_queue_bytes = 8 << 20;  // ... or undelivered bytes (approximate), whichever first
  // The daemon-wide account those bytes also count against (null: none); outlives the registry.
  StreamBytes* stream_bytes = nullptr;
  // Versions and nodes registered without a TTL never expire, so they are what a careless or
  // hostile client could pile up: their approximate bytes, all namespaces together, are capped.
  // A version counts while it has a node without a TTL, or no nodes at all.
  size_t max_static_bytes = 64 << 20;
};

// Whether an answer read earlier is still current: it is while `revision` is unchanged and
// `valid_until` (the next TTL deadline of any node, if one has a TTL) has not passed.
struct Freshness {
  uint64_t revision = 0;
  std::optional<Clock::TimePoint> valid_until;
};

inline bool operator==(const Freshness& a, const Freshness& b) {
  return a.revision == b.revision && a.valid_until == b.valid_until;
}

// A live subscription to registry changes, returned by Registry::Watch. Destroying it
// unsubscribes; after the destructor returns the notify callback is never called again.
class Watcher {
 public:
  virtual ~Watcher() = default;

  // Takes the next undelivered event, or nullopt when none is waiting. Thread-safe.
  virtual std::optional<Event> Next() = 0;

  // OK while the subscription is live. RESOURCE_EXHAUSTED once the watcher fell more than
  // Limits::watcher_queue_events behind (it gets no further events), UNAVAILABLE once the
  // registry closed it for shutdown. Check it when Next() returns nullopt. Thread-safe.
  virtual Status status() const = 0;
};

// Where services announce their nodes and find each other, isolated by namespace.
// Every method is thread-safe. Names and limits are checked before anything changes: a call
// that fails changes nothing.
class Registry {
 public:
  virtual ~Registry() = default;

  // Adds or refreshes the nodes of `service` (name, version) and replaces the version's
  // metadata and endpoints. Nodes expire `ttl_seconds` after this call unless registered again;
  // 0 means never. An empty version is stored as "latest". Watchers get kCreate for a new
  // version and kUpdate when something else changed; a heartbeat that only refreshes the TTL
  // of unchanged nodes tells watchers nothing.
  // Errors: INVALID_ARGUMENT (names, sizes, ttl), RESOURCE_EXHAUSTED (counts, and the bytes of
  // registrations without a TTL: Limits::max_static_bytes).
  [[nodiscard]] virtual Status Register(const std::string& ns, const Service& service,
                                        int64_t ttl_seconds) = 0;

  // Removes the listed nodes of the version, or the whole version if none are listed. Removing
  // the last node removes the version. Watchers get kDelete with what was removed.
  // Errors: INVALID_ARGUMENT, NOT_FOUND (no such version), RESOURCE_EXHAUSTED (too many nodes
  // listed in one call).
  [[nodiscard]] virtual Status Deregister(const std::string& ns, const Service& service) = 0;

  // Every version of `name` (version empty) or that one version, nodes past their TTL excluded.
  // Errors: INVALID_ARGUMENT, NOT_FOUND (no such service or version).
  [[nodiscard]] virtual Result<std::vector<Service>> GetService(const std::string& ns,
                                                                const std::string& name,
                                                                const std::string& version) = 0;

  // Every version of every service in the namespace, ordered by name then version.
  [[nodiscard]] virtual Result<std::vector<Service>> ListServices(const std::string& ns) = 0;

  // Subscribes to changes of `name` (empty: every service) in the namespace. `notify` is called,
  // possibly on any thread and while registry locks are held, whenever Next() may have something
  // new or status() changed; it must be quick and must not call back into the registry.
  // Errors: INVALID_ARGUMENT, RESOURCE_EXHAUSTED (Limits::max_watchers open).
  [[nodiscard]] virtual Result<std::unique_ptr<Watcher>> Watch(const std::string& ns,
                                                               const std::string& name,
                                                               std::function<void()> notify) = 0;

  // Removes nodes whose TTL has passed and tells watchers. Returns how long until the next
  // node expires (nullopt if none will), so a caller can sleep that long.
  virtual std::optional<std::chrono::nanoseconds> ExpireNodes() = 0;

  // The registry's current revision and next TTL deadline, so callers can keep answers (such as
  // serialized responses) for as long as they stay true. Read it before the read it guards.
  // Lock-free.
  virtual Freshness CurrentFreshness() const = 0;

  // Closes every watcher with UNAVAILABLE (used at shutdown). Later Watch calls fail UNAVAILABLE.
  virtual void CloseWatchers() = 0;
};

}  // namespace micro::registry
