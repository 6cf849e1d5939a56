#pragma once

#include <memory>
#include <string>

#include "core/clock.h"
#include "core/status.h"
#include "core/stream_bytes.h"
#include "services/events/events.h"
#include "storage/rocks_db.h"

namespace micro::events {

// The `events:` section of micro.yaml.
struct EventsConfig {
  std::string backend = "rocksdb";
  Retention retention;  // events.retention_max_age_seconds, _max_events, _max_bytes
};

// Builds the backend named in `config`: "rocksdb" (in `db`, the daemon's RocksDB, family
// RocksDbEvents::kFamily) or "memory" (the same engine on a RocksDB in memory: nothing is kept
// after the daemon stops). INVALID_ARGUMENT, naming the valid choices, for anything else.
// `db`, `clock` and `stream_bytes` must outlive the result.
[[nodiscard]] Result<std::unique_ptr<Events>> MakeEvents(const EventsConfig& config,
                                                         storage::RocksDb& db, const Clock& clock,
                                                         StreamBytes* stream_bytes);

}  // namespace micro::events
