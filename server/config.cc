#include "server/config.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <filesystem>

namespace micro::server {
namespace {

// One configuration key and the names it has in each layer.
struct Key {
  const char* key;         // dotted path in micro.yaml
  const char* env;         // environment variable
  const char* flag;        // flag without "--"; null: no flag (secrets)
  const char* value_name;  // for --help
  const char* help;
  Status (*apply)(DaemonConfig&, const std::string&);
};

Result<int64_t> ParseInt(const std::string& value) {
  int64_t out = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), out);
  if (ec != std::errc() || end != value.data() + value.size()) {
    return absl::InvalidArgumentError(fmt::format("'{}' is not an integer", value));
  }
  return out;
}

Result<bool> ParseBool(const std::string& value) {
  if (value == "true" || value == "1" || value == "yes") return true;
  if (value == "false" || value == "0" || value == "no") return false;
  return absl::InvalidArgumentError(fmt::format("'{}' is not true or false", value));
}

// TLS as the layers asked for it; a non-loopback address without it needs --insecure.
Status ResolveTls(DaemonConfig& config) {
  TlsConfig& tls = config.tls;
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return absl::InvalidArgumentError(
        "give both --tls-cert and --tls-key (config keys tls.cert_file and tls.key_file), or "
        "neither");
  }
  if (!tls.cert_file.empty() && config.tls_auto_given.value_or(false)) {
    return absl::InvalidArgumentError(
        "--tls-auto and --tls-cert exclude each other: the certificate is either made by the "
        "daemon or given");
  }
  const bool exposed = !IsLoopbackAddress(config.address);
  tls.automatic =
      tls.cert_file.empty() && config.tls_auto_given.value_or(exposed && !config.insecure);
  if (config.gateway.enabled() && !IsLoopbackAddress(config.gateway.address) && !config.insecure) {
    return absl::InvalidArgumentError(fmt::format(
        "HTTP address '{}' is not a loopback address, and the gateway serves plain HTTP: "
        "tokens would cross the network in clear. Listen on 127.0.0.1 (the default), put a TLS "
        "proxy in front, or accept the risk with --insecure",
        config.gateway.address));
  }
  if (!exposed || config.insecure || tls.enabled()) return absl::OkStatus();
  return absl::InvalidArgumentError(fmt::format(
      "address '{}' is not a loopback address, and TLS is off: secrets and access tokens would "
      "cross the network in clear. Serve TLS (--tls-auto, or --tls-cert and --tls-key), listen "
      "on 127.0.0.1 (the default), or accept the risk with --insecure (env MICRO_INSECURE=true, "
      "config key insecure: true)",
      config.address));
}

// "~" and "~/..." relative to `home`; then absolute, so server.json and logs show real paths.
std::string ResolvePath(const std::string& path, const std::string& home) {
  std::string expanded = path;
  if (path == "~" || path.rfind("~/", 0) == 0) expanded = home + path.substr(1);
  std::error_code ec;
  std::filesystem::path absolute = std::filesystem::absolute(expanded, ec);
  return ec ? expanded : absolute.lexically_normal().string();
}

