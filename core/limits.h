#pragma once

#include <cstddef>
#include <string_view>

#include "core/names.h"
#include "core/status.h"

// The rules for the names and labels users give things, in one place: the registry
// (services/registry/validation.cc), the store (services/store/validation.cc) and the runtime
// (runtime/manifest.h) all check these, so a name one service accepts is not refused by
// another. A service that departs from a rule says why next to its own constant.
// docs/architecture.md#limits lists them for users.

namespace micro::limits {

// Service names: [A-Za-z0-9._-], starting with a letter or digit.
inline constexpr size_t kServiceNameBytes = 128;
// A deployed service's name also names its instances ("<name>-<n>"), its log folder and its
// container, and is kept to a DNS label's 63 bytes so it fits all three. It is still a valid
// registry name, so a deployed service can register itself under its own name.
inline constexpr size_t kDeployedServiceNameBytes = 63;
static_assert(kDeployedServiceNameBytes <= kServiceNameBytes);

// Versions: [A-Za-z0-9._+-].
inline constexpr size_t kVersionBytes = 64;

// Names of endpoints, node ids: printable ASCII without spaces.
inline constexpr size_t kEndpointNameBytes = kServiceNameBytes;
inline constexpr size_t kNodeIdBytes = 128;
inline constexpr size_t kAddressBytes = 256;

// Store databases and tables: the service name rule, so a service can name its database after
// itself.
inline constexpr size_t kStoreNameBytes = kServiceNameBytes;

// Metadata maps (service, endpoint, node, record, deployed service): entries, key and value.
inline constexpr size_t kMetadataEntries = 64;
inline constexpr size_t kMetadataKeyBytes = 128;
inline constexpr size_t kMetadataValueBytes = 4096;

// Topics, of the broker and of events alike (a service can use one name for both): tokens
// separated by single dots, each token printable ASCII without spaces or dots. A broker
// subscription may use the NATS wildcards as whole tokens: `*` (any one token) and `>` (one or
// more tokens; last token only). A publish, and every events topic, names a concrete topic.
inline constexpr size_t kTopicBytes = 256;
inline constexpr size_t kTopicTokens = 32;
// Broker queue groups: the service name rule, so a service can name its group after itself.
inline constexpr size_t kQueueNameBytes = kServiceNameBytes;
// A broker message's body, as NATS's default max_payload (1 MiB). Its header follows the
// metadata limits above.
inline constexpr size_t kMessageBodyBytes = size_t{1} << 20;

inline Status CheckServiceName(std::string_view name, size_t max_bytes = kServiceNameBytes) {
  return CheckName("service name", name, max_bytes, Charset::kName);
}

inline Status CheckVersion(std::string_view version) {
  return CheckName("version", version, kVersionBytes, Charset::kVersion);
}

// `wildcards`: whether `*` and `>` tokens are allowed (subscribe) or refused (publish).
inline Status CheckTopic(std::string_view topic, bool wildcards) {
  return CheckSubject("topic", topic, kTopicBytes, kTopicTokens, wildcards);
}

}  // namespace micro::limits
