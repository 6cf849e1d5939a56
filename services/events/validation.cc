#include <fmt/format.h>

#include "core/limits.h"
#include "core/names.h"
#include "services/events/events.h"

namespace micro::events {

Status CheckTopic(const std::string& topic, const Limits& limits, const char* what) {
  return CheckSubject(what, topic, limits.max_topic_bytes, limits.max_topic_tokens,
                      /*wildcards=*/false);
}

Status CheckPublish(const std::string& topic, const std::string& payload, const Metadata& metadata,
                    const std::string& id, const Limits& limits) {
  if (Status s = CheckTopic(topic, limits); !s.ok()) return s;
  if (!id.empty()) {
    if (Status s = CheckName("id", id, limits.max_id_bytes, Charset::kPrintable); !s.ok()) return s;
  }
  if (payload.size() > limits.max_payload_bytes) {
    return absl::InvalidArgumentError(fmt::format("the payload is {} bytes; the limit is {}",
                                                  payload.size(), limits.max_payload_bytes));
  }
  if (metadata.size() > limits::kMetadataEntries) {
    return absl::InvalidArgumentError(fmt::format("metadata has {} entries; the limit is {}",
                                                  metadata.size(), limits::kMetadataEntries));
  }
  for (const auto& [key, value] : metadata) {
    if (key.empty() || key.size() > limits::kMetadataKeyBytes) {
      return absl::InvalidArgumentError(fmt::format("metadata key '{}' is {} bytes; use 1 to {}",
                                                    key.substr(0, 64), key.size(),
                                                    limits::kMetadataKeyBytes));
    }
    if (value.size() > limits::kMetadataValueBytes) {
      return absl::InvalidArgumentError(
          fmt::format("metadata value of '{}' is {} bytes; the limit is {}", key, value.size(),
                      limits::kMetadataValueBytes));
    }
  }
  return absl::OkStatus();
}

Status CheckSubscription(const Subscription& sub, const Limits& limits) {
  if (Status s = CheckTopic(sub.topic, limits); !s.ok()) return s;
  if (!sub.group.empty()) {
    if (Status s = CheckName("group", sub.group, limits.max_group_bytes, Charset::kName); !s.ok()) {
      return s;
    }
  }
  if (!sub.dead_letter_topic.empty()) {
    if (Status s = CheckTopic(sub.dead_letter_topic, limits, "dead_letter_topic"); !s.ok()) {
      return s;
    }
    if (sub.dead_letter_topic == sub.topic) {
      return absl::InvalidArgumentError("dead_letter_topic must differ from topic");
    }
  } else if (sub.retry_limit > 0) {
    if (Status s = CheckTopic(DeadLetterTopic(sub), limits, "the dead-letter topic"); !s.ok()) {
      return absl::InvalidArgumentError(
          fmt::format("{}; name one with dead_letter_topic", std::string(s.message())));
    }
  }
  if (sub.start_sequence != 0 && sub.start_unix_ms != 0) {
    return absl::InvalidArgumentError(
        "start_sequence and start_unix_ms are both set; give at most one");
  }
  if (sub.start_unix_ms < 0) {
    return absl::InvalidArgumentError(
        fmt::format("start_unix_ms is {}; use 0 or a time after 1970", sub.start_unix_ms));
  }
  if (sub.ack_wait_ms < 0 || sub.ack_wait_ms > limits.max_ack_wait_ms) {
    return absl::InvalidArgumentError(
        fmt::format("ack_wait_ms is {}; use 0 (the default, {} ms) up to {}", sub.ack_wait_ms,
                    limits.default_ack_wait_ms, limits.max_ack_wait_ms));
  }
  if (sub.retry_limit < 0) {
    return absl::InvalidArgumentError(
        fmt::format("retry_limit is {}; use 0 (no limit) or more", sub.retry_limit));
  }
  if (sub.max_in_flight > limits.max_in_flight) {
    return absl::InvalidArgumentError(fmt::format("max_in_flight is {}; the limit is {}",
                                                  sub.max_in_flight, limits.max_in_flight));
  }
  return absl::OkStatus();
}

Status CheckRetention(const TopicRetention& retention) {
  if (retention.max_age_ms && *retention.max_age_ms < 0) {
    return absl::InvalidArgumentError(fmt::format(
        "retention max_age_ms is {}; use 0 (no age bound) or more", *retention.max_age_ms));
  }
  return absl::OkStatus();
}

Retention Effective(const Retention& defaults, const TopicRetention& own) {
  Retention out = defaults;
  if (own.max_age_ms) out.max_age_ms = *own.max_age_ms;
  if (own.max_events) out.max_events = *own.max_events;
  if (own.max_bytes) out.max_bytes = *own.max_bytes;
  return out;
}

std::string DeadLetterTopic(const Subscription& subscription) {
  return subscription.dead_letter_topic.empty() ? subscription.topic + ".dead"
                                                : subscription.dead_letter_topic;
}

}  // namespace micro::events
