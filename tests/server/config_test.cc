// Configuration layers and their errors, and the flag parser they rest on.
#include "server/config.h"

#include <catch2/catch.hpp>
#include <fstream>

#include "tests/support/temp_dir.h"

namespace micro::server {
namespace {

using Env = std::map<std::string, std::string>;

ParsedArgs Flags(const std::vector<std::string>& args) {
  auto parsed = ParseArgs(args, DaemonFlags());
  REQUIRE(parsed.ok());
  return *parsed;
}

std::string WriteFile(const testing::TempDir& dir, const std::string& text) {
  const std::string path = dir.path() + "/micro.yaml";
  std::ofstream(path) << text;
  return path;
}

std::string Message(const Status& s) { return std::string(s.message()); }

TEST_CASE("defaults apply when nothing is configured", "[config]") {
  auto config = LoadDaemonConfig(Flags({}), {{"HOME", "/home/u"}});
  REQUIRE(config.ok());
  CHECK(config->address == "127.0.0.1:8081");
  CHECK(config->data_dir == "/home/u/.micro");
  CHECK(config->log_level == spdlog::level::info);
  CHECK(config->log_format == LogFormat::kText);
  CHECK(config->shutdown_grace_seconds == 10);
  CHECK(config->registry.backend == "memory");
}

TEST_CASE("flags beat environment, which beats the file, which beats defaults", "[config]") {
  testing::TempDir dir;
  const std::string file = WriteFile(dir,
                                     "address: 127.0.0.1:1111\n"
                                     "log:\n  level: debug\n  format: json\n"
                                     "shutdown_grace_seconds: 3\n"
                                     "registry:\n  backend: memory\n");
  Env env = {{"MICRO_ADDRESS", "127.0.0.1:2222"},
             {"MICRO_LOG_LEVEL", "warn"},
             {"MICRO_HOME", "/srv/micro"}};
  auto config = LoadDaemonConfig(Flags({"--config", file, "--address", "127.0.0.1:3333"}), env);
  REQUIRE(config.ok());
  CHECK(config->address == "127.0.0.1:3333");
  CHECK(config->log_level == spdlog::level::warn);
  CHECK(config->log_format == LogFormat::kJson);
  CHECK(config->shutdown_grace_seconds == 3);
  CHECK(config->data_dir == "/srv/micro");
  CHECK(config->config_file == file);

  auto from_env_file = LoadDaemonConfig(Flags({}), {{"MICRO_CONFIG", file}});
  REQUIRE(from_env_file.ok());
  CHECK(from_env_file->address == "127.0.0.1:1111");
}

TEST_CASE("an unknown key in the file is an error naming the key", "[config]") {
  testing::TempDir dir;
  auto config = LoadDaemonConfig(Flags({"--config", WriteFile(dir, "log:\n  colour: red\n")}), {});
  REQUIRE(config.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(Message(config.status()).find("'log.colour'") != std::string::npos);

  config = LoadDaemonConfig(Flags({"--config", WriteFile(dir, "adress: x\n")}), {});
  CHECK(Message(config.status()).find("'adress'") != std::string::npos);
}

TEST_CASE("a value of the wrong type is an error naming the key and its source", "[config]") {
  testing::TempDir dir;
  struct Case {
    std::string yaml;
    std::string key;
  };
  for (const Case& c :
       std::vector<Case>{{"shutdown_grace_seconds: soon\n", "shutdown_grace_seconds"},
                         {"shutdown_grace_seconds: -1\n", "shutdown_grace_seconds"},
                         {"log:\n  level: loud\n", "log.level"},
                         {"log:\n  level: [a, b]\n", "log.level"},
                         {"log: verbose\n", "log"},
                         {"address:\n  host: x\n", "address"},
                         {"registry:\n  backend: etcd-ish\n", "registry.backend"}}) {
    INFO(c.yaml);
    const std::string file = WriteFile(dir, c.yaml);
    auto config = LoadDaemonConfig(Flags({"--config", file}), {});
    REQUIRE(config.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(Message(config.status()).find("'" + c.key + "'") != std::string::npos);
  }
  auto env = LoadDaemonConfig(Flags({}), {{"MICRO_LOG_FORMAT", "xml"}});
  CHECK(Message(env.status()).find("MICRO_LOG_FORMAT") != std::string::npos);
}

TEST_CASE("bad addresses are refused at start-up", "[config]") {
  for (const char* bad :
       {"8081", "127.0.0.1:", ":8081", "127.0.0.1:99999", "127.0.0.1:http", "::1:8081", "a b:80"}) {
    INFO(bad);
    auto config = LoadDaemonConfig(Flags({"--address", bad}), {});
    REQUIRE(config.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(Message(config.status()).find("--address") != std::string::npos);
  }
  for (const char* good : {"127.0.0.1:0", "localhost:8081", "[::1]:8081", "127.1.2.3:65535"}) {
    INFO(good);
    CHECK(LoadDaemonConfig(Flags({"--address", good}), {}).ok());
  }
}

TEST_CASE("a non-loopback address serves TLS, or needs --insecure to go without", "[config]") {
  for (const char* exposed : {"0.0.0.0:8081", "10.0.0.1:8081", "[::]:8081", "example.com:80",
                              "127.0.0:80", "127.0.0.1.5:80", "127.evil.com:80", "[::2]:80"}) {
    INFO(exposed);
    auto automatic = LoadDaemonConfig(Flags({"--address", exposed}), {});
    REQUIRE(automatic.ok());
    CHECK(automatic->tls.automatic);
    auto refused = LoadDaemonConfig(Flags({"--address", exposed, "--tls-auto", "false"}), {});
    REQUIRE(refused.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(Message(refused.status()).find("not a loopback address") != std::string::npos);
    CHECK(Message(refused.status()).find("--insecure") != std::string::npos);
    auto insecure = LoadDaemonConfig(Flags({"--address", exposed, "--insecure"}), {});
    REQUIRE(insecure.ok());
    CHECK_FALSE(insecure->tls.enabled());
    CHECK(LoadDaemonConfig(Flags({"--address", exposed}), {{"MICRO_INSECURE", "true"}}).ok());
  }
  auto loopback = LoadDaemonConfig(ParsedArgs(), {});
  REQUIRE(loopback.ok());
  CHECK_FALSE(loopback->tls.enabled());
  auto asked = LoadDaemonConfig(Flags({"--tls-auto", "true"}), {});
  REQUIRE(asked.ok());
  CHECK(asked->tls.automatic);
  testing::TempDir dir;
  auto from_file = LoadDaemonConfig(
      Flags({"--config", WriteFile(dir, "address: 0.0.0.0:1\ninsecure: true\n")}), {});
  CHECK(from_file.ok());
  auto not_bool =
      LoadDaemonConfig(Flags({"--address", "0.0.0.0:1"}), {{"MICRO_INSECURE", "maybe"}});
  CHECK(not_bool.status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("an operator's certificate needs its key, and excludes the automatic mode", "[config]") {
  auto given = LoadDaemonConfig(
      Flags({"--address", "0.0.0.0:1", "--tls-cert", "/etc/c.pem", "--tls-key", "/etc/k.pem"}), {});
  REQUIRE(given.ok());
  CHECK(given->tls.enabled());
  CHECK_FALSE(given->tls.automatic);
  CHECK(given->tls.cert_file == "/etc/c.pem");
  auto half = LoadDaemonConfig(Flags({"--tls-cert", "/etc/c.pem"}), {});
  CHECK(Message(half.status()).find("give both --tls-cert and --tls-key") != std::string::npos);
  auto both = LoadDaemonConfig(Flags({"--tls-cert", "/c", "--tls-key", "/k"}),
                               {{"MICRO_TLS_AUTO", "true"}});
  CHECK(Message(both.status()).find("exclude each other") != std::string::npos);
  testing::TempDir dir;
  auto hosts = LoadDaemonConfig(
      Flags({"--config", WriteFile(dir, "tls:\n  auto: true\n  hosts: a.example,10.1.2.3\n")}), {});
  REQUIRE(hosts.ok());
  CHECK(hosts->tls.hosts == std::vector<std::string>{"a.example", "10.1.2.3"});
}

TEST_CASE("a missing or malformed config file is an error", "[config]") {
  testing::TempDir dir;
  CHECK(LoadDaemonConfig(Flags({"--config", dir.path() + "/none.yaml"}), {}).status().code() ==
        absl::StatusCode::kInvalidArgument);
  auto config = LoadDaemonConfig(Flags({"--config", WriteFile(dir, "address: [unclosed\n")}), {});
  CHECK(config.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(LoadDaemonConfig(Flags({"--config", WriteFile(dir, "")}), {}).ok());
  CHECK(LoadDaemonConfig(Flags({"--config", WriteFile(dir, "- a\n- b\n")}), {}).status().code() ==
        absl::StatusCode::kInvalidArgument);
}

TEST_CASE("the flag parser takes both flag forms, switches and the rest after --", "[flags]") {
  std::vector<FlagSpec> specs = {{"name", 'n', "NAME", ""}, {"follow", 'f', "", ""}};
  auto parsed = ParseArgs({"pos", "--name=a", "-f", "-n", "b", "--", "--name", "x"}, specs);
  REQUIRE(parsed.ok());
  CHECK(parsed->positionals == std::vector<std::string>{"pos"});
  CHECK(parsed->Get("name") == "b");
  CHECK(parsed->Has("follow"));
  CHECK(parsed->rest == std::vector<std::string>{"--name", "x"});

  CHECK(ParseArgs({"--nope"}, specs).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(ParseArgs({"--name"}, specs).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(ParseArgs({"--follow=yes"}, specs).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(ParseArgs({"-h"}, specs)->help);
}

}  // namespace
}  // namespace micro::server

namespace micro::server {
namespace {

TEST_CASE("the shipped config/micro.yaml is valid and states the defaults", "[config]") {
  auto flags =
      ParseArgs({"--config", std::string(MICRO_SOURCE_DIR) + "/config/micro.yaml"}, DaemonFlags());
  REQUIRE(flags.ok());
  auto config = LoadDaemonConfig(*flags, {{"HOME", "/home/u"}});
  REQUIRE(config.ok());
  auto defaults = LoadDaemonConfig(ParsedArgs(), {{"HOME", "/home/u"}});
  REQUIRE(defaults.ok());
  CHECK(config->address == defaults->address);
  CHECK(config->log_level == defaults->log_level);
  CHECK(config->log_format == defaults->log_format);
  CHECK(config->shutdown_grace_seconds == defaults->shutdown_grace_seconds);
  CHECK(config->registry.backend == defaults->registry.backend);
  CHECK(config->store.backend == defaults->store.backend);
  CHECK(config->config.backend == defaults->config.backend);
  CHECK(config->broker.backend == defaults->broker.backend);
  CHECK(config->config.secret_key.empty());
  CHECK(config->max_streams == defaults->max_streams);
  CHECK(config->events.backend == defaults->events.backend);
  CHECK(config->events.retention.max_age_ms == defaults->events.retention.max_age_ms);
  CHECK(config->events.retention.max_events == defaults->events.retention.max_events);
  CHECK(config->events.retention.max_bytes == defaults->events.retention.max_bytes);
}

TEST_CASE("the events keys are read from every layer and checked", "[config]") {
  auto flags = ParseArgs({"--events-retention-max-events", "10"}, DaemonFlags());
  REQUIRE(flags.ok());
  auto config = LoadDaemonConfig(*flags, {{"MICRO_EVENTS_RETENTION_MAX_AGE_SECONDS", "60"},
                                          {"MICRO_EVENTS_BACKEND", "memory"}});
  REQUIRE(config.ok());
  CHECK(config->events.retention.max_events == 10);
  CHECK(config->events.retention.max_age_ms == 60000);
  CHECK(config->events.backend == "memory");
  auto bad = LoadDaemonConfig(ParsedArgs(), {{"MICRO_EVENTS_BACKEND", "nats"}});
  CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(bad.status().message()).find("events.backend") != std::string::npos);
  CHECK(LoadDaemonConfig(ParsedArgs(), {{"MICRO_EVENTS_RETENTION_MAX_BYTES", "-1"}})
            .status()
            .code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("broker.backend is read from every layer and names the valid choices", "[config]") {
  CHECK(LoadDaemonConfig(ParsedArgs(), {})->broker.backend == "memory");
  auto env = LoadDaemonConfig(ParsedArgs(), {{"MICRO_BROKER_BACKEND", "memory"}});
  REQUIRE(env.ok());
  CHECK(env->broker.backend == "memory");
  auto flags = ParseArgs({"--broker-backend", "nats"}, DaemonFlags());
  REQUIRE(flags.ok());
  auto bad = LoadDaemonConfig(*flags, {});
  REQUIRE_FALSE(bad.ok());
  CHECK(std::string(bad.status().message()).find("broker.backend") != std::string::npos);
  CHECK(std::string(bad.status().message()).find("valid: memory") != std::string::npos);
}

TEST_CASE("the broker's buffer and subscription limits are read and checked", "[config]") {
  auto defaults = LoadDaemonConfig(ParsedArgs(), {});
  REQUIRE(defaults.ok());
  CHECK(defaults->broker.subscriber_buffer_bytes == size_t{8} << 20);
  CHECK(defaults->broker.max_subscriptions == 10000);
  auto flags = ParseArgs({"--broker-subscriber-buffer-bytes", "1048576"}, DaemonFlags());
  REQUIRE(flags.ok());
  auto set = LoadDaemonConfig(*flags, {{"MICRO_BROKER_MAX_SUBSCRIPTIONS", "50"}});
  REQUIRE(set.ok());
  CHECK(set->broker.subscriber_buffer_bytes == size_t{1} << 20);
  CHECK(set->broker.max_subscriptions == 50);
  auto small = LoadDaemonConfig(ParsedArgs(), {{"MICRO_BROKER_SUBSCRIBER_BUFFER_BYTES", "100"}});
  REQUIRE_FALSE(small.ok());
  CHECK(std::string(small.status().message()).find("broker.subscriber_buffer_bytes") !=
        std::string::npos);
  CHECK_FALSE(LoadDaemonConfig(ParsedArgs(), {{"MICRO_BROKER_MAX_SUBSCRIPTIONS", "0"}}).ok());
}

TEST_CASE("max_stream_bytes is read from every layer and checked", "[config]") {
  CHECK(LoadDaemonConfig(ParsedArgs(), {})->max_stream_bytes == size_t{256} << 20);
  auto flags = ParseArgs({"--max-stream-bytes", "2097152"}, DaemonFlags());
  REQUIRE(flags.ok());
  auto config = LoadDaemonConfig(*flags, {{"MICRO_MAX_STREAM_BYTES", "3145728"}});
  REQUIRE(config.ok());
  CHECK(config->max_stream_bytes == 2097152);
  CHECK(LoadDaemonConfig(ParsedArgs(), {{"MICRO_MAX_STREAM_BYTES", "3145728"}})->max_stream_bytes ==
        3145728);
  auto tiny = LoadDaemonConfig(ParsedArgs(), {{"MICRO_MAX_STREAM_BYTES", "1000"}});
  CHECK(tiny.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(tiny.status().message()).find("'max_stream_bytes'") != std::string::npos);
}

TEST_CASE("max_streams is read from every layer and checked, the secret key has no flag",
          "[config]") {
  auto flags = ParseArgs({"--max-streams", "7"}, DaemonFlags());
  REQUIRE(flags.ok());
  auto config = LoadDaemonConfig(*flags, {{"MICRO_MAX_STREAMS", "9"}});
  REQUIRE(config.ok());
  CHECK(config->max_streams == 7);
  CHECK(LoadDaemonConfig(ParsedArgs(), {{"MICRO_MAX_STREAMS", "9"}})->max_streams == 9);
  auto zero = LoadDaemonConfig(ParsedArgs(), {{"MICRO_MAX_STREAMS", "0"}});
  CHECK(zero.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(zero.status().message()).find("'max_streams'") != std::string::npos);

  for (const FlagSpec& flag : DaemonFlags()) CHECK(flag.name.find("secret") == std::string::npos);
  CHECK_FALSE(ParseArgs({"--config-secret-key", "x"}, DaemonFlags()).ok());
  const std::string key(44 - 1, 'A');
  auto ring = LoadDaemonConfig(ParsedArgs(),
                               {{"MICRO_CONFIG_SECRET_KEY", "1:" + key + "=,2:" + key + "="}});
  REQUIRE(ring.ok());
  CHECK(ring->config.secret_key == "1:" + key + "=,2:" + key + "=");
  CHECK(LoadDaemonConfig(ParsedArgs(), {{"MICRO_CONFIG_SECRET_KEY", "short"}}).status().code() ==
        absl::StatusCode::kInvalidArgument);
}

TEST_CASE("the gateway's address follows the gRPC port, is checked, and so are its limits",
          "[config]") {
  auto defaults = LoadDaemonConfig(Flags({}), {});
  REQUIRE(defaults.ok());
  CHECK(defaults->gateway.address == "127.0.0.1:8080");
  auto free_port = LoadDaemonConfig(Flags({"--address", "127.0.0.1:0"}), {});
  REQUIRE(free_port.ok());
  CHECK(free_port->gateway.address == "127.0.0.1:0");
  auto off = LoadDaemonConfig(Flags({"--http-address", "off"}), {});
  REQUIRE(off.ok());
  CHECK(!off->gateway.enabled());
  auto exposed = LoadDaemonConfig(Flags({"--http-address", "0.0.0.0:8080"}), {});
  REQUIRE(!exposed.ok());
  CHECK(Message(exposed.status()).find("plain HTTP") != std::string::npos);
  CHECK(LoadDaemonConfig(Flags({"--http-address", "0.0.0.0:8080", "--insecure"}), {}).ok());
  CHECK(!LoadDaemonConfig(Flags({"--http-address", "nope"}), {}).ok());
  auto cors = LoadDaemonConfig(Flags({"--http-cors-origins", "https://a.example, *"}), {});
  REQUIRE(cors.ok());
  CHECK(cors->gateway.cors_origins == std::vector<std::string>{"https://a.example", "*"});
  CHECK(!LoadDaemonConfig(Flags({"--http-cors-origins", "a.example"}), {}).ok());
  CHECK(!LoadDaemonConfig(Flags({"--http-max-body-bytes", "10"}), {}).ok());
  CHECK(!LoadDaemonConfig(Flags({"--http-call-timeout-seconds", "61"}), {}).ok());
  CHECK(!LoadDaemonConfig(Flags({"--http-max-connections", "0"}), {}).ok());
  auto env = LoadDaemonConfig(Flags({}), {{"MICRO_HTTP_REQUEST_TIMEOUT_SECONDS", "3"}});
  REQUIRE(env.ok());
  CHECK(env->gateway.request_timeout_seconds == 3);
}

}  // namespace
}  // namespace micro::server
