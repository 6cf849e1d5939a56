#pragma once

// ServiceSpec <-> micro.runtime.v1 messages: the one translation of the Runtime API's service
// description, shared by the CLI (to send a manifest) and the daemon (to receive it).

#include <string>

#include "core/status.h"
#include "micro/runtime/v1/runtime.pb.h"
#include "runtime/desired_state.h"
#include "runtime/spec.h"

namespace micro::runtime {

// The proto package micro.runtime.v1 is the C++ namespace micro::runtime::v1: plain `v1::` here.

// The spec that `service` (name, version, source, metadata) and `options` describe, with the
// defaults the proto documents for unset fields, validated by ValidateSpec. `ns` is left empty
// (the daemon fills it from the call). INVALID_ARGUMENT names the bad field, including enum
// values this build does not know and stop signals that are not signal names.
[[nodiscard]] Result<ServiceSpec> SpecFromProto(const v1::Service& service,
                                                const v1::CreateOptions& options);

// The reverse: writes every field of `spec` explicitly (never relying on a proto default), so
// SpecFromProto(SpecToProto(spec)) == spec for a valid spec, except backoff jitter, which the
// API does not carry (it reads back as 0.2).
// Either pointer may be null to skip that half. Does not touch status, instances or timestamps.
void SpecToProto(const ServiceSpec& spec, v1::Service* service, v1::CreateOptions* options);

// A deployed service's revision, latest rollout and previous options into `service` (the
// fields Service carries besides the spec), and back. DeployedFromProto fills `deployed` but for
// its spec; INVALID_ARGUMENT if the previous options are invalid.
void DeployedToProto(const DeployedService& deployed, v1::Service* service);
[[nodiscard]] Status DeployedFromProto(const v1::Service& service, DeployedService* deployed);

// "running", "backoff", ...: the enum name, lowercase, without the STATUS_ prefix
// ("unknown" for STATUS_UNSPECIFIED and values this build does not know).
std::string StatusName(v1::Status status);

}  // namespace micro::runtime
