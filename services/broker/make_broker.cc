#include "services/broker/make_broker.h"

#include "services/broker/memory_broker.h"

namespace micro::broker {

Result<std::unique_ptr<Broker>> MakeBroker(const BrokerConfig& config, StreamBytes* stream_bytes) {
  Limits limits;
  limits.stream_bytes = stream_bytes;
  limits.subscriber_buffer_bytes = config.subscriber_buffer_bytes;
  limits.max_subscriptions = config.max_subscriptions;
  if (config.backend == "memory") return std::make_unique<MemoryBroker>(limits);
  return absl::InvalidArgumentError("broker.backend '" + config.backend +
                                    "' is not known; valid backends: memory");
}

}  // namespace micro::broker
