#include "services/runtime/runtime_proto.h"

#include <fmt/format.h>

#include <cctype>

#include "runtime/manifest.h"

namespace micro::runtime {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

Status UnknownEnum(const char* field, int value) {
  return absl::InvalidArgumentError(
      fmt::format("{} has the value {}, which this daemon does not know", field, value));
}

Result<RestartPolicy> FromProto(v1::RestartPolicy policy) {
  switch (policy) {
    case v1::RESTART_POLICY_UNSPECIFIED:
    case v1::RESTART_POLICY_ALWAYS:
      return RestartPolicy::kAlways;
    case v1::RESTART_POLICY_ON_FAILURE:
      return RestartPolicy::kOnFailure;
    case v1::RESTART_POLICY_NEVER:
      return RestartPolicy::kNever;
    default:
      return UnknownEnum("restart", policy);
  }
}

Result<DriverKind> FromProto(v1::Driver driver) {
  switch (driver) {
    case v1::DRIVER_UNSPECIFIED:
    case v1::DRIVER_PROCESS:
      return DriverKind::kProcess;
    case v1::DRIVER_CONTAINER:
      return DriverKind::kContainer;
    default:
      return UnknownEnum("driver", driver);
  }
}

Result<HealthCheckKind> FromProto(v1::HealthCheckType type) {
  switch (type) {
    case v1::HEALTH_CHECK_TYPE_UNSPECIFIED:
      return HealthCheckKind::kNone;
    case v1::HEALTH_CHECK_TYPE_GRPC:
      return HealthCheckKind::kGrpc;
    case v1::HEALTH_CHECK_TYPE_HTTP:
      return HealthCheckKind::kHttp;
    case v1::HEALTH_CHECK_TYPE_TCP:
      return HealthCheckKind::kTcp;
    case v1::HEALTH_CHECK_TYPE_COMMAND:
      return HealthCheckKind::kCommand;
    default:
      return UnknownEnum("health_check.type", type);
  }
}

v1::RestartPolicy ToProto(RestartPolicy policy) {
  switch (policy) {
    case RestartPolicy::kAlways:
      return v1::RESTART_POLICY_ALWAYS;
    case RestartPolicy::kOnFailure:
      return v1::RESTART_POLICY_ON_FAILURE;
    case RestartPolicy::kNever:
      return v1::RESTART_POLICY_NEVER;
  }
  return v1::RESTART_POLICY_UNSPECIFIED;
}

v1::Driver ToProto(DriverKind driver) {
  return driver == DriverKind::kContainer ? v1::DRIVER_CONTAINER : v1::DRIVER_PROCESS;
}

v1::HealthCheckType ToProto(HealthCheckKind kind) {
  switch (kind) {
    case HealthCheckKind::kNone:
      return v1::HEALTH_CHECK_TYPE_UNSPECIFIED;
    case HealthCheckKind::kGrpc:
      return v1::HEALTH_CHECK_TYPE_GRPC;
    case HealthCheckKind::kHttp:
      return v1::HEALTH_CHECK_TYPE_HTTP;
    case HealthCheckKind::kTcp:
      return v1::HEALTH_CHECK_TYPE_TCP;
    case HealthCheckKind::kCommand:
      return v1::HEALTH_CHECK_TYPE_COMMAND;
  }
  return v1::HEALTH_CHECK_TYPE_UNSPECIFIED;
}

// `value`, or `fallback` when it is the proto default 0 (unset).
template <typename T>
T Or(T value, T fallback) {
  return value == T{} ? fallback : value;
}

BackoffPolicy BackoffFromProto(const v1::Backoff& b) {
  BackoffPolicy policy;  // the defaults the proto documents
  if (b.has_initial_ms()) policy.initial = milliseconds(b.initial_ms());
  if (b.has_max_ms()) policy.max = milliseconds(b.max_ms());
  policy.multiplier = Or(b.multiplier(), policy.multiplier);
  if (b.has_reset_after_seconds()) policy.reset_after = seconds(b.reset_after_seconds());
  return policy;
}

Result<HealthCheck> HealthFromProto(const v1::HealthCheck& h) {
  HealthCheck check;
  auto kind = FromProto(h.type());
  if (!kind.ok()) return kind.status();
  check.kind = *kind;
  check.address = h.address();
  check.path = Or(h.path(), check.path);
  check.service = h.service();
  check.command.assign(h.command().begin(), h.command().end());
  check.interval = milliseconds(Or<int64_t>(h.interval_ms(), check.interval.count()));
  check.timeout = milliseconds(Or<int64_t>(h.timeout_ms(), check.timeout.count()));
  check.failure_threshold = Or(h.failure_threshold(), check.failure_threshold);
  check.start_period = milliseconds(h.start_period_ms());
  return check;
}

// Copies the fields that need no conversion or default.
void CopyPlain(const v1::Service& service, const v1::CreateOptions& o, ServiceSpec& spec) {
  spec.name = service.name();
  spec.version = Or(service.version(), spec.version);
  spec.source = service.source();
  spec.metadata.insert(service.metadata().begin(), service.metadata().end());
  spec.command = o.command();
  spec.args.assign(o.args().begin(), o.args().end());
  spec.env.insert(o.env().begin(), o.env().end());
  spec.env_secrets.insert(o.env_secrets().begin(), o.env_secrets().end());
  spec.working_dir = o.working_dir();
  spec.build = o.build();
  spec.instances = Or(o.instances(), spec.instances);
  spec.memory_bytes = o.limits().memory_bytes();
  spec.max_processes = o.limits().processes();
  spec.image = o.image();
  spec.network_mode = o.network_mode();
  spec.logs.max_file_bytes = Or(o.logs().max_file_bytes(), spec.logs.max_file_bytes);
  if (o.logs().has_max_files()) spec.logs.max_files = o.logs().max_files();
  if (o.has_grace_period_seconds()) spec.grace = seconds(o.grace_period_seconds());
  const v1::UpdatePolicy& u = o.update();
  if (u.has_max_parallel()) spec.update.max_parallel = u.max_parallel();
  if (u.has_min_healthy_time_ms())
    spec.update.min_healthy_time = milliseconds(u.min_healthy_time_ms());
  if (u.has_healthy_deadline_ms())
    spec.update.healthy_deadline = milliseconds(u.healthy_deadline_ms());
  if (u.has_auto_revert()) spec.update.auto_revert = u.auto_revert();
}

}  // namespace