const std::vector<Key>& Keys() {
  static const std::vector<Key> keys = {
      {"address", "MICRO_ADDRESS", "address", "HOST:PORT",
       "gRPC listen address (port 0 picks a free port)",
       [](DaemonConfig& c, const std::string& v) {
         c.address = v;
         return CheckListenAddress(v);
       }},
      {"insecure", "MICRO_INSECURE", "insecure", "",
       "allow a non-loopback address without TLS (tokens then cross the network in clear)",
       [](DaemonConfig& c, const std::string& v) {
         auto on = ParseBool(v);
         if (!on.ok()) return on.status();
         c.insecure = *on;
         return absl::OkStatus();
       }},
      {"tls.auto", "MICRO_TLS_AUTO", "tls-auto", "BOOL",
       "serve TLS with a CA and certificate made in <data dir>/tls (default: on for a "
       "non-loopback address, else off)",
       [](DaemonConfig& c, const std::string& v) {
         auto on = ParseBool(v);
         if (!on.ok()) return on.status();
         c.tls_auto_given = *on;
         return absl::OkStatus();
       }},
      {"tls.cert_file", "MICRO_TLS_CERT", "tls-cert", "FILE",
       "serve TLS with this certificate (PEM, with its chain)",
       [](DaemonConfig& c, const std::string& v) {
         c.tls.cert_file = v;
         return absl::OkStatus();
       }},
      {"tls.key_file", "MICRO_TLS_KEY", "tls-key", "FILE",
       "the private key of --tls-cert (PEM, unencrypted)",
       [](DaemonConfig& c, const std::string& v) {
         c.tls.key_file = v;
         return absl::OkStatus();
       }},
      {"tls.hosts", "MICRO_TLS_HOSTS", "tls-hosts", "NAMES",
       "comma-separated extra host names or addresses for the automatic certificate",
       [](DaemonConfig& c, const std::string& v) {
         c.tls.hosts.clear();
         size_t start = 0;
         while (start <= v.size()) {
           const size_t comma = std::min(v.find(',', start), v.size());
           std::string host = v.substr(start, comma - start);
           if (host.find_first_of(" \t/") != std::string::npos) {
             return absl::InvalidArgumentError(fmt::format("'{}' is not a host name", host));
           }
           if (!host.empty()) c.tls.hosts.push_back(host);
           start = comma + 1;
         }
         return absl::OkStatus();
       }},
      {"auth.enabled", "MICRO_AUTH_ENABLED", "auth-enabled", "BOOL",
       "every call needs an access token (default true; false only for development and "
       "benchmarks)",
       [](DaemonConfig& c, const std::string& v) {
         auto on = ParseBool(v);
         if (!on.ok()) return on.status();
         c.auth_enabled = *on;
         return absl::OkStatus();
       }},
      {"data_dir", "MICRO_HOME", "data-dir", "DIR", "where the daemon keeps its state",
       [](DaemonConfig& c, const std::string& v) {
         if (v.empty()) return absl::InvalidArgumentError("the data dir must not be empty");
         c.data_dir = v;  // resolved against HOME once every layer is applied
         return absl::OkStatus();
       }},
      {"log.level", "MICRO_LOG_LEVEL", "log-level", "LEVEL",
       "trace, debug, info, warn, error, critical or off",
       [](DaemonConfig& c, const std::string& v) {
         auto level = ParseLogLevel(v == "warning" ? "warn" : v);
         if (!level.ok()) return level.status();
         c.log_level = *level;
         return absl::OkStatus();
       }},
      {"log.format", "MICRO_LOG_FORMAT", "log-format", "FORMAT", "text or json",
       [](DaemonConfig& c, const std::string& v) {
         auto format = ParseLogFormat(v);
         if (!format.ok()) return format.status();
         c.log_format = *format;
         return absl::OkStatus();
       }},
      {"shutdown_grace_seconds", "MICRO_SHUTDOWN_GRACE_SECONDS", "shutdown-grace-seconds", "N",
       "how long in-flight calls may finish after SIGTERM (0..3600)",
       [](DaemonConfig& c, const std::string& v) {
         auto n = ParseInt(v);
         if (!n.ok()) return n.status();
         if (*n < 0 || *n > 3600) {
           return absl::InvalidArgumentError(fmt::format("{} is outside 0..3600", *n));
         }
         c.shutdown_grace_seconds = *n;
         return absl::OkStatus();
       }},
      {"registry.backend", "MICRO_REGISTRY_BACKEND", "registry-backend", "NAME",
       "registry backend: memory",
       [](DaemonConfig& c, const std::string& v) {
         if (v != "memory") {
           return absl::InvalidArgumentError(
               fmt::format("'{}' is not a registry backend; valid: memory", v));
         }
         c.registry.backend = v;
         return absl::OkStatus();
       }},
      {"broker.backend", "MICRO_BROKER_BACKEND", "broker-backend", "NAME", "broker backend: memory",
       [](DaemonConfig& c, const std::string& v) {
         if (v != "memory") {
           return absl::InvalidArgumentError(
               fmt::format("'{}' is not a broker backend; valid: memory", v));
         }
         c.broker.backend = v;
         return absl::OkStatus();
       }},
      {"broker.subscriber_buffer_bytes", "MICRO_BROKER_SUBSCRIBER_BUFFER_BYTES",
       "broker-subscriber-buffer-bytes", "BYTES",
       "undelivered bytes one broker subscriber may hold before its new messages are dropped "
       "and counted (default 8388608; 65536 to 1073741824)",
       [](DaemonConfig& c, const std::string& v) {
         auto n = ParseInt(v);
         if (!n.ok()) return n.status();
         if (*n < 65536 || *n > (int64_t{1} << 30)) {
           return absl::InvalidArgumentError(fmt::format("{} is outside 65536..1073741824", *n));
         }
         c.broker.subscriber_buffer_bytes = static_cast<size_t>(*n);
         return absl::OkStatus();
       }},
      {"broker.max_subscriptions", "MICRO_BROKER_MAX_SUBSCRIPTIONS", "broker-max-subscriptions",
       "N",
       "broker subscriptions open at once, all namespaces together (default 10000; 1 to "
       "1000000)",
       [](DaemonConfig& c, const std::string& v) {
         auto n = ParseInt(v);
         if (!n.ok()) return n.status();
         if (*n < 1 || *n > 1000000) {
           return absl::InvalidArgumentError(fmt::format("{} is outside 1..1000000", *n));
         }
         c.broker.max_subscriptions = static_cast<size_t>(*n);
         return absl::OkStatus();
       }},
      {"store.backend", "MICRO_STORE_BACKEND", "store-backend", "NAME",
       "store backend: rocksdb (durable, in the data dir) or memory",
       [](DaemonConfig& c, const std::string& v) {
         if (v != "rocksdb" && v != "memory") {
           return absl::InvalidArgumentError(
               fmt::format("'{}' is not a store backend; valid: rocksdb, memory", v));
         }
         c.store.backend = v;
         return absl::OkStatus();
       }},
      {"store.snapshot_dir", "MICRO_STORE_SNAPSHOT_DIR", "store-snapshot-dir", "DIR",
       "the only folder the store writes snapshots into (default: <data dir>/snapshots)",
       [](DaemonConfig& c, const std::string& v) {
         if (v.empty()) return absl::InvalidArgumentError("the snapshot dir must not be empty");
         c.store.snapshot_dir = v;  // resolved against HOME once every layer is applied
         return absl::OkStatus();
       }},
      {"store.quota_bytes", "MICRO_STORE_QUOTA_BYTES", "store-quota-bytes", "BYTES",
       "bytes of records the store may hold before writes are refused (default 4294967296; "
       "0: no quota)",
       [](DaemonConfig& c, const std::string& v) {
         auto n = ParseInt(v);
         if (!n.ok()) return n.status();
         if (*n < 0) {
           return absl::InvalidArgumentError(fmt::format("{} is negative; use 0 for no quota", *n));
         }
         c.store.quota_bytes = static_cast<uint64_t>(*n);
         return absl::OkStatus();
       }},
      {"events.backend", "MICRO_EVENTS_BACKEND", "events-backend", "NAME",
       "events backend: rocksdb (durable, in the data dir) or memory",
       [](DaemonConfig& c, const std::string& v) {
         if (v != "rocksdb" && v != "memory") {
           return absl::InvalidArgumentError(
               fmt::format("'{}' is not an events backend; valid: rocksdb, memory", v));
         }
         c.events.backend = v;
         return absl::OkStatus();
       }},
      {"events.retention_max_age_seconds", "MICRO_EVENTS_RETENTION_MAX_AGE_SECONDS",
       "events-retention-max-age-seconds", "N",
       "events older than this are trimmed from every topic (default 604800, 7 days; 0: none)",
       [](DaemonConfig& c, const std::string& v) {
         auto n = ParseInt(v);
         if (!n.ok()) return n.status();
         if (*n < 0 || *n > int64_t{100} * 365 * 86400) {
           return absl::InvalidArgumentError(
               fmt::format("{} is outside 0..3153600000 (100 years)", *n));
         }
         c.events.retention.max_age_ms = *n * 1000;
         return absl::OkStatus();
       }},
      {"events.retention_max_events", "MICRO_EVENTS_RETENTION_MAX_EVENTS",
       "events-retention-max-events", "N",
       "events each topic keeps at most, the oldest trimmed first (default 0: no bound)",
       [](DaemonConfig& c, const std::string& v) {
         auto n = ParseInt(v);
         if (!n.ok()) return n.status();
         if (*n < 0) return absl::InvalidArgumentError(fmt::format("{} is negative", *n));
         c.events.retention.max_events = static_cast<uint64_t>(*n);
         return absl::OkStatus();
       }},
      {"events.retention_max_bytes", "MICRO_EVENTS_RETENTION_MAX_BYTES",
       "events-retention-max-bytes", "BYTES",
       "bytes each topic keeps at most, the oldest events trimmed first (default 1073741824; "
       "0: no bound)",
       [](DaemonConfig& c, const std::string& v) {
         auto n = ParseInt(v);
         if (!n.ok()) return n.status();
         if (*n < 0) return absl::InvalidArgumentError(fmt::format("{} is negative", *n));
         c.events.retention.max_bytes = static_cast<uint64_t>(*n);
         return absl::OkStatus();
       }},
      {"config.backend", "MICRO_CONFIG_BACKEND", "config-backend", "NAME",
       "config backend: rocksdb (durable, in the data dir) or memory",
       [](DaemonConfig& c, const std::string& v) {
         if (v != "rocksdb" && v != "memory") {
           return absl::InvalidArgumentError(
               fmt::format("'{}' is not a config backend; valid: rocksdb, memory", v));
         }
         c.config.backend = v;
         return absl::OkStatus();
       }},
      // No flag: a flag's value shows in /proc/PID/cmdline and `ps` to every local user.
      {"config.secret_key", "MICRO_CONFIG_SECRET_KEY", nullptr, "KEYS",
       "keys for secret config values: 32 bytes in base64, or VERSION:BASE64 items separated "
       "by commas for rotation (default: <data dir>/config.key)",
       [](DaemonConfig& c, const std::string& v) {
         size_t start = 0;
         while (start <= v.size()) {
           size_t end = v.find(',', start);
           if (end == std::string::npos) end = v.size();
           std::string item = v.substr(start, end - start);
           start = end + 1;
           if (const size_t colon = item.find(':'); colon != std::string::npos) {
             item.erase(0, colon + 1);
           }
           if (item.size() != 44 || item.back() != '=') {
             return absl::InvalidArgumentError(
                 "must be 32 bytes in base64 (44 characters), or VERSION:BASE64 items separated "
                 "by commas; generate a key with 'head -c32 /dev/urandom | base64'");
           }
         }
         c.config.secret_key = v;
         return absl::OkStatus();
       }},
      {"gateway.address", "MICRO_HTTP_ADDRESS", "http-address", "HOST:PORT",
       "HTTP gateway and /metrics listen address (default 127.0.0.1:8080, or a free port when "
       "--address has port 0; off: none)",
       [](DaemonConfig& c, const std::string& v) {
         c.gateway.address = v;
         return v == "off" ? absl::OkStatus() : CheckListenAddress(v);
       }},
      {"gateway.cors_origins", "MICRO_HTTP_CORS_ORIGINS", "http-cors-origins", "ORIGINS",
       "comma-separated origins browsers may call the gateway from (https://app.example.com; "
       "*: any); default none",
       [](DaemonConfig& c, const std::string& v) {
         c.gateway.cors_origins.clear();
         size_t start = 0;
         while (start <= v.size()) {
           const size_t comma = std::min(v.find(',', start), v.size());
           std::string origin = v.substr(start, comma - start);
           origin.erase(0, origin.find_first_not_of(' '));
           origin.erase(origin.find_last_not_of(' ') + 1);
           if (origin.find_first_of(" \t\r\n") != std::string::npos ||
               (origin != "*" && !origin.empty() && origin.find("://") == std::string::npos)) {
             return absl::InvalidArgumentError(
                 fmt::format("'{}' is not an origin; give SCHEME://HOST[:PORT] or *", origin));
           }
           if (!origin.empty()) c.gateway.cors_origins.push_back(origin);
           start = comma + 1;
         }
         return absl::OkStatus();
       }},
      {"gateway.max_body_bytes", "MICRO_HTTP_MAX_BODY_BYTES", "http-max-body-bytes", "BYTES",
       "largest HTTP request body (default 4194304; 1024..67108864)",
       [](DaemonConfig& c, const std::string& v) {
         auto n = ParseInt(v);
         if (!n.ok()) return n.status();
         if (*n < 1024 || *n > (int64_t{64} << 20)) {
           return absl::InvalidArgumentError(fmt::format("{} is outside 1024..67108864", *n));
         }
         c.gateway.max_body_bytes = static_cast<size_t>(*n);
         return absl::OkStatus();
       }},
      {"gateway.max_connections", "MICRO_HTTP_MAX_CONNECTIONS", "http-max-connections", "N",
       "HTTP connections open at once (default 1024; 1..65536); past it the longest idle one "
       "is closed",
       [](DaemonConfig& c, const std::string& v) {
         auto n = ParseInt(v);
         if (!n.ok()) return n.status();
         if (*n < 1 || *n > 65536) {
           return absl::InvalidArgumentError(fmt::format("{} is outside 1..65536", *n));
         }
         c.gateway.max_connections = static_cast<size_t>(*n);
         return absl::OkStatus();
       }},
      {"gateway.request_timeout_seconds", "MICRO_HTTP_REQUEST_TIMEOUT_SECONDS",
       "http-request-timeout-seconds", "N",
       "seconds a client has to send one whole request (default 10; 1..300)",
       [](DaemonConfig& c, const std::string& v) {
         auto n = ParseInt(v);
         if (!n.ok()) return n.status();
         if (*n < 1 || *n > 300) {
           return absl::InvalidArgumentError(fmt::format("{} is outside 1..300", *n));
         }
         c.gateway.request_timeout_seconds = *n;
         return absl::OkStatus();
       }},
      {"gateway.idle_timeout_seconds", "MICRO_HTTP_IDLE_TIMEOUT_SECONDS",
       "http-idle-timeout-seconds", "N",
       "seconds a kept-alive connection may wait for its next request (default 60; 1..3600)",
       [](DaemonConfig& c, const std::string& v) {
         auto n = ParseInt(v);
         if (!n.ok()) return n.status();
         if (*n < 1 || *n > 3600) {
           return absl::InvalidArgumentError(fmt::format("{} is outside 1..3600", *n));
         }
         c.gateway.idle_timeout_seconds = *n;
         return absl::OkStatus();
       }},
      {"gateway.call_timeout_seconds", "MICRO_HTTP_CALL_TIMEOUT_SECONDS",
       "http-call-timeout-seconds", "N",
       "deadline of a call through the gateway unless the request's Micro-Timeout is shorter "
       "(default 30; 1..60)",
       [](DaemonConfig& c, const std::string& v) {
         auto n = ParseInt(v);
         if (!n.ok()) return n.status();
         if (*n < 1 || *n > 60) {
           return absl::InvalidArgumentError(fmt::format("{} is outside 1..60", *n));
         }
         c.gateway.call_timeout_seconds = *n;
         return absl::OkStatus();
       }},
      {"gateway.metrics_public", "MICRO_HTTP_METRICS_PUBLIC", "http-metrics-public", "BOOL",
       "serve /metrics without an admin token (default false)",
       [](DaemonConfig& c, const std::string& v) {
         auto on = ParseBool(v);
         if (!on.ok()) return on.status();
         c.gateway.metrics_public = *on;
         return absl::OkStatus();
       }},
      {"max_streams", "MICRO_MAX_STREAMS", "max-streams", "N",
       "watch and log streams open at once, all clients together (1..1000000)",
       [](DaemonConfig& c, const std::string& v) {
         auto n = ParseInt(v);
         if (!n.ok()) return n.status();
         if (*n < 1 || *n > 1000000) {
           return absl::InvalidArgumentError(fmt::format("{} is outside 1..1000000", *n));
         }
         c.max_streams = static_cast<size_t>(*n);
         return absl::OkStatus();
       }},
      {"max_stream_bytes", "MICRO_MAX_STREAM_BYTES", "max-stream-bytes", "BYTES",
       "bytes queued and not yet read in all watch and log streams together (default "
       "268435456; 1048576..1099511627776)",
       [](DaemonConfig& c, const std::string& v) {
         auto n = ParseInt(v);
         if (!n.ok()) return n.status();
         if (*n < (int64_t{1} << 20) || *n > (int64_t{1} << 40)) {
           return absl::InvalidArgumentError(
               fmt::format("{} is outside 1048576..1099511627776 (1 MiB..1 TiB)", *n));
         }
         c.max_stream_bytes = static_cast<size_t>(*n);
         return absl::OkStatus();
       }},
      {"runtime.docker_socket", "MICRO_RUNTIME_DOCKER_SOCKET", "runtime-docker-socket", "PATH",
       "Docker Engine API socket for the container driver (default: DOCKER_HOST's unix:// "
       "path, else /var/run/docker.sock)",
       [](DaemonConfig& c, const std::string& v) {
         const std::string path = v.rfind("unix://", 0) == 0 ? v.substr(7) : v;
         if (path.empty() || path[0] != '/') {
           return absl::InvalidArgumentError(
               fmt::format("'{}' is not an absolute path to a unix socket", v));
         }
         c.docker_socket = path;
         return absl::OkStatus();
       }},
      {"runtime.keep_services", "MICRO_RUNTIME_KEEP_SERVICES", "keep-services", "",
       "on a graceful stop, leave the services running for the next daemon to adopt (default "
       "false: they stop with the daemon)",
       [](DaemonConfig& c, const std::string& v) {
         auto on = ParseBool(v);
         if (!on.ok()) return on.status();
         c.keep_services = *on;
         return absl::OkStatus();
       }},
      {"runtime.docker_timeout_seconds", "MICRO_RUNTIME_DOCKER_TIMEOUT_SECONDS",
       "runtime-docker-timeout-seconds", "N",
       "how long one Docker Engine call may take before it fails (1..3600, default 30)",
       [](DaemonConfig& c, const std::string& v) {
         auto n = ParseInt(v);
         if (!n.ok()) return n.status();
         if (*n < 1 || *n > 3600) {
           return absl::InvalidArgumentError(fmt::format("{} is outside 1..3600", *n));
         }
         c.docker_timeout_seconds = *n;
         return absl::OkStatus();
       }},
  };
  return keys;
}

