#include "services/registry/validation.h"

#include <fmt/format.h>

#include <set>

#include "core/names.h"

namespace micro::registry {
namespace {

Status CheckMetadata(const std::string& what, const Metadata& metadata, const Limits& limits) {
  if (metadata.size() > limits.max_metadata_entries) {
    return absl::InvalidArgumentError(fmt::format("{} has {} entries; the limit is {}", what,
                                                  metadata.size(), limits.max_metadata_entries));
  }
  for (const auto& [key, value] : metadata) {
    if (key.empty() || key.size() > limits.max_metadata_key_bytes) {
      return absl::InvalidArgumentError(fmt::format("{} key '{:.32}' must be 1 to {} bytes", what,
                                                    key, limits.max_metadata_key_bytes));
    }
    if (value.size() > limits.max_metadata_value_bytes) {
      return absl::InvalidArgumentError(fmt::format("{} value of '{}' is {} bytes; the limit is {}",
                                                    what, key, value.size(),
                                                    limits.max_metadata_value_bytes));
    }
  }
  return absl::OkStatus();
}

Status CheckNode(const Node& node, const Limits& limits) {
  if (auto s = CheckName("node id", node.id, limits.max_node_id_bytes, Charset::kPrintable);
      !s.ok()) {
    return s;
  }
  if (auto s = CheckName(fmt::format("address of node '{}'", node.id), node.address,
                         limits.max_address_bytes, Charset::kPrintable);
      !s.ok()) {
    return s;
  }
  return CheckMetadata(fmt::format("metadata of node '{}'", node.id), node.metadata, limits);
}

Status CheckNodeIds(const Service& service, const Limits& limits) {
  if (service.nodes.size() > limits.max_nodes_per_version) {
    return absl::ResourceExhaustedError(
        fmt::format("{} nodes in one call; the limit per version is {}", service.nodes.size(),
                    limits.max_nodes_per_version));
  }
  std::set<std::string> ids;
  for (const Node& node : service.nodes) {
    if (!ids.insert(node.id).second) {
      return absl::InvalidArgumentError(fmt::format("node id '{}' is listed twice", node.id));
    }
  }
  return absl::OkStatus();
}

}  // namespace

Status CheckServiceName(const std::string& name, const Limits& limits) {
  return CheckName("service name", name, limits.max_name_bytes, Charset::kName);
}

Status CheckVersion(const std::string& version, const Limits& limits) {
  return CheckName("version", version, limits.max_version_bytes, Charset::kVersion);
}

Status CheckRegister(const Service& service, int64_t ttl_seconds, const Limits& limits) {
  if (auto s = CheckServiceName(service.name, limits); !s.ok()) return s;
  if (!service.version.empty()) {
    if (auto s = CheckVersion(service.version, limits); !s.ok()) return s;
  }
  if (ttl_seconds < 0 || ttl_seconds > limits.max_ttl_seconds) {
    return absl::InvalidArgumentError(fmt::format(
        "ttl_seconds is {}; use 0 (never expires) up to {}", ttl_seconds, limits.max_ttl_seconds));
  }
  if (auto s = CheckMetadata("service metadata", service.metadata, limits); !s.ok()) return s;
  if (service.endpoints.size() > limits.max_endpoints) {
    return absl::InvalidArgumentError(fmt::format("{} endpoints; the limit is {}",
                                                  service.endpoints.size(), limits.max_endpoints));
  }
  for (const Endpoint& endpoint : service.endpoints) {
    if (auto s =
            CheckName("endpoint name", endpoint.name, limits.max_name_bytes, Charset::kPrintable);
        !s.ok()) {
      return s;
    }
    if (auto s = CheckMetadata(fmt::format("metadata of endpoint '{}'", endpoint.name),
                               endpoint.metadata, limits);
        !s.ok()) {
      return s;
    }
  }
  for (const Node& node : service.nodes) {
    if (auto s = CheckNode(node, limits); !s.ok()) return s;
  }
  return CheckNodeIds(service, limits);
}

Status CheckDeregister(const Service& service, const Limits& limits) {
  if (auto s = CheckServiceName(service.name, limits); !s.ok()) return s;
  if (!service.version.empty()) {
    if (auto s = CheckVersion(service.version, limits); !s.ok()) return s;
  }
  for (const Node& node : service.nodes) {
    if (auto s = CheckName("node id", node.id, limits.max_node_id_bytes, Charset::kPrintable);
        !s.ok()) {
      return s;
    }
  }
  return CheckNodeIds(service, limits);
}

}  // namespace micro::registry