Result<ServiceSpec> SpecFromProto(const v1::Service& service, const v1::CreateOptions& options) {
  ServiceSpec spec;
  CopyPlain(service, options, spec);
  auto restart = FromProto(options.restart());
  if (!restart.ok()) return restart.status();
  spec.restart = *restart;
  auto driver = FromProto(options.driver());
  if (!driver.ok()) return driver.status();
  spec.driver = *driver;
  spec.backoff = BackoffFromProto(options.backoff());
  auto health = HealthFromProto(options.health_check());
  if (!health.ok()) return health.status();
  spec.health = std::move(*health);
  if (!options.stop_signal().empty()) {
    auto signal = ParseSignal(options.stop_signal());
    if (!signal.ok()) {
      return absl::InvalidArgumentError("stop_signal: " + std::string(signal.status().message()));
    }
    spec.stop_signal = *signal;
  }
  if (Status s = ValidateSpec(spec); !s.ok()) return s;
  return spec;
}

void SpecToProto(const ServiceSpec& spec, v1::Service* service, v1::CreateOptions* options) {
  if (service != nullptr) {
    service->set_name(spec.name);
    service->set_version(spec.version);
    service->set_source(spec.source);
    service->mutable_metadata()->insert(spec.metadata.begin(), spec.metadata.end());
  }
  if (options == nullptr) return;
  v1::CreateOptions& o = *options;
  o.set_command(spec.command);
  for (const std::string& arg : spec.args) o.add_args(arg);
  o.mutable_env()->insert(spec.env.begin(), spec.env.end());
  o.mutable_env_secrets()->insert(spec.env_secrets.begin(), spec.env_secrets.end());
  o.set_working_dir(spec.working_dir);
  o.set_build(spec.build);
  o.set_instances(spec.instances);
  o.set_restart(ToProto(spec.restart));
  v1::Backoff& b = *o.mutable_backoff();
  b.set_initial_ms(spec.backoff.initial.count());
  b.set_max_ms(spec.backoff.max.count());
  b.set_multiplier(spec.backoff.multiplier);
  b.set_reset_after_seconds(spec.backoff.reset_after.count());
  v1::HealthCheck& h = *o.mutable_health_check();
  h.set_type(ToProto(spec.health.kind));
  h.set_address(spec.health.address);
  h.set_path(spec.health.path);
  h.set_service(spec.health.service);
  for (const std::string& arg : spec.health.command) h.add_command(arg);
  h.set_interval_ms(spec.health.interval.count());
  h.set_timeout_ms(spec.health.timeout.count());
  h.set_failure_threshold(spec.health.failure_threshold);
  h.set_start_period_ms(spec.health.start_period.count());
  o.set_stop_signal(SignalName(spec.stop_signal));
  o.set_grace_period_seconds(spec.grace.count());
  o.mutable_limits()->set_memory_bytes(spec.memory_bytes);
  o.mutable_limits()->set_processes(spec.max_processes);
  o.set_driver(ToProto(spec.driver));
  o.set_image(spec.image);
  o.set_network_mode(spec.network_mode);
  o.mutable_logs()->set_max_file_bytes(spec.logs.max_file_bytes);
  o.mutable_logs()->set_max_files(spec.logs.max_files);
  v1::UpdatePolicy& u = *o.mutable_update();
  u.set_max_parallel(spec.update.max_parallel);
  u.set_min_healthy_time_ms(spec.update.min_healthy_time.count());
  u.set_healthy_deadline_ms(spec.update.healthy_deadline.count());
  u.set_auto_revert(spec.update.auto_revert);
}

