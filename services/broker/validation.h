#pragma once

#include <string>

#include "core/status.h"
#include "services/broker/broker.h"

namespace micro::broker {

// Input checks shared by every Broker backend, so all of them refuse the same things with the
// same messages. Each returns INVALID_ARGUMENT naming the field and the limit.

// A message as given to Publish: a concrete topic (no wildcards), the header (entries, key and
// value sizes, no key with the reserved prefix `micro-`) and the body size.
[[nodiscard]] Status CheckPublish(const Message& message, const Limits& limits);

// A subscription: the topic (wildcards allowed) and the queue group name (empty, or the name
// rule: [A-Za-z0-9._-], starting with a letter or digit).
[[nodiscard]] Status CheckSubscribe(const std::string& topic, const std::string& queue,
                                    const Limits& limits);

}  // namespace micro::broker
