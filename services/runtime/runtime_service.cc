#include "services/runtime/runtime_service.h"

#include <fmt/format.h>

#include "core/limits.h"
#include "core/names.h"
#include "rpc/grpc_status.h"
#include "rpc/handler_guard.h"
#include "rpc/watch_stream.h"
#include "services/runtime/runtime_proto.h"

namespace micro::runtime {
namespace {

using LogStream = WatchStream<LogFollower, LogRecord, v1::LogRecord>;

// Records one Logs call returns before it follows, at most; and how far a follower may lag.
constexpr int64_t kDefaultLogLines = 100;
constexpr size_t kFollowLagRecords = 10000;
// What one Logs stream may have queued and not yet sent (its byte budget): a reader that falls
// further behind is closed with RESOURCE_EXHAUSTED. The history it starts with is read within
// kMaxReadBytes of log files, so it fits.
constexpr size_t kLogStreamMaxBytes = 16 << 20;

v1::Status ToProto(Phase phase) {
  switch (phase) {
    case Phase::kPending:
      return v1::STATUS_PENDING;
    case Phase::kBuilding:
      return v1::STATUS_BUILDING;
    case Phase::kStarting:
      return v1::STATUS_STARTING;
    case Phase::kRunning:
      return v1::STATUS_RUNNING;
    case Phase::kStopping:
      return v1::STATUS_STOPPING;
    case Phase::kStopped:
      return v1::STATUS_STOPPED;
    case Phase::kBackoff:
      return v1::STATUS_BACKOFF;
    case Phase::kError:
      return v1::STATUS_ERROR;
  }
  return v1::STATUS_UNSPECIFIED;
}

// The caller's namespace, or why the call cannot go on.
Result<std::string> Namespace(const CallContext& call) {
  if (!call.error.ok()) return call.error;
  return call.ns;
}

// A service given config secrets in its environment could print them: deploying one needs
// the right to read them.
Status CheckSecretsAllowed(const CallContext& call, const ServiceSpec& spec) {
  if (spec.env_secrets.empty()) return absl::OkStatus();
  Status s = CheckRevealSecrets(call);
  if (s.ok()) return s;
  return absl::PermissionDeniedError(std::string(s.message()) +
                                     "; a service given env secrets could print them");
}

// Name and version of a Read/Delete/Update/Logs request; the version may be empty.
Status CheckTarget(const std::string& name, const std::string& version, bool name_required) {
  if (name.empty()) {
    if (name_required) return absl::InvalidArgumentError("name is required");
    return absl::OkStatus();
  }
  if (Status s = limits::CheckServiceName(name, limits::kDeployedServiceNameBytes); !s.ok()) {
    return s;
  }
  if (version.empty()) return absl::OkStatus();
  if (version == "." || version == "..") {
    return absl::InvalidArgumentError("version may not be '" + version + "'");
  }
  return limits::CheckVersion(version);
}

}  // namespace

void ViewToProto(const ServiceView& view, v1::Service* out) {
  SpecToProto(view.spec, out, out->mutable_options());
  DeployedService deployed;
  deployed.created_unix_ms = view.created_unix_ms;
  deployed.updated_unix_ms = view.updated_unix_ms;
  deployed.revision = view.revision;
  deployed.rollout = view.rollout;
  deployed.previous = view.previous;
  deployed.previous_revision = view.previous_revision;
  DeployedToProto(deployed, out);
  out->set_status(ToProto(view.status));
  out->set_error(view.error);
  out->set_instances_running(view.running);
  out->set_instances_desired(view.desired);
  out->set_restarts(view.restarts);
  for (const InstanceView& i : view.instances) {
    v1::Instance* instance = out->add_instances();
    instance->set_id(i.id);
    instance->set_pid(i.pid);
    instance->set_status(ToProto(i.status));
    instance->set_restarts(i.restarts);
    instance->set_last_exit_code(i.last_exit_code);
    instance->set_last_exit_signal(i.last_exit_signal);
    instance->set_started_unix_ms(i.started_unix_ms);
    instance->set_next_start_unix_ms(i.next_start_unix_ms);
    instance->set_address(i.address);
    instance->set_error(i.error);
    instance->set_container_id(i.container_id);
    instance->set_revision(i.revision);
  }
}

grpc::ServerUnaryReactor* RuntimeService::Create(grpc::CallbackServerContext* context,
                                                 const v1::CreateRequest* request,
                                                 v1::CreateResponse* response) try {
  const CallContext call = contexts_.Get(context);
  auto ns = Namespace(call);
  if (!ns.ok()) return FinishUnary(context, ns.status());
  auto spec = SpecFromProto(request->service(), request->options());
  if (!spec.ok()) return FinishUnary(context, spec.status());
  if (Status s = CheckSecretsAllowed(call, *spec); !s.ok()) return FinishUnary(context, s);
  spec->ns = *ns;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto create = [this, reactor, response](ServiceSpec spec) {
    engine_.Create(std::move(spec), [reactor, response](Result<ServiceView> view) {
      if (view.ok()) ViewToProto(*view, response->mutable_service());
      reactor->Finish(ToGrpc(view.status()));
    });
  };
  if (accounts_ == nullptr) {
    create(std::move(*spec));
    return reactor;
  }
  // The account exists before the first instance starts (hashing: off the callback thread).
  account_worker_.Submit([this, reactor, create, spec = std::move(*spec)]() mutable {
    if (Status s = accounts_->Ensure(spec.ns, spec.name); !s.ok()) {
      reactor->Finish(ToGrpc(s));
      return;
    }
    create(std::move(spec));
  });
  return reactor;
} catch (...) {
  return FailedUnary();
}

grpc::ServerUnaryReactor* RuntimeService::Read(grpc::CallbackServerContext* context,
                                               const v1::ReadRequest* request,
                                               v1::ReadResponse* response) try {
  auto ns = Namespace(contexts_.Get(context));
  if (!ns.ok()) return FinishUnary(context, ns.status());
  if (Status s = CheckTarget(request->name(), request->version(), false); !s.ok()) {
    return FinishUnary(context, s);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  engine_.Read(*ns, request->name(), request->version(),
               [reactor, response](Result<std::vector<ServiceView>> views) {
                 if (views.ok()) {
                   for (const ServiceView& view : *views) {
                     ViewToProto(view, response->add_services());
                   }
                 }
                 reactor->Finish(ToGrpc(views.status()));
               });
  return reactor;
} catch (...) {
  return FailedUnary();
}

grpc::ServerUnaryReactor* RuntimeService::Update(grpc::CallbackServerContext* context,
                                                 const v1::UpdateRequest* request,
                                                 v1::UpdateResponse* response) try {
  const CallContext call = contexts_.Get(context);
  auto ns = Namespace(call);
  if (!ns.ok()) return FinishUnary(context, ns.status());
  const v1::Service& service = request->service();
  const std::string version = service.version().empty() ? "latest" : service.version();
  if (Status s = CheckTarget(service.name(), version, true); !s.ok()) {
    return FinishUnary(context, s);
  }
  if (request->rollback() && request->has_options()) {
    return FinishUnary(context, absl::InvalidArgumentError(
                                    "a rollback goes back to the previous options: send no options "
                                    "with it"));
  }
  std::optional<ServiceSpec> spec;
  if (request->has_options()) {
    auto parsed = SpecFromProto(service, request->options());
    if (!parsed.ok()) return FinishUnary(context, parsed.status());
    if (Status s = CheckSecretsAllowed(call, *parsed); !s.ok()) return FinishUnary(context, s);
    parsed->ns = *ns;
    spec = std::move(*parsed);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto update = [this, reactor, response, ns = *ns, name = service.name(), version,
                 rollback = request->rollback()](std::optional<ServiceSpec> spec) {
    auto answer = [reactor, response](Result<ServiceView> view) {
      if (view.ok()) ViewToProto(*view, response->mutable_service());
      reactor->Finish(ToGrpc(view.status()));
    };
    if (rollback) return engine_.Rollback(ns, name, version, std::move(answer));
    engine_.Update(ns, name, version, std::move(spec), std::move(answer));
  };
  if (accounts_ == nullptr) {
    update(std::move(spec));
    return reactor;
  }
  // An update also repairs the account (made again if deleted, its secret set again).
  account_worker_.Submit(
      [this, reactor, update, ns = *ns, name = service.name(), spec = std::move(spec)]() mutable {
        if (Status s = accounts_->Ensure(ns, name); !s.ok()) {
          reactor->Finish(ToGrpc(s));
          return;
        }
        update(std::move(spec));
      });
  return reactor;
} catch (...) {
  return FailedUnary();
}

grpc::ServerUnaryReactor* RuntimeService::Delete(grpc::CallbackServerContext* context,
                                                 const v1::DeleteRequest* request,
                                                 v1::DeleteResponse*) try {
  auto ns = Namespace(contexts_.Get(context));
  if (!ns.ok()) return FinishUnary(context, ns.status());
  if (Status s = CheckTarget(request->name(), request->version(), true); !s.ok()) {
    return FinishUnary(context, s);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const bool all_versions = request->version().empty();
  engine_.Delete(*ns, request->name(), request->version(),
                 [this, reactor, all_versions, ns = *ns, name = request->name()](Status status) {
                   if (!status.ok() || accounts_ == nullptr || !all_versions) {
                     reactor->Finish(ToGrpc(status));
                     return;
                   }
                   account_worker_.Submit([this, reactor, ns, name] {
                     reactor->Finish(ToGrpc(accounts_->Remove(ns, name)));
                   });
                 });
  return reactor;
} catch (...) {
  return FailedUnary();
}

grpc::ServerWriteReactor<v1::LogRecord>* RuntimeService::Logs(grpc::CallbackServerContext* context,
                                                              const v1::LogsRequest* request) try {
  auto ns = Namespace(contexts_.Get(context));
  if (!ns.ok()) return new LogStream(ns.status());
  if (Status s = CheckTarget(request->name(), request->version(), true); !s.ok()) {
    return new LogStream(s);
  }
  if (request->lines() < -1) {
    return new LogStream(absl::InvalidArgumentError(
        fmt::format("lines must be -1 (all), 0 (the default, {}) or more", kDefaultLogLines)));
  }
  auto logs = engine_.Logs(*ns, request->name(), request->version());
  if (!logs.ok()) return new LogStream(logs.status());

  LogQuery query;
  query.instance = request->instance();
  if (!query.instance.empty() &&
      query.instance.find_first_not_of("0123456789") == std::string::npos) {
    query.instance = request->name() + "-" + query.instance;  // `--instance 0`
  }
  query.since_unix_ms = request->since_unix_ms();
  // lines 0 on the wire is "the default"; "none" has a field of its own.
  query.lines = request->no_history()   ? 0
                : request->lines() == 0 ? kDefaultLogLines
                                        : request->lines();
  // The history's byte bound is for the whole call, whatever number of versions it reads.
  query.max_bytes = kMaxReadBytes / static_cast<int64_t>(std::max<size_t>(1, logs->size()));

  const size_t backlog = query.lines < 0 ? 100000 : static_cast<size_t>(query.lines);
  const bool follow = request->follow();
  auto subscribe = [&](std::function<void()> notify) -> Result<std::unique_ptr<LogFollower>> {
    auto queue = std::make_shared<ServiceLogs::Queue>(backlog + kFollowLagRecords,
                                                      kLogStreamMaxBytes, "log records",
                                                      std::move(notify), &contexts_.stream_bytes());
    using Follower = QueueWatcher<LogFollower, LogRecord>;
    if (follow) {
      std::vector<std::pair<std::shared_ptr<ServiceLogs>, uint64_t>> tokens;
      for (const auto& service_logs : *logs) {
        auto token = service_logs->Follow(query, queue);
        if (token.ok()) tokens.emplace_back(service_logs, *token);
      }
      return std::make_unique<Follower>(queue, [tokens] {
        for (const auto& [service_logs, token] : tokens) service_logs->Unsubscribe(token);
      });
    }
    std::vector<LogRecord> records;
    for (const auto& service_logs : *logs) {
      auto read = service_logs->Read(query);
      if (!read.ok()) return read.status();
      records.insert(records.end(), read->begin(), read->end());
    }
    std::stable_sort(records.begin(), records.end(),
                     [](const LogRecord& a, const LogRecord& b) { return a.unix_ms < b.unix_ms; });
    if (query.lines >= 0 && records.size() > static_cast<size_t>(query.lines)) {
      records.erase(records.begin(), records.end() - query.lines);
    }
    for (const LogRecord& r : records) queue->Push(r, r.message.size());
    queue->Close(EndOfLogs());
    return std::make_unique<Follower>(queue, [] {});
  };
  return new LogStream(contexts_.streams(), subscribe,
                       [](const LogRecord& record, v1::LogRecord* out) {
                         out->set_timestamp_unix_ms(record.unix_ms);
                         out->set_instance(record.instance);
                         out->set_stream(record.stream);
                         out->set_message(record.message);
                         out->set_version(record.version);
                       });
} catch (...) {
  return FailedStream<LogStream>();
}

}  // namespace micro::runtime
