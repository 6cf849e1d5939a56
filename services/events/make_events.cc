#include "services/events/make_events.h"

#include "services/events/rocksdb_events.h"

namespace micro::events {

Result<std::unique_ptr<Events>> MakeEvents(const EventsConfig& config, storage::RocksDb& db,
                                           const Clock& clock, StreamBytes* stream_bytes) {
  if (config.backend == "rocksdb") {
    RocksDbEvents::Options options;
    options.retention = config.retention;
    auto events = RocksDbEvents::Open(db, clock, Limits{}, options, stream_bytes);
    if (!events.ok()) return events.status();
    return std::unique_ptr<Events>(std::move(*events));
  }
  return absl::InvalidArgumentError("events.backend '" + config.backend +
                                    "' is not known; valid backends: rocksdb");
}

}  // namespace micro::events
