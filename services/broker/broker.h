#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/limits.h"
#include "core/status.h"
#include "core/stream_bytes.h"

namespace micro::broker {

using Header = std::map<std::string, std::string>;

struct Message {
  std::string topic;  // concrete: never a wildcard
  Header header;
  std::string body;
};

inline bool operator==(const Message& a, const Message& b) {
  return a.topic == b.topic && a.header == b.header && a.body == b.body;
}

// The header a delivery carries, on the plain Subscribe stream, when the subscriber lost
// messages since its previous delivery: the number lost. Header keys starting with
// kReservedHeaderPrefix are the broker's: publishers may not set them.
inline constexpr const char* kDroppedHeader = "micro-dropped";
inline constexpr const char* kReservedHeaderPrefix = "micro-";

// Explicit limits, documented for users in docs/broker.md and docs/limits.md. Topics, queue
// names, headers and bodies give INVALID_ARGUMENT; the subscription count gives
// RESOURCE_EXHAUSTED.
struct Limits {
  size_t max_topic_bytes = limits::kTopicBytes;
  size_t max_topic_tokens = limits::kTopicTokens;
  size_t max_queue_bytes = limits::kQueueNameBytes;      // [A-Za-z0-9._-]
  size_t max_header_entries = limits::kMetadataEntries;  // per message
  size_t max_header_key_bytes = limits::kMetadataKeyBytes;
  size_t max_header_value_bytes = limits::kMetadataValueBytes;
  size_t max_body_bytes = limits::kMessageBodyBytes;  // 1 MiB
  size_t max_subscriptions = 10000;                   // all namespaces together
  // What one subscriber may hold undelivered (its messages' bytes as MessageBytes counts them);
  // past it, new messages for that subscriber are dropped and counted.
  size_t subscriber_buffer_bytes = size_t{8} << 20;
  // The daemon-wide account those bytes also count against (null: none); outlives the broker.
  StreamBytes* stream_bytes = nullptr;
};

// The bytes a queued message counts for: topic, header and body, plus a fixed overhead for the
// bookkeeping of one queued entry.
size_t MessageBytes(const Message& message);

// What a subscriber takes from its buffer at once: the oldest undelivered messages (shared with
// the other subscribers that got them, never modified), and how many messages this subscriber
// lost since its previous Take because its buffer was full.
struct Delivery {
  std::vector<std::shared_ptr<const Message>> messages;
  uint64_t dropped = 0;
};

// One live subscription, returned by Broker::Subscribe. Destroying it unsubscribes and frees its
// buffer; after the destructor returns, its notify callback is never called again.
class Subscription {
 public:
  virtual ~Subscription() = default;

  // Moves up to `max_messages` of the oldest buffered messages into `out->messages` (stopping
  // before the one that would take their bytes past `max_bytes`, but always taking at least
  // one), and the count of messages dropped since the previous Take into `out->dropped`.
  // Returns false when nothing was buffered and nothing dropped. Thread-safe.
  virtual bool Take(size_t max_messages, size_t max_bytes, Delivery* out) = 0;

  // OK while live; UNAVAILABLE once the broker closed it for shutdown (nothing more arrives).
  // Check it when Take returns false. Thread-safe.
  virtual Status status() const = 0;

  // The bytes buffered now (as MessageBytes counts them); at most
  // Limits::subscriber_buffer_bytes, but for one message when the buffer was empty.
  virtual size_t buffered_bytes() const = 0;
};

// What a broker has done since it started, for the daemon's metrics. A message reaching n
// subscribers is n copies: each is either delivered (queued for its subscriber) or dropped
// (that subscriber's buffer was full).
struct BrokerStats {
  uint64_t subscriptions = 0;  // open now
  uint64_t published = 0;      // messages accepted by Publish and PublishMany
  uint64_t delivered = 0;      // copies queued for a subscriber
  uint64_t dropped = 0;        // copies lost to a full subscriber buffer (slow consumers)
};

// Fire-and-forget publish/subscribe, isolated by namespace. Every method is thread-safe and
// none blocks on a subscriber: a subscriber whose buffer is full loses the message (counted and
// reported to it), the publisher and the other subscribers do not wait.
class Broker {
 public:
  virtual ~Broker() = default;

  // Delivers `message` to every plain subscription of `ns` whose topic matches message.topic,
  // and to one subscription of each matching queue group (round robin, skipping members whose
  // buffer is full while another has room). Messages of one publisher on one topic reach each
  // subscriber in the order published. Having no subscriber is not an error.
  // Errors: INVALID_ARGUMENT (topic with a wildcard or otherwise bad, header, body too large);
  // nothing is delivered then.
  [[nodiscard]] virtual Status Publish(const std::string& ns, Message message) = 0;

  // Publishes `messages` in order, each as Publish would, taking them out of the vector: the
  // path of PublishStream, which a backend may make cheaper than one Publish each. Stops before
  // the first message Publish would refuse and returns its error; `*published` is the number
  // delivered before it (all of them on OK).
  [[nodiscard]] virtual Status PublishMany(const std::string& ns, std::vector<Message>& messages,
                                           size_t* published) {
    *published = 0;
    for (Message& message : messages) {
      if (Status s = Publish(ns, std::move(message)); !s.ok()) return s;
      ++*published;
    }
    return absl::OkStatus();
  }

  // Subscribes to `topic` (wildcards allowed) in `ns`; with a non-empty `queue`, as a member of
  // that queue group. `notify` is called, possibly on any thread and while broker locks are
  // held, when the buffer goes from empty to non-empty and when status() changes; it must be
  // quick and must not call back into the broker.
  // Errors: INVALID_ARGUMENT (topic, queue), RESOURCE_EXHAUSTED (Limits::max_subscriptions),
  // UNAVAILABLE (after CloseSubscriptions).
  [[nodiscard]] virtual Result<std::unique_ptr<Subscription>> Subscribe(
      const std::string& ns, const std::string& topic, const std::string& queue,
      std::function<void()> notify) = 0;

  // Closes every subscription with UNAVAILABLE (used at shutdown). Later Subscribe calls fail
  // UNAVAILABLE; Publish still succeeds and delivers nothing.
  virtual void CloseSubscriptions() = 0;

  // The counts above, each read atomically (not all at one instant). Cheap: no per-message or
  // per-subscription work.
  virtual BrokerStats Stats() const = 0;
};

}  // namespace micro::broker
