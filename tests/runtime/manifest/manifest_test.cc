// The manifest (micro.yaml -> ServiceSpec), ValidateSpec, and the proto form.
#include "runtime/manifest.h"

#include <catch2/catch.hpp>
#include <csignal>
#include <filesystem>
#include <fstream>

#include "services/runtime/runtime_proto.h"
#include "tests/support/temp_dir.h"

namespace micro::runtime {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Writes `text` to DIR/NAME (creating DIR) and returns the path.
std::string Write(const std::string& dir, const std::string& text,
                  const std::string& name = "micro.yaml") {
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/" + name;
  std::ofstream(path) << text;
  return path;
}

// The manifest `text` loaded from a fresh folder; the message of the error if it fails.
struct Loaded {
  Result<ServiceSpec> spec;
  std::string message() const { return std::string(spec.status().message()); }
};
Loaded Load(const std::string& text) {
  testing::TempDir dir;
  return {LoadManifest(Write(dir.path(), text))};
}

// A valid spec with every field different from its default.
ServiceSpec FullSpec() {
  ServiceSpec spec;
  spec.name = "hello";
  spec.version = "1.2.0";
  spec.source = "/src/hello";
  spec.metadata = {{"team", "core"}};
  spec.command = "./server";
  spec.args = {"--port", "8080"};
  spec.env = {{"LOG_LEVEL", "debug"}, {"EMPTY", ""}};
  spec.env_secrets = {{"DB_PASSWORD", "db.password"}};
  spec.working_dir = "/srv/hello";
  spec.build = "make server";
  spec.instances = 3;
  spec.restart = RestartPolicy::kOnFailure;
  spec.backoff = {milliseconds(500), milliseconds(30000), 1.5, seconds(120), 0.2};
  spec.health.kind = HealthCheckKind::kHttp;
  spec.health.address = "127.0.0.1:8080";
  spec.health.path = "/healthz";
  spec.health.service = "hello";
  spec.health.command = {"true"};
  spec.health.interval = milliseconds(5000);
  spec.health.timeout = milliseconds(1500);
  spec.health.failure_threshold = 5;
  spec.health.start_period = milliseconds(20000);
  spec.stop_signal = SIGINT;
  spec.grace = seconds(30);
  spec.memory_bytes = int64_t{256} << 20;
  spec.max_processes = 64;
  spec.logs = {int64_t{64} << 20, 3};
  return spec;
}

void CheckSame(const ServiceSpec& a, const ServiceSpec& b) {
  CHECK(a.ns == b.ns);
  CHECK(a.name == b.name);
  CHECK(a.version == b.version);
  CHECK(a.source == b.source);
  CHECK(a.metadata == b.metadata);
  CHECK(a.command == b.command);
  CHECK(a.args == b.args);
  CHECK(a.env == b.env);
  CHECK(a.env_secrets == b.env_secrets);
  CHECK(a.working_dir == b.working_dir);
  CHECK(a.build == b.build);
  CHECK(a.instances == b.instances);
  CHECK(a.restart == b.restart);
  CHECK(a.backoff.initial == b.backoff.initial);
  CHECK(a.backoff.max == b.backoff.max);
  CHECK(a.backoff.multiplier == b.backoff.multiplier);
  CHECK(a.backoff.reset_after == b.backoff.reset_after);
  CHECK(a.backoff.jitter == b.backoff.jitter);
  CHECK(a.health.kind == b.health.kind);
  CHECK(a.health.address == b.health.address);
  CHECK(a.health.path == b.health.path);
  CHECK(a.health.service == b.health.service);
  CHECK(a.health.command == b.health.command);
  CHECK(a.health.interval == b.health.interval);
  CHECK(a.health.timeout == b.health.timeout);
  CHECK(a.health.failure_threshold == b.health.failure_threshold);
  CHECK(a.health.start_period == b.health.start_period);
  CHECK(a.stop_signal == b.stop_signal);
  CHECK(a.grace == b.grace);
  CHECK(a.memory_bytes == b.memory_bytes);
  CHECK(a.max_processes == b.max_processes);
  CHECK(a.driver == b.driver);
  CHECK(a.image == b.image);
  CHECK(a.network_mode == b.network_mode);
  CHECK(a.logs.max_file_bytes == b.logs.max_file_bytes);
  CHECK(a.logs.max_files == b.logs.max_files);
}

// The message ValidateSpec gives for `spec` after `change`; empty if it passes.
template <typename Change>
std::string Invalid(Change change) {
  ServiceSpec spec = FullSpec();
  change(spec);
  Status status = ValidateSpec(spec);
  if (!status.ok()) CHECK(status.code() == absl::StatusCode::kInvalidArgument);
  return std::string(status.message());
}

using Catch::Matchers::Contains;

TEST_CASE("a manifest with every field parses into the expected spec", "[manifest]") {
  testing::TempDir dir;
  const std::string folder = dir.path() + "/hello";
  Write(folder, R"(# every field
name: hello
version: 1.2.0
metadata: {team: core}
command: ./server
args: [--port, 8080]
build: make server
env:
  LOG_LEVEL: debug
  EMPTY: ""
  DB_PASSWORD: {secret: db.password}
working_dir: /srv/hello
instances: 3
restart: on-failure
backoff: {initial: 500ms, max: 30s, multiplier: 1.5, reset_after: 2m}
health_check:
  type: http
  address: 127.0.0.1:8080
  path: /healthz
  service: hello
  command: ["true"]
  interval: 5
  timeout: 1.5s
  failure_threshold: 5
  start_period: 20s
stop_signal: INT
grace_period: 30s
limits: {memory: 256MiB, processes: 64}
logs: {max_file_size: 64MiB, max_files: 3}
)");
  auto spec = LoadManifest(folder);
  REQUIRE(spec.ok());
  ServiceSpec expected = FullSpec();
  expected.source = folder;
  CheckSame(*spec, expected);
  CHECK(ValidateSpec(*spec).ok());
}

TEST_CASE("a minimal manifest gets the documented defaults", "[manifest]") {
  testing::TempDir dir;
  const std::string path = Write(dir.path(), "name: hi\ncommand: ./hi\n", "svc.yml");
  auto spec = LoadManifest(path);
  REQUIRE(spec.ok());
  ServiceSpec defaults;
  defaults.name = "hi";
  defaults.command = "./hi";
  defaults.source = dir.path();
  defaults.working_dir = defaults.source;  // the manifest's folder
  CheckSame(*spec, defaults);
  CHECK(spec->version == "latest");
  CHECK(ValidateSpec(*spec).ok());
}

TEST_CASE("a folder with micro.yml is found, and a folder without a manifest is NOT_FOUND",
          "[manifest]") {
  testing::TempDir dir;
  Write(dir.path() + "/a", "name: a\ncommand: x\n", "micro.yml");
  CHECK(LoadManifest(dir.path() + "/a").ok());
  std::filesystem::create_directories(dir.path() + "/empty");
  auto missing = LoadManifest(dir.path() + "/empty");
  CHECK(missing.status().code() == absl::StatusCode::kNotFound);
  CHECK_THAT(std::string(missing.status().message()), Contains("has no micro.yaml"));
  CHECK(LoadManifest(dir.path() + "/nothing").status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("a relative working_dir resolves against the manifest's folder", "[manifest]") {
  testing::TempDir dir;
  const std::string folder = dir.path() + "/svc";
  Write(folder, "name: a\ncommand: x\nworking_dir: ../data/./run\n");
  auto spec = LoadManifest(folder);
  REQUIRE(spec.ok());
  CHECK(spec->working_dir == dir.path() + "/data/run");
  Write(folder, "name: a\ncommand: x\nworking_dir: /var/lib/a\n");
  CHECK(LoadManifest(folder)->working_dir == "/var/lib/a");
}

TEST_CASE("an unknown field is an error naming it, its line and the likely field", "[manifest]") {
  Loaded top = Load("name: a\ncommand: x\n\n# comment\nenv: {A: b}\n\ncomand: y\n");
  CHECK(top.spec.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(top.message(), Contains("micro.yaml:7: unknown field 'comand' (did you mean "
                                     "'command'?)"));
  Loaded nested = Load("name: a\ncommand: x\nbackoff:\n  intial: 1s\n");
  CHECK_THAT(nested.message(),
             Contains("micro.yaml:4: unknown field 'backoff.intial' (did you mean "
                      "'backoff.initial'?)"));
  Loaded far = Load("name: a\ncommand: x\nzzzzzzzz: 1\n");
  CHECK_THAT(far.message(), Contains("unknown field 'zzzzzzzz'; see docs/runtime.md"));
}

TEST_CASE("values of the wrong type or form name the field and line", "[manifest]") {
  const auto message = [](const std::string& extra) {
    return Load("name: a\ncommand: x\n" + extra).message();
  };
  CHECK_THAT(message("instances: two\n"),
             Contains("micro.yaml:3: instances: must be a whole number, not 'two'"));
  CHECK_THAT(message("health_check: {type: tcp, interval: soon}\n"),
             Contains("health_check.interval: 'soon' is not a duration"));
  CHECK_THAT(message("limits: {memory: lots}\n"), Contains("limits.memory: 'lots' is not a size"));
  CHECK_THAT(message("stop_signal: SIGNOPE\n"), Contains("stop_signal: 'SIGNOPE' is not a signal"));
  CHECK_THAT(message("restart: sometimes\n"),
             Contains("restart: must be one of always, on-failure, never, not 'sometimes'"));
  CHECK_THAT(message("args: --verbose\n"), Contains("args: must be a list"));
  CHECK_THAT(message("env: [A]\n"), Contains("env: must be a mapping"));
  CHECK_THAT(message("env: {A: {b: c}}\n"), Contains("env.A: must be a single value"));
  CHECK_THAT(message("env: {A: {secret: [a, b]}}\n"), Contains("or {secret: config.path}"));
  CHECK_THAT(message("env: {A: {secret: a, b: c}}\n"), Contains("env.A: must be"));
  CHECK_THAT(message("grace_period: 1500ms\n"), Contains("grace_period: must be whole seconds"));
  CHECK_THAT(message("health_check: {interval: 1s}\n"), Contains("health_check: has no 'type'"));
  CHECK_THAT(message("instances:\n"), Contains("instances: has no value"));
  CHECK_THAT(Load("name: a\ncommand: [./x, -v]\n").message(),
             Contains("command: must be a single string"));
  CHECK_THAT(Load("name: a\ncommand: x\nname: b\n").message(), Contains("name: is given twice"));
}

TEST_CASE("YAML syntax errors, an empty file and a missing name are errors", "[manifest]") {
  CHECK_THAT(Load("name: a\ncommand: [x\n").message(), Contains("micro.yaml:"));
  CHECK(Load("name: a\ncommand: [x\n").spec.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(Load("").message(), Contains("is empty"));
  CHECK_THAT(Load("- a\n- b\n").message(), Contains("must be a mapping"));
  CHECK_THAT(Load("command: ./x\n").message(), Contains("name is missing"));
}

TEST_CASE("ValidateSpec accepts the full spec and names the field of each bad value",
          "[manifest]") {
  CHECK(ValidateSpec(FullSpec()).ok());
  CHECK_THAT(Invalid([](auto& s) { s.instances = 0; }), Contains("instances must be 1 to 1000"));
  CHECK_THAT(Invalid([](auto& s) { s.instances = 1001; }), Contains("instances"));
  CHECK(Invalid([](auto& s) { s.instances = 1000; }).empty());
  CHECK_THAT(Invalid([](auto& s) { s.name = ""; }), Contains("name is empty"));
  CHECK_THAT(Invalid([](auto& s) { s.name = std::string(64, 'a'); }), Contains("name is 64"));
  CHECK_THAT(Invalid([](auto& s) { s.version = "1 0"; }), Contains("version '1 0'"));
  CHECK_THAT(Invalid([](auto& s) { s.version = ".."; }), Contains("version may not be '..'"));
  CHECK_THAT(Invalid([](auto& s) { s.ns = "Bad_NS"; }), Contains("namespace"));
  CHECK_THAT(Invalid([](auto& s) { s.command = ""; }), Contains("command is missing"));
  CHECK_THAT(Invalid([](auto& s) { s.driver = DriverKind::kContainer; }), Contains("image"));
  CHECK(Invalid([](auto& s) {
          s.driver = DriverKind::kContainer;
          s.image = "alpine:3";
          s.command = "";
        }).empty());
  CHECK_THAT(Invalid([](auto& s) { s.image = "alpine"; }), Contains("add 'driver: container'"));
  CHECK_THAT(Invalid([](auto& s) { s.working_dir = "rel/dir"; }),
             Contains("working_dir must be an absolute path"));
}

TEST_CASE("ValidateSpec refuses reserved, malformed and too many environment variables",
          "[manifest]") {
  for (const char* key : {"MICRO_SERVICE_ADDRESS", "MICRO_SERVER_ADDRESS", "MICRO_NAMESPACE",
                          "MICRO_INSTANCE_ID", "MICRO_AUTH_SECRET"}) {
    CHECK_THAT(Invalid([&](auto& s) { s.env[key] = "x"; }), Contains("is reserved"));
  }
  CHECK(Invalid([](auto& s) { s.env["MICRO_ADDRESS"] = "x"; }).empty());
  CHECK_THAT(Invalid([](auto& s) { s.env["1X"] = "x"; }), Contains("env key '1X' is not valid"));
  CHECK_THAT(Invalid([](auto& s) { s.env["A-B"] = "x"; }), Contains("env key 'A-B'"));
  CHECK_THAT(Invalid([](auto& s) {
               s.env.clear();
               s.env_secrets.clear();
               for (int i = 0; i < 257; ++i) s.env["K" + std::to_string(i)] = "v";
             }),
             Contains("env has 257 entries; the limit is 256"));
  CHECK_THAT(Invalid([](auto& s) { s.env_secrets["MICRO_AUTH_SECRET"] = "a"; }),
             Contains("is reserved"));
  CHECK_THAT(Invalid([](auto& s) {
               s.env["A"] = "x";
               s.env_secrets["A"] = "a";
             }),
             Contains("env.A is both a value and a secret"));
  for (const std::string& path :
       {std::string(), std::string(".a"), std::string("a."), std::string(257, 'a')}) {
    CHECK_THAT(Invalid([&](auto& s) { s.env_secrets["A"] = path; }),
               Contains("is not a config path"));
  }
  CHECK_THAT(Invalid([](auto& s) { s.args.assign(1025, "a"); }), Contains("args has 1025"));
  CHECK_THAT(Invalid([](auto& s) { s.args.assign(2, std::string(70 << 10, 'a')); }),
             Contains("the limit is 131072"));
}

TEST_CASE("ValidateSpec enforces the backoff, health check, stop and resource limits",
          "[manifest]") {
  using std::chrono::hours;
  CHECK_THAT(Invalid([](auto& s) { s.backoff.initial = hours(2); }), Contains("backoff.initial"));
  CHECK_THAT(Invalid([](auto& s) { s.backoff.max = milliseconds(100); }), Contains("backoff.max"));
  CHECK_THAT(Invalid([](auto& s) { s.backoff.max = hours(25); }), Contains("backoff.max"));
  CHECK_THAT(Invalid([](auto& s) { s.backoff.multiplier = 0.5; }), Contains("backoff.multiplier"));
  CHECK_THAT(Invalid([](auto& s) { s.backoff.reset_after = hours(25); }),
             Contains("backoff.reset_after"));
  CHECK_THAT(Invalid([](auto& s) { s.health.interval = milliseconds(50); }),
             Contains("health_check.interval must be 100ms to 1h, not 50ms"));
  CHECK_THAT(Invalid([](auto& s) { s.health.timeout = milliseconds(6000); }),
             Contains("health_check.timeout"));
  CHECK_THAT(Invalid([](auto& s) { s.health.failure_threshold = 0; }),
             Contains("health_check.failure_threshold"));
  CHECK_THAT(Invalid([](auto& s) { s.health.path = "healthz"; }),
             Contains("health_check.path must start with '/'"));
  CHECK_THAT(Invalid([](auto& s) { s.health.address = "localhost"; }),
             Contains("health_check.address must be HOST:PORT"));
  CHECK_THAT(Invalid([](auto& s) {
               s.health.kind = HealthCheckKind::kCommand;
               s.health.command.clear();
             }),
             Contains("health_check.command is missing"));
  CHECK(Invalid([](auto& s) {
          s.health.kind = HealthCheckKind::kNone;
          s.health.path = "";
        }).empty());
  CHECK_THAT(Invalid([](auto& s) { s.stop_signal = SIGKILL; }),
             Contains("stop_signal SIGKILL is not allowed"));
  CHECK_THAT(Invalid([](auto& s) { s.grace = seconds(3601); }), Contains("grace_period"));
  CHECK_THAT(Invalid([](auto& s) { s.memory_bytes = 1 << 20; }), Contains("limits.memory"));
  CHECK(Invalid([](auto& s) { s.memory_bytes = 0; }).empty());
  CHECK_THAT(Invalid([](auto& s) { s.max_processes = 100001; }), Contains("limits.processes"));
  CHECK_THAT(Invalid([](auto& s) { s.logs.max_file_bytes = 1024; }),
             Contains("logs.max_file_size"));
  CHECK_THAT(Invalid([](auto& s) { s.logs.max_files = 101; }), Contains("logs.max_files"));
}

TEST_CASE("a spec survives the trip through the proto messages", "[manifest][proto]") {
  for (ServiceSpec spec : {FullSpec(), ServiceSpec{}}) {
    if (spec.name.empty()) {
      spec.name = "minimal";
      spec.command = "x";
    }
    v1::Service service;
    v1::CreateOptions options;
    SpecToProto(spec, &service, &options);
    auto back = SpecFromProto(service, options);
    REQUIRE(back.ok());
    CheckSame(*back, spec);
  }
  ServiceSpec container = FullSpec();
  container.driver = DriverKind::kContainer;
  container.image = "alpine:3";
  container.network_mode = "bridge";
  container.health.kind = HealthCheckKind::kCommand;
  container.backoff.initial = milliseconds(0);
  container.backoff.max = milliseconds(0);
  container.backoff.reset_after = seconds(0);
  container.logs.max_files = 0;
  container.grace = seconds(0);
  v1::Service service;
  v1::CreateOptions options;
  SpecToProto(container, &service, &options);
  auto back = SpecFromProto(service, options);
  REQUIRE(back.ok());
  CheckSame(*back, container);
}

TEST_CASE("unset proto fields get the documented defaults and bad ones are INVALID_ARGUMENT",
          "[manifest][proto]") {
  v1::Service service;
  service.set_name("svc");
  v1::CreateOptions options;
  options.set_command("/bin/true");
  auto spec = SpecFromProto(service, options);
  REQUIRE(spec.ok());
  ServiceSpec defaults;
  defaults.name = "svc";
  defaults.command = "/bin/true";
  CheckSame(*spec, defaults);

  options.set_stop_signal("TERMINATE");
  CHECK_THAT(std::string(SpecFromProto(service, options).status().message()),
             Contains("stop_signal"));
  options.set_stop_signal("SIGINT");
  options.set_instances(-1);
  CHECK_THAT(std::string(SpecFromProto(service, options).status().message()),
             Contains("instances"));
  options.set_instances(0);
  options.set_restart(static_cast<v1::RestartPolicy>(42));
  CHECK_THAT(std::string(SpecFromProto(service, options).status().message()),
             Contains("restart has the value 42"));
  options.set_restart(v1::RESTART_POLICY_NEVER);
  (*options.mutable_env())["MICRO_SERVICE_NAME"] = "x";
  CHECK(SpecFromProto(service, options).status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("StatusName is the lowercase enum name without its prefix", "[manifest][proto]") {
  CHECK(StatusName(v1::STATUS_RUNNING) == "running");
  CHECK(StatusName(v1::STATUS_BACKOFF) == "backoff");
  CHECK(StatusName(v1::STATUS_ERROR) == "error");
  CHECK(StatusName(v1::STATUS_UNSPECIFIED) == "unknown");
  CHECK(StatusName(static_cast<v1::Status>(99)) == "unknown");
}

}  // namespace
}  // namespace micro::runtime

namespace micro::runtime {
namespace {

TEST_CASE("a default follows the fields set: a short health interval shortens the timeout",
          "[manifest]") {
  auto short_interval = Load("name: a\ncommand: x\nhealth_check: {type: tcp, interval: 1s}\n");
  REQUIRE(short_interval.spec.ok());
  CHECK(short_interval.spec->health.interval == milliseconds(1000));
  CHECK(short_interval.spec->health.timeout == milliseconds(1000));
  auto both =
      Load("name: a\ncommand: x\nhealth_check: {type: tcp, timeout: 300ms, interval: 1s}\n");
  REQUIRE(both.spec.ok());
  CHECK(both.spec->health.timeout == milliseconds(300));
  CHECK(ValidateSpec(*short_interval.spec).ok());  // refused before: timeout 2s > interval
  // A timeout the user wrote is still checked against the interval.
  auto explicit_timeout =
      Load("name: a\ncommand: x\nhealth_check: {type: tcp, interval: 1s, timeout: 2s}\n");
  REQUIRE(explicit_timeout.spec.ok());
  CHECK_THAT(std::string(ValidateSpec(*explicit_timeout.spec).message()),
             Contains("health_check.timeout"));
  auto long_interval = Load("name: a\ncommand: x\nhealth_check: {type: tcp, interval: 30s}\n");
  REQUIRE(long_interval.spec.ok());
  CHECK(long_interval.spec->health.timeout == milliseconds(2000));  // the default
}

}  // namespace
}  // namespace micro::runtime
