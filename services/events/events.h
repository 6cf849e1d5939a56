#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/limits.h"
#include "core/status.h"

namespace micro::events {

using Metadata = std::map<std::string, std::string>;

// The limits of the events service; docs/events.md and docs/limits.md list them.
struct Limits {
  // Topics follow the broker's rule (core/limits.h): dot-separated tokens, no wildcards.
  size_t max_topic_bytes = limits::kTopicBytes;
  size_t max_topic_tokens = limits::kTopicTokens;
  size_t max_group_bytes = 128;        // the same charset
  size_t max_id_bytes = 128;           // printable ASCII without spaces
  size_t max_payload_bytes = 1 << 20;  // 1 MiB, as NATS
  uint32_t max_read_events = 1000;     // per Read
  size_t max_read_bytes = 3 << 20;     // per Read: payloads and metadata, as the store's pages
  uint32_t default_in_flight = 256;    // unacknowledged events per consumer
  uint32_t max_in_flight = 4096;
  int64_t default_ack_wait_ms = 30'000;
  int64_t max_ack_wait_ms = 12 * 3600 * 1000;
  // Bytes of events queued for one consumer and not yet written to its stream (one event
  // always fits); the daemon-wide max_stream_bytes bounds all consumers together.
  size_t consumer_queue_bytes = 4 << 20;
  int64_t dedup_window_ms = 120'000;  // a client-given id deduplicates for 2 minutes
};

// Retention of a topic: events past any of the bounds are trimmed in the background, oldest
// first. 0: no bound of that kind. The defaults are the daemon's, for every topic.
struct Retention {
  int64_t max_age_ms = int64_t{7} * 24 * 3600 * 1000;  // 7 days
  uint64_t max_events = 0;
  uint64_t max_bytes = uint64_t{1} << 30;  // 1 GiB per topic
};

// A topic's own retention bounds (Configure): each one present replaces the default's.
struct TopicRetention {
  std::optional<int64_t> max_age_ms;
  std::optional<uint64_t> max_events;
  std::optional<uint64_t> max_bytes;
};

// The bounds that apply to a topic with `own` bounds under the daemon's `defaults`.
Retention Effective(const Retention& defaults, const TopicRetention& own);

struct Event {
  std::string id;
  std::string topic;
  uint64_t sequence = 0;
  std::string payload;
  Metadata metadata;
  int64_t timestamp_unix_ms = 0;
  uint32_t delivery_count = 0;  // deliveries to the consumer's group so far; 0 from Read
};

struct Published {
  std::string id;
  uint64_t sequence = 0;
  bool duplicate = false;  // the id was published within the window: nothing was stored
};

struct TopicInfo {
  std::string name;
  uint64_t first_sequence = 0;  // 0 when empty
  uint64_t last_sequence = 0;
  uint64_t count = 0;
  uint64_t bytes = 0;
  Retention retention;  // what applies
  TopicRetention own;   // the topic's own bounds
};

struct Subscription {
  std::string topic;
  std::string group;  // empty: a group of the consumer's own, not stored
  uint64_t start_sequence = 0;
  int64_t start_unix_ms = 0;
  bool auto_ack = false;
  int64_t ack_wait_ms = 0;        // 0: Limits::default_ack_wait_ms
  int32_t retry_limit = 0;        // redeliveries after the first delivery; 0: no limit
  std::string dead_letter_topic;  // empty: topic + ".dead"
  uint32_t max_in_flight = 0;     // 0: Limits::default_in_flight
};

// One member of a group, receiving events. Thread-safe. Destroying it leaves the group: the
// events it held unacknowledged go to the group's other consumers at once.
class Consumer {
 public:
  virtual ~Consumer() = default;

  // The next event queued for this consumer, or nullopt if none is queued now (the notify
  // callback given to Consume runs when one is). Never blocks. With auto_ack the event counts
  // as acknowledged here.
  virtual std::optional<Event> Next() = 0;

  // Acknowledges an event this consumer's group received, by id. success=false asks for a
  // redelivery now. An unknown id (acknowledged already, redelivered elsewhere, or never
  // delivered) is ignored: acknowledgements race with redelivery by design.
  virtual void Ack(const std::string& id, bool success) = 0;

