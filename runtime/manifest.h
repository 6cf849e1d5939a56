#pragma once

// The service manifest (micro.yaml): parsing it into a ServiceSpec, and the one validation of a
// ServiceSpec that the CLI (before it calls the daemon) and the daemon (on every Create/Update)
// both run. docs/runtime.md has the user-facing reference.
//
// Fields of a manifest (every other key is an error naming the key and its line):
//
// | field                          | type                      | default             |
// |--------------------------------|---------------------------|---------------------|
// | name                           | string (required)         | -                   |
// | version                        | string                    | latest              |
// | metadata                       | map string -> scalar      | {}                  |
// | command                        | string                    | - (required unless  |
// |                                |                           |   driver: container)|
// | args                           | list of scalars           | []                  |
// | build                          | shell command             | none                |
// | env                            | map string -> scalar      | {}                  |
// | working_dir                    | path, relative to the     | the manifest's      |
// |                                |   manifest's folder       |   folder            |
// | instances                      | whole number              | 1                   |
// | restart                        | always|on-failure|never   | always              |
// | backoff.initial                | duration                  | 1s                  |
// | backoff.max                    | duration                  | 1m                  |
// | backoff.multiplier             | number                    | 2                   |
// | backoff.reset_after            | duration (whole seconds)  | 1m                  |
// | health_check.type              | grpc|http|tcp|command     | (no health check)   |
// | health_check.address           | HOST:PORT                 | the service address |
// | health_check.path              | string starting with '/'  | /                   |
// | health_check.service           | string (grpc)             | the whole server    |
// | health_check.command           | list of scalars           | -                   |
// | health_check.interval          | duration                  | 10s                 |
// | health_check.timeout           | duration                  | 2s                  |
// | health_check.failure_threshold | whole number              | 3                   |
// | health_check.start_period      | duration                  | 0s                  |
// | stop_signal                    | SIGTERM, TERM, SIGINT, ...| SIGTERM             |
// | grace_period                   | duration (whole seconds)  | 10s                 |
// | limits.memory                  | size                      | 0 (no limit)        |
// | limits.processes               | whole number              | 0 (no limit)        |
// | driver                         | process|container         | process             |
// | image                          | string (container)        | -                   |
// | network_mode                   | string (container)        | host                |
// | logs.max_file_size             | size                      | 10MiB               |
// | logs.max_files                 | whole number              | 5                   |
// | update.max_parallel            | whole number (0: all at   | 1                   |
// |                                |   once)                   |                     |
// | update.min_healthy_time        | duration                  | 10s                 |
// | update.healthy_deadline        | duration                  | 5m                  |
// | update.auto_revert             | true|false                | true                |
//
// Durations, sizes and signals are written as runtime/units.h reads them.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/limits.h"
#include "core/status.h"
#include "runtime/spec.h"
#include "runtime/units.h"  // the parsers of durations, sizes and signals

namespace micro::runtime {

// ---- Limits ValidateSpec enforces ----
// Names and metadata follow core/limits.h (the deployed-service name rule says why it is 63).
inline constexpr size_t kMaxServiceNameBytes = limits::kDeployedServiceNameBytes;
inline constexpr size_t kMaxVersionBytes = limits::kVersionBytes;
inline constexpr size_t kMaxMetadataEntries = limits::kMetadataEntries;
inline constexpr size_t kMaxMetadataKeyBytes = limits::kMetadataKeyBytes;
inline constexpr size_t kMaxMetadataValueBytes = limits::kMetadataValueBytes;
inline constexpr int kMinInstances = 1;
inline constexpr int kMaxInstances = 1000;
inline constexpr size_t kMaxEnvEntries = 256;  // values and secrets together
inline constexpr size_t kMaxSecretPathBytes = 256;
inline constexpr size_t kMaxSecretValueBytes = 32 << 10;  // each env_secrets value, resolved
inline constexpr size_t kMaxArgs = 1024;
// command + args + env ("KEY=VALUE") + build, each counted with its terminating NUL: well under
// the kernel's ARG_MAX, so an exec never fails with E2BIG.
inline constexpr size_t kMaxCommandLineBytes = 128 << 10;
inline constexpr std::chrono::milliseconds kMaxBackoffInitial = std::chrono::hours(1);
inline constexpr std::chrono::milliseconds kMaxBackoffMax = std::chrono::hours(24);
inline constexpr double kMinBackoffMultiplier = 1.0;
inline constexpr double kMaxBackoffMultiplier = 100.0;
inline constexpr std::chrono::seconds kMaxBackoffResetAfter = std::chrono::hours(24);
inline constexpr std::chrono::milliseconds kMinHealthInterval{100};
inline constexpr std::chrono::milliseconds kMaxHealthInterval = std::chrono::hours(1);
inline constexpr std::chrono::milliseconds kMinHealthTimeout{10};  // at most the interval
inline constexpr int kMaxFailureThreshold = 100;
inline constexpr std::chrono::milliseconds kMaxStartPeriod = std::chrono::hours(1);
inline constexpr std::chrono::seconds kMaxGrace = std::chrono::hours(1);
inline constexpr int64_t kMinMemoryBytes = int64_t{4} << 20;  // or 0: no limit
inline constexpr int64_t kMaxProcesses = 100000;
inline constexpr int64_t kMinLogFileBytes = int64_t{4} << 10;
inline constexpr int64_t kMaxLogFileBytes = int64_t{1} << 30;
inline constexpr int kMaxLogFiles = 100;
inline constexpr std::chrono::milliseconds kMaxMinHealthyTime = std::chrono::hours(1);
inline constexpr std::chrono::milliseconds kMinHealthyDeadline{100};  // above min_healthy_time
inline constexpr std::chrono::milliseconds kMaxHealthyDeadline = std::chrono::hours(24);

// Environment variables the daemon sets for every instance; a spec may not set a key starting
// with one of these.
inline constexpr const char* kReservedEnvPrefixes[] = {
    "MICRO_SERVICE_", "MICRO_SERVER", "MICRO_NAMESPACE", "MICRO_INSTANCE", "MICRO_AUTH_"};

// The stop signals a service may choose.
inline constexpr const char* kStopSignals[] = {"SIGTERM", "SIGINT",  "SIGQUIT",
                                               "SIGHUP",  "SIGUSR1", "SIGUSR2"};

// Reads the manifest at `path`: a folder holding micro.yaml (or micro.yml), or a manifest file.
// The result has `source` = the manifest's folder (absolute) and a relative `working_dir`
// resolved against that folder (default: the folder itself); `ns` is left empty. Errors:
// NOT_FOUND when there is no manifest; INVALID_ARGUMENT for YAML syntax, an unknown field, a
// missing name or a value of the wrong type or form, naming the file, line and field. The spec
// is NOT validated: call ValidateSpec (after applying any overrides).
[[nodiscard]] Result<ServiceSpec> LoadManifest(const std::string& path);

// Checks every field of `spec` against the limits above. INVALID_ARGUMENT names the first bad
// field as the manifest spells it ("health_check.timeout") and says what is allowed.
[[nodiscard]] Status ValidateSpec(const ServiceSpec& spec);

}  // namespace micro::runtime
