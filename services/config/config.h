#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/status.h"
#include "core/stream_bytes.h"

namespace micro::config {

// One change, as watchers see it.
struct Change {
  std::string path;   // the path that was set or deleted
  std::string value;  // JSON text now at `path` ("null" after a delete); secrets masked
};

// Explicit limits; beyond them INVALID_ARGUMENT and nothing changes. docs/config.md lists them.
struct Limits {
  size_t max_path_bytes = 1024;
  size_t max_segment_bytes = 128;
  size_t max_value_bytes = 64 << 10;    // one Set
  size_t max_document_bytes = 1 << 20;  // one namespace, as stored
  size_t max_depth = 32;    // path segments plus the object levels of the value set there
  size_t max_nesting = 64;  // arrays and objects inside one value, whatever the path
  size_t max_watchers = 1024;
  size_t watcher_queue_changes = 1024;   // undelivered changes before a watcher is closed
  size_t watcher_queue_bytes = 4 << 20;  // ... or undelivered bytes, whichever comes first
  // The daemon-wide account those bytes also count against (null: none); outlives the config.
  StreamBytes* stream_bytes = nullptr;
};

// A live subscription, returned by Config::Watch; destroying it unsubscribes (after the
// destructor returns the notify callback is never called again).
class ConfigWatcher {
 public:
  virtual ~ConfigWatcher() = default;
  virtual std::optional<Change> Next() = 0;
  // OK while live; RESOURCE_EXHAUSTED if it fell behind, UNAVAILABLE once closed for shutdown.
  virtual Status status() const = 0;
};

// Settings: one JSON document per namespace, addressed by dot-separated paths ("db.host"; empty:
// the whole document). Thread-safe. A call that fails changes nothing.
class Config {
 public:
  virtual ~Config() = default;

  // The JSON text at `path`. Secret leaves read "[secret]" unless `reveal_secrets`.
  // Errors: INVALID_ARGUMENT (path), NOT_FOUND (nothing there).
  [[nodiscard]] virtual Result<std::string> Get(const std::string& ns, const std::string& path,
                                                bool reveal_secrets) = 0;

  // Sets `value` (JSON text) at `path`, durably. An object merges into an object already there,
  // leaf by leaf; anything else replaces what is there. With `secret`, every leaf of the value
  // is encrypted at rest. Errors: INVALID_ARGUMENT (bad JSON, path or sizes).
  [[nodiscard]] virtual Status Set(const std::string& ns, const std::string& path,
                                   const std::string& value, bool secret) = 0;

  // Removes what is at `path` (empty: the whole document), durably. A missing path is fine.
  [[nodiscard]] virtual Status Delete(const std::string& ns, const std::string& path) = 0;

  // Subscribes to changes at, under or above `path` in the namespace. `notify` runs, possibly
  // under internal locks, whenever Next() may have something; it must be quick.
  [[nodiscard]] virtual Result<std::unique_ptr<ConfigWatcher>> Watch(
      const std::string& ns, const std::string& path, std::function<void()> notify) = 0;

  // Closes every watcher with UNAVAILABLE (shutdown).
  virtual void CloseWatchers() = 0;
};

}  // namespace micro::config
