#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "core/status.h"
#include "services/events/events.h"

namespace micro::events {

// What the dispatcher needs from the storage of a backend. Every method may block on I/O and
// runs on the dispatcher's own thread, never on a gRPC callback thread.
class EventLog {
 public:
  virtual ~EventLog() = default;

  struct Bounds {
    uint64_t first = 1;  // the oldest stored event; last + 1 when the topic is empty
    uint64_t last = 0;
  };
  [[nodiscard]] virtual Result<Bounds> TopicBounds(const std::string& ns,
                                                   const std::string& topic) = 0;

  // The event at `sequence`, or nullopt if retention trimmed it (or it was never written).
  [[nodiscard]] virtual Result<std::optional<Event>> ReadOne(const std::string& ns,
                                                             const std::string& topic,
                                                             uint64_t sequence) = 0;

  // The stored position of a group, or nullopt for a group that does not exist yet.
  [[nodiscard]] virtual Result<std::optional<uint64_t>> LoadPosition(const std::string& ns,
                                                                     const std::string& topic,
                                                                     const std::string& group) = 0;

  // Stores a group's position durably, in the background. A position never goes back: a
  // smaller one than the stored one is ignored.
  virtual void StorePosition(const std::string& ns, const std::string& topic,
                             const std::string& group, uint64_t position) = 0;

  // Appends an event (the dead-letter path), as Events::Publish.
  virtual void Append(const std::string& ns, const std::string& topic, std::string payload,
                      Metadata metadata, std::function<void(Result<Published>)> done) = 0;
};

}  // namespace micro::events
