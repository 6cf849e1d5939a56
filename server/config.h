#pragma once

#include <spdlog/common.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/address.h"
#include "core/flags.h"
#include "core/logging.h"
#include "core/status.h"
#include "core/stream_bytes.h"
#include "rpc/stream_slots.h"
#include "services/broker/make_broker.h"
#include "services/config/make_config.h"
#include "services/events/make_events.h"
#include "services/registry/make_registry.h"
#include "services/store/make_store.h"

namespace micro::server {

// Everything `micro server` can be told. docs/configuration.md documents every key.
// How the daemon serves TLS (docs/security.md). Off on a loopback address unless asked for;
// a non-loopback address gets the automatic mode unless --insecure or a certificate is given.
struct TlsConfig {
  std::string cert_file;  // the operator's certificate (chain), PEM; with key_file
  std::string key_file;
  // A CA and a server certificate made in <data dir>/tls. Resolved by LoadDaemonConfig.
  bool automatic = false;
  std::vector<std::string> hosts;  // extra names in the automatic certificate
  bool enabled() const { return automatic || !cert_file.empty(); }
};

// The HTTP gateway and /metrics (docs/gateway.md). Plain HTTP: a non-loopback address needs
// --insecure, as for gRPC without TLS.
struct GatewayConfig {
  // "off": no gateway. Default 127.0.0.1:8080, or 127.0.0.1:0 (a free port) when the gRPC
  // port is 0, so daemons started on free ports never contend for 8080.
  std::string address;
  std::vector<std::string> cors_origins;  // origins browsers may call from; "*": any
  size_t max_body_bytes = 4 << 20;        // a larger request body is 413
  size_t max_connections = 1024;          // then the longest-waiting idle one is closed
  int64_t request_timeout_seconds = 10;   // to read one request, headers and body
  int64_t idle_timeout_seconds = 60;      // a kept-alive connection between requests
  int64_t call_timeout_seconds = 30;      // a call's deadline unless Micro-Timeout is shorter
  bool metrics_public = false;            // /metrics without an admin token
  bool enabled() const { return address != "off"; }
};

struct DaemonConfig {
  std::string address = "127.0.0.1:8081";
  // Allows a non-loopback `address` without TLS: secrets and tokens then cross the network in
  // clear, so it is off by default.
  bool insecure = false;
  TlsConfig tls;
  GatewayConfig gateway;
  std::optional<bool> tls_auto_given;  // tls.auto as the layers said, before resolving
  std::string data_dir;                // default: $HOME/.micro
  spdlog::level::level_enum log_level = spdlog::level::info;
  LogFormat log_format = LogFormat::kText;
  int64_t shutdown_grace_seconds = 10;
  size_t max_streams = StreamSlots::kDefaultMax;  // watch and log streams open at once
  // Bytes queued and not yet read in all those streams together.
  size_t max_stream_bytes = StreamBytes::kDefaultMax;
  registry::RegistryConfig registry;
  store::StoreConfig store;
  config::ConfigConfig config;
  broker::BrokerConfig broker;
  events::EventsConfig events;
  // Every call needs an access token (auth.enabled). false: none is checked, for development
  // and benchmarks only; the daemon warns at start.
  bool auth_enabled = true;
  // The Docker Engine socket of the container driver: DOCKER_HOST (unix://PATH) or the default.
  std::string docker_socket = "/var/run/docker.sock";
  int64_t docker_timeout_seconds = 30;  // each Docker Engine call
  // A graceful stop leaves the services running for the next daemon to adopt (an upgrade);
  // off: they stop with the daemon.
  bool keep_services = false;
  std::string config_file;  // where the file layer came from; empty if none
};

// The flags of `micro server`, for parsing and --help.
std::vector<FlagSpec> DaemonFlags();

// Builds the configuration from defaults < the YAML file (--config or MICRO_CONFIG) < MICRO_*
// environment < flags. `env` holds the process environment. An unknown key, a value of the
// wrong type or a bad address is INVALID_ARGUMENT naming the key and where it came from.
[[nodiscard]] Result<DaemonConfig> LoadDaemonConfig(const ParsedArgs& flags,
                                                    const std::map<std::string, std::string>& env);

// Splits "host:port" (host may be [IPv6]); port 0..65535. INVALID_ARGUMENT otherwise.
[[nodiscard]] Status CheckListenAddress(const std::string& address);

}  // namespace micro::server
