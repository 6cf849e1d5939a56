#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "core/stream_bytes.h"
#include "services/broker/broker.h"

namespace micro::broker {

// The `broker:` section of micro.yaml.
struct BrokerConfig {
  std::string backend = "memory";
  // broker.subscriber_buffer_bytes and broker.max_subscriptions (Limits has the defaults).
  size_t subscriber_buffer_bytes = Limits{}.subscriber_buffer_bytes;
  size_t max_subscriptions = Limits{}.max_subscriptions;
};

// Builds the backend named in `config`. INVALID_ARGUMENT, listing the valid names, for an unknown
// one. Its subscribers' buffered bytes count against `stream_bytes` (may be null), which must
// outlive the result.
[[nodiscard]] Result<std::unique_ptr<Broker>> MakeBroker(const BrokerConfig& config,
                                                         StreamBytes* stream_bytes = nullptr);

}  // namespace micro::broker