// RolloutState and v1::RolloutState have the same values, in the same order.
static_assert(static_cast<int>(RolloutState::kRunning) == v1::ROLLOUT_STATE_RUNNING);
static_assert(static_cast<int>(RolloutState::kRollingBack) == v1::ROLLOUT_STATE_ROLLING_BACK);
static_assert(static_cast<int>(RolloutState::kSucceeded) == v1::ROLLOUT_STATE_SUCCEEDED);
static_assert(static_cast<int>(RolloutState::kRolledBack) == v1::ROLLOUT_STATE_ROLLED_BACK);
static_assert(static_cast<int>(RolloutState::kFailed) == v1::ROLLOUT_STATE_FAILED);

void DeployedToProto(const DeployedService& deployed, v1::Service* service) {
  service->set_created_unix_ms(deployed.created_unix_ms);
  service->set_updated_unix_ms(deployed.updated_unix_ms);
  service->set_revision(deployed.revision);
  v1::Rollout& r = *service->mutable_rollout();
  r.set_state(static_cast<v1::RolloutState>(deployed.rollout.state));
  r.set_reason(deployed.rollout.reason);
  r.set_revision(deployed.rollout.revision);
  r.set_started_unix_ms(deployed.rollout.started_unix_ms);
  r.set_finished_unix_ms(deployed.rollout.finished_unix_ms);
  r.set_instances_updated(deployed.rollout.instances_updated);
  if (deployed.previous) {
    SpecToProto(*deployed.previous, nullptr, service->mutable_previous_options());
    service->set_previous_revision(deployed.previous_revision);
    service->set_previous_source(deployed.previous->source);
  }
}

Status DeployedFromProto(const v1::Service& service, DeployedService* deployed) {
  deployed->created_unix_ms = service.created_unix_ms();
  deployed->updated_unix_ms = service.updated_unix_ms();
  deployed->revision = std::max<int64_t>(1, service.revision());
  const v1::Rollout& r = service.rollout();
  const int state = r.state();
  deployed->rollout.state = state >= 0 && state <= static_cast<int>(RolloutState::kFailed)
                                ? static_cast<RolloutState>(state)
                                : RolloutState::kNone;
  deployed->rollout.reason = r.reason();
  deployed->rollout.revision = r.revision();
  deployed->rollout.started_unix_ms = r.started_unix_ms();
  deployed->rollout.finished_unix_ms = r.finished_unix_ms();
  deployed->previous.reset();
  deployed->previous_revision = 0;
  if (service.has_previous_options()) {
    v1::Service identity;
    identity.set_name(service.name());
    identity.set_version(service.version());
    identity.set_source(service.previous_source());
    *identity.mutable_metadata() = service.metadata();
    auto previous = SpecFromProto(identity, service.previous_options());
    if (!previous.ok()) return previous.status();
    deployed->previous = std::move(*previous);
    deployed->previous_revision = service.previous_revision();
  }
  return absl::OkStatus();
}

std::string StatusName(v1::Status status) {
  if (status == v1::STATUS_UNSPECIFIED || !v1::Status_IsValid(status)) return "unknown";
  std::string name = v1::Status_Name(status).substr(sizeof("STATUS_") - 1);
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

}  // namespace micro::runtime