  // OK while the consumer is open; UNAVAILABLE once the events service is stopping, or the
  // error that ended the consumer. Once not OK, Next returns nullopt for good.
  virtual Status status() = 0;

  // True once the group has its start position (on the delivery thread, just after Consume;
  // the notify callback runs then): every event published from then on reaches the group. A
  // new group without a start begins with the events published after this point.
  virtual bool attached() = 0;
};

// What the events service has done and holds, for the daemon's metrics.
struct EventsStats {
  uint64_t published = 0;   // events appended since start (dead letters too; duplicates not)
  uint64_t groups = 0;      // consumer groups with a consumer connected now
  uint64_t consumers = 0;   // consumers connected now
  uint64_t disk_bytes = 0;  // SST files of the events (for the memory backend, in its memory)
};

// Durable per-topic event logs in one namespace per caller. Thread-safe. No method blocks on
// I/O except Read and Topics, which read the database and belong on a thread of their own.
class Events {
 public:
  using PublishDone = std::function<void(Result<Published>)>;

  virtual ~Events() = default;

  // Appends an event to `topic`. `done` runs once it is durable (on a thread of the backend,
  // never the caller's), with its id (`id`, or a new one if empty) and its sequence, or
  // with the first publish's id and sequence when `id` was published to the topic within the
  // dedup window. Errors: INVALID_ARGUMENT (topic, id, payload, metadata limits),
  // RESOURCE_EXHAUSTED (the disk is nearly full), UNAVAILABLE (stopping, I/O).
  virtual void Publish(const std::string& ns, const std::string& topic, std::string payload,
                       Metadata metadata, const std::string& id, PublishDone done) = 0;

  // Up to `limit` stored events of `topic` from `start_sequence` (0: the first stored), in
  // order, within Limits::max_read_events and max_read_bytes (one event always fits).
  // An unknown topic is an empty result. Errors: INVALID_ARGUMENT, UNAVAILABLE.
  [[nodiscard]] virtual Result<std::vector<Event>> Read(const std::string& ns,
                                                        const std::string& topic,
                                                        uint64_t start_sequence,
                                                        uint32_t limit) = 0;

  // The topics of `ns` that hold or held events, or were configured.
  [[nodiscard]] virtual Result<std::vector<TopicInfo>> Topics(const std::string& ns) = 0;

  // Sets `topic`'s own retention: with `reset`, drops every bound it set before; then each
  // bound present in `retention` replaces the topic's. `done` runs once that is durable (on a
  // thread of the backend) with the topic's info (no counters); the trimmer applies it on its
  // next pass. Errors: INVALID_ARGUMENT (topic, a negative age), RESOURCE_EXHAUSTED (the disk is
  // nearly full), UNAVAILABLE.
  using ConfigureDone = std::function<void(Result<TopicInfo>)>;
  virtual void Configure(const std::string& ns, const std::string& topic,
                         const TopicRetention& retention, bool reset, ConfigureDone done) = 0;

  // Joins `subscription.group` of `subscription.topic`. `notify` runs (on any thread, without
  // the consumer's locks held) when Next has something new or status changes. Errors:
  // INVALID_ARGUMENT (names, both starts given, out-of-range ack_wait or max_in_flight).
  [[nodiscard]] virtual Result<std::unique_ptr<Consumer>> Consume(const std::string& ns,
                                                                  const Subscription& subscription,
                                                                  std::function<void()> notify) = 0;

  // Ends every consumer (status UNAVAILABLE), and those that join later, for the daemon's
  // shutdown.
  virtual void CloseConsumers() = 0;

  // The figures above; from memory, never blocks on I/O.
  virtual EventsStats Stats() = 0;
};

// Input checks shared by the backends: INVALID_ARGUMENT naming the field and the limit.
// `what` names the field in the error.
[[nodiscard]] Status CheckTopic(const std::string& topic, const Limits& limits,
                                const char* what = "topic");
[[nodiscard]] Status CheckPublish(const std::string& topic, const std::string& payload,
                                  const Metadata& metadata, const std::string& id,
                                  const Limits& limits);
[[nodiscard]] Status CheckSubscription(const Subscription& subscription, const Limits& limits);
[[nodiscard]] Status CheckRetention(const TopicRetention& retention);

// The dead-letter topic of a subscription.
std::string DeadLetterTopic(const Subscription& subscription);

}  // namespace micro::events
