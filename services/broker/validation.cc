#include "services/broker/validation.h"

#include <fmt/format.h>

#include <cctype>

#include "core/names.h"

namespace micro::broker {
namespace {

bool HasReservedPrefix(const std::string& key) {
  const std::string_view prefix = kReservedHeaderPrefix;
  if (key.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(key[i])) != prefix[i]) return false;
  }
  return true;
}

Status CheckHeader(const Header& header, const Limits& limits) {
  if (header.size() > limits.max_header_entries) {
    return absl::InvalidArgumentError(
        fmt::format("the message header has {} entries; the limit is {}", header.size(),
                    limits.max_header_entries));
  }
  for (const auto& [key, value] : header) {
    if (key.empty() || key.size() > limits.max_header_key_bytes) {
      return absl::InvalidArgumentError(
          fmt::format("header key '{:.32}' is {} bytes; it must be 1 to {} bytes", key, key.size(),
                      limits.max_header_key_bytes));
    }
    if (HasReservedPrefix(key)) {
      return absl::InvalidArgumentError(
          fmt::format("header key '{}' starts with '{}', which is reserved for the broker", key,
                      kReservedHeaderPrefix));
    }
    if (value.size() > limits.max_header_value_bytes) {
      return absl::InvalidArgumentError(
          fmt::format("header value of '{}' is {} bytes; the limit is {}", key, value.size(),
                      limits.max_header_value_bytes));
    }
  }
  return absl::OkStatus();
}

}  // namespace

Status CheckPublish(const Message& message, const Limits& limits) {
  if (Status s = CheckSubject("topic", message.topic, limits.max_topic_bytes,
                              limits.max_topic_tokens, /*wildcards=*/false);
      !s.ok()) {
    return s;
  }
  if (Status s = CheckHeader(message.header, limits); !s.ok()) return s;
  if (message.body.size() > limits.max_body_bytes) {
    return absl::InvalidArgumentError(
        fmt::format("the message body is {} bytes; the limit is {} (max message size)",
                    message.body.size(), limits.max_body_bytes));
  }
  return absl::OkStatus();
}

Status CheckSubscribe(const std::string& topic, const std::string& queue, const Limits& limits) {
  if (Status s = CheckSubject("topic", topic, limits.max_topic_bytes, limits.max_topic_tokens,
                              /*wildcards=*/true);
      !s.ok()) {
    return s;
  }
  if (queue.empty()) return absl::OkStatus();
  return CheckName("queue", queue, limits.max_queue_bytes, Charset::kName);
}

}  // namespace micro::broker