Status Apply(DaemonConfig& config, const Key& key, const std::string& value,
             const std::string& source) {
  if (Status s = key.apply(config, value); !s.ok()) {
    return absl::InvalidArgumentError(
        fmt::format("config key '{}' ({}): {}", key.key, source, std::string(s.message())));
  }
  return absl::OkStatus();
}

bool IsSection(const std::string& prefix) {
  for (const Key& key : Keys()) {
    if (std::string(key.key).rfind(prefix + ".", 0) == 0) return true;
  }
  return false;
}

const Key* FindKey(const std::string& name) {
  for (const Key& key : Keys()) {
    if (name == key.key) return &key;
  }
  return nullptr;
}

// Walks the YAML tree, applying each leaf to its key.
Status ApplyYaml(DaemonConfig& config, const YAML::Node& node, const std::string& prefix,
                 const std::string& file) {
  if (!node.IsMap()) {
    return absl::InvalidArgumentError(
        fmt::format("{}: {} must be a mapping of keys", file,
                    prefix.empty() ? "the file" : "'" + prefix + "'"));
  }
  for (const auto& entry : node) {
    const std::string name = (prefix.empty() ? "" : prefix + ".") + entry.first.as<std::string>();
    const YAML::Node& value = entry.second;
    if (const Key* key = FindKey(name)) {
      if (value.IsNull()) {
        return absl::InvalidArgumentError(fmt::format(
            "config key '{}' ({}): has no value; remove the key to use the default", name, file));
      }
      if (!value.IsScalar()) {
        return absl::InvalidArgumentError(fmt::format(
            "config key '{}' ({}): must be a single value, not a list or section", name, file));
      }
      if (Status s = Apply(config, *key, value.Scalar(), file); !s.ok()) return s;
    } else if (IsSection(name)) {
      if (value.IsNull()) continue;
      if (Status s = ApplyYaml(config, value, name, file); !s.ok()) return s;
    } else {
      return absl::InvalidArgumentError(fmt::format(
          "unknown config key '{}' in {}; see docs/configuration.md for the keys", name, file));
    }
  }
  return absl::OkStatus();
}

