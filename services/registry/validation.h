#pragma once

#include <string>

#include "core/status.h"
#include "services/registry/registry.h"

namespace micro::registry {

// Input checks shared by every Registry backend, so all of them refuse the same things with the
// same messages. Each returns INVALID_ARGUMENT naming the field and the limit.

[[nodiscard]] Status CheckServiceName(const std::string& name, const Limits& limits);
[[nodiscard]] Status CheckVersion(const std::string& version, const Limits& limits);

// The whole service as given to Register: name, version, metadata, endpoints, nodes, ttl.
// Also rejects duplicate node ids.
[[nodiscard]] Status CheckRegister(const Service& service, int64_t ttl_seconds,
                                   const Limits& limits);

// Name, version and node ids as given to Deregister.
[[nodiscard]] Status CheckDeregister(const Service& service, const Limits& limits);

// The version Register and Deregister use when the caller gave none.
inline constexpr const char* kDefaultVersion = "latest";

}  // namespace micro::registry