Status ApplyFile(DaemonConfig& config, const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::InvalidArgumentError(fmt::format("config file {} does not exist", path));
  }
  try {
    YAML::Node root = YAML::LoadFile(path);
    if (root.IsNull()) return absl::OkStatus();  // an empty file is all defaults
    return ApplyYaml(config, root, "", path);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(fmt::format("config file {}: {}", path, e.what()));
  }
}

}  // namespace

std::vector<FlagSpec> DaemonFlags() {
  std::vector<FlagSpec> flags = {
      {"config", 0, "FILE", "YAML configuration file (env MICRO_CONFIG)"}};
  for (const Key& key : Keys()) {
    if (key.flag == nullptr) continue;
    flags.push_back({key.flag, 0, key.value_name, fmt::format("{} (env {})", key.help, key.env)});
  }
  return flags;
}

Result<DaemonConfig> LoadDaemonConfig(const ParsedArgs& flags,
                                      const std::map<std::string, std::string>& env) {
  DaemonConfig config;
  auto env_home = env.find("HOME");
  const std::string home = env_home == env.end() ? std::string(".") : env_home->second;
  config.data_dir = "~/.micro";
  if (auto it = env.find("DOCKER_HOST"); it != env.end() && it->second.rfind("unix://", 0) == 0) {
    config.docker_socket = it->second.substr(7);
  }

  if (flags.Has("config")) {
    config.config_file = flags.Get("config");
  } else if (auto it = env.find("MICRO_CONFIG"); it != env.end() && !it->second.empty()) {
    config.config_file = it->second;
  }
  if (!config.config_file.empty()) {
    if (Status s = ApplyFile(config, config.config_file); !s.ok()) return s;
  }
  for (const Key& key : Keys()) {
    // An empty variable counts as unset, as it does for the CLI.
    if (auto it = env.find(key.env); it != env.end() && !it->second.empty()) {
      if (Status s = Apply(config, key, it->second, fmt::format("environment {}", key.env));
          !s.ok()) {
        return s;
      }
    }
  }
  for (const Key& key : Keys()) {
    if (key.flag != nullptr && flags.Has(key.flag)) {
      if (Status s = Apply(config, key, flags.Get(key.flag), fmt::format("flag --{}", key.flag));
          !s.ok()) {
        return s;
      }
    }
  }
  if (config.gateway.address.empty()) {
    const bool free_port = config.address.substr(config.address.rfind(':') + 1) == "0";
    config.gateway.address = free_port ? "127.0.0.1:0" : "127.0.0.1:8080";
  }
  if (Status s = ResolveTls(config); !s.ok()) return s;
  config.data_dir = ResolvePath(config.data_dir, home);
  if (!config.tls.cert_file.empty()) {
    config.tls.cert_file = ResolvePath(config.tls.cert_file, home);
    config.tls.key_file = ResolvePath(config.tls.key_file, home);
  }
  config.store.snapshot_dir = config.store.snapshot_dir.empty()
                                  ? config.data_dir + "/snapshots"
                                  : ResolvePath(config.store.snapshot_dir, home);
  return config;
}

Status CheckListenAddress(const std::string& address) {
  const auto bad = [&](const char* why) {
    return absl::InvalidArgumentError(fmt::format(
        "address '{}' is not valid: {}; use HOST:PORT such as 127.0.0.1:8081", address, why));
  };
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return bad("no port");
  const std::string host = address.substr(0, colon);
  const std::string port = address.substr(colon + 1);
  if (host.empty()) return bad("no host");
  if (host.find(':') != std::string::npos && (host.front() != '[' || host.back() != ']')) {
    return bad("an IPv6 host must be in brackets");
  }
  for (char c : host) {
    if (c <= 0x20 || c >= 0x7f) return bad("the host has a space or control character");
  }
  auto number = ParseInt(port);
  if (port.empty() || !number.ok() || *number < 0 || *number > 65535) {
    return bad("the port must be a number from 0 to 65535");
  }
  return absl::OkStatus();
}

}  // namespace micro::server
