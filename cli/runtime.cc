// `micro run`, `update`, `kill`, `status` and `logs`: the users' own services, deployed to the
// daemon's runtime (micro.runtime.v1.Runtime). A manifest is parsed and validated here, with the
// same code the daemon uses, so a bad one never reaches the daemon.
#include <google/protobuf/util/json_util.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>
#include <thread>
#include <variant>

#include "cli/client.h"
#include "cli/commands.h"
#include "cli/stop_signals.h"
#include "cli/table.h"
#include "micro/runtime/v1/runtime.grpc.pb.h"
#include "runtime/manifest.h"
#include "services/runtime/runtime_proto.h"

namespace micro::cli {
namespace {

namespace v1 = micro::runtime::v1;
namespace fs = std::filesystem;
using runtime::ServiceSpec;

// Prints `error: <message>; see 'micro <command> --help'` and returns the usage exit code, 2.
int UsageError(const std::string& command, const std::string& message) {
  std::cerr << "error: " << message << "; see 'micro " << command << " --help'\n";
  return 2;
}

// Prints `error: <message>` for input that is wrong in itself (a manifest), exit code 2.
int InputError(const Status& status) {
  std::cerr << "error: " << status.message() << "\n";
  return 2;
}

std::unique_ptr<v1::Runtime::Stub> Stub(const ClientOptions& options) {
  return v1::Runtime::NewStub(Connect(options));
}

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// `path` made absolute against the working directory, without "." / ".." or a trailing slash.
std::string AbsolutePath(const std::string& path) {
  std::error_code ec;
  fs::path absolute = fs::absolute(path, ec).lexically_normal();
  if (!absolute.has_filename() && absolute.has_parent_path()) absolute = absolute.parent_path();
  return absolute.string();
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// True if `arg` names a manifest rather than a deployed service: it has a '/' (names cannot),
// ends in .yaml/.yml, or is a folder holding micro.yaml or micro.yml.
bool IsManifestPath(const std::string& arg) {
  if (arg.find('/') != std::string::npos || EndsWith(arg, ".yaml") || EndsWith(arg, ".yml")) {
    return true;
  }
  std::error_code ec;
  return fs::is_regular_file(fs::path(arg) / "micro.yaml", ec) ||
         fs::is_regular_file(fs::path(arg) / "micro.yml", ec);
}

// ---- micro run ----

// --name, --version, --instances, --restart, --env, --env-secret and --working-dir over `spec`.
Status ApplyOverrides(const ParsedArgs& args, ServiceSpec& spec) {
  if (args.Has("name")) spec.name = args.Get("name");
  if (args.Has("version")) spec.version = args.Get("version");
  if (args.Has("instances")) {
    const std::string text = args.Get("instances");
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), spec.instances);
    if (ec != std::errc() || end != text.data() + text.size()) {
      return absl::InvalidArgumentError("--instances must be a whole number, not '" + text + "'");
    }
  }
  if (args.Has("restart")) {
    const std::string policy = args.Get("restart");
    if (policy == "always") {
      spec.restart = runtime::RestartPolicy::kAlways;
    } else if (policy == "on-failure") {
      spec.restart = runtime::RestartPolicy::kOnFailure;
    } else if (policy == "never") {
      spec.restart = runtime::RestartPolicy::kNever;
    } else {
      return absl::InvalidArgumentError("--restart must be always, on-failure or never, not '" +
                                        policy + "'");
    }
  }
  for (const std::string& entry : args.All("env")) {
    const size_t eq = entry.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError("--env takes KEY=VALUE, not '" + entry + "'");
    }
    spec.env_secrets.erase(entry.substr(0, eq));
    spec.env[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  for (const std::string& entry : args.All("env-secret")) {
    const size_t eq = entry.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == entry.size()) {
      return absl::InvalidArgumentError("--env-secret takes KEY=CONFIG_PATH, not '" + entry + "'");
    }
    spec.env.erase(entry.substr(0, eq));
    spec.env_secrets[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  if (args.Has("working-dir")) spec.working_dir = AbsolutePath(args.Get("working-dir"));
  return absl::OkStatus();
}

// The spec of `micro run --name NAME -- COMMAND [ARGS...]`: a prebuilt program, run from here.
ServiceSpec ProgramSpec(const std::vector<std::string>& command) {
  ServiceSpec spec;
  spec.command = command[0];
  if (spec.command.find('/') != std::string::npos) spec.command = AbsolutePath(spec.command);
  spec.args.assign(command.begin() + 1, command.end());
  spec.working_dir = AbsolutePath(".");
  spec.source = spec.command;
  for (const std::string& arg : spec.args) spec.source += " " + arg;
  return spec;
}

// The spec `micro run` deploys, validated; or the exit code of a usage or manifest error.
std::variant<ServiceSpec, int> RunSpec(const ParsedArgs& args) {
  const bool has_path = !args.positionals.empty();
  if (has_path && !args.rest.empty()) {
    return UsageError("run", "give either PATH or '-- COMMAND', not both");
  }
  ServiceSpec spec;
  std::string where;  // prefixes validation errors
  if (has_path) {
    const std::string& path = args.positionals[0];
    std::error_code ec;
    if (fs::is_regular_file(path, ec) && ::access(path.c_str(), X_OK) == 0 &&
        !EndsWith(path, ".yaml") && !EndsWith(path, ".yml")) {
      return UsageError("run", path +
                                   " is a program, not a manifest; run it with 'micro run "
                                   "--name NAME -- " +
                                   path + "'");
    }
    auto loaded = runtime::LoadManifest(path);
    if (!loaded.ok()) return InputError(loaded.status());
    spec = std::move(*loaded);
    where = path + ": ";
  } else if (!args.rest.empty()) {
    if (!args.Has("name")) {
      return UsageError(
          "run", "--name is required with '-- COMMAND': micro run --name NAME -- " + args.rest[0]);
    }
    spec = ProgramSpec(args.rest);
  } else if (args.Has("name")) {
    return UsageError("run",
                      "missing COMMAND: put the program to run after '--', as in 'micro "
                      "run --name " +
                          args.Get("name") + " -- ./server'");
  } else {
    return UsageError("run", "missing PATH (a folder with micro.yaml) or '-- COMMAND'");
  }
  if (Status s = ApplyOverrides(args, spec); !s.ok())
    return UsageError("run", std::string(s.message()));
  if (Status s = runtime::ValidateSpec(spec); !s.ok()) {
    return InputError(absl::InvalidArgumentError(where + std::string(s.message())));
  }
  return spec;
}

int WaitForDeploy(const std::string& name, const std::string& version, const ParsedArgs& args,
                  const ClientOptions& options);
int WaitForRollout(const v1::Service& started, bool rollback, const ParsedArgs& args,
                   const ClientOptions& options);
int SendUpdate(const v1::UpdateRequest& request, const ParsedArgs& args,
               const ClientOptions& options);

int Run(const ParsedArgs& args, const ClientOptions& options) {
  auto spec = RunSpec(args);
  if (const int* exit_code = std::get_if<int>(&spec)) return *exit_code;
  v1::CreateRequest request;
  runtime::SpecToProto(std::get<ServiceSpec>(spec), request.mutable_service(),
                       request.mutable_options());
  grpc::ClientContext context;
  Prepare(context, options);
  v1::CreateResponse response;
  grpc::Status status = Stub(options)->Create(&context, request, &response);
  if (!status.ok()) return ReportError(status, options);
  const v1::Service& s = response.service();
  const std::string& name = s.name().empty() ? request.service().name() : s.name();
  const std::string& version = s.version().empty() ? request.service().version() : s.version();
  if (options.output == Output::kJson) {
    PrintJson(response);
  } else {
    const int instances =
        s.instances_desired() > 0 ? s.instances_desired() : request.options().instances();
    std::cout << "created " << name << " (version " << version << "): " << instances
              << " instance(s)\n";
    if (!args.Has("wait")) {
      std::cout << "see it with 'micro status " << name << "' and its logs with 'micro logs "
                << name << " -f'\n";
    }
  }
  return args.Has("wait") ? WaitForDeploy(name, version, args, options) : 0;
}

// ---- micro update / kill ----

// Update and kill answer once the instances have stopped, which takes up to their grace period
// (SIGKILL comes after it). Unless --timeout says otherwise, wait that long and a margin.
void PrepareStop(grpc::ClientContext& context, const ParsedArgs& args, const ClientOptions& options,
                 const std::string& name, const std::string& version) {
  Prepare(context, options);
  if (args.Has("timeout")) return;
  v1::ReadRequest request;
  request.set_name(name);
  request.set_version(version);
  grpc::ClientContext read_context;
  Prepare(read_context, options);
  v1::ReadResponse response;
  if (!Stub(options)->Read(&read_context, request, &response).ok()) return;
  int64_t grace = 0;
  for (const v1::Service& service : response.services()) {
    grace = std::max<int64_t>(grace, service.options().grace_period_seconds());
  }
  constexpr int64_t kMarginSeconds = 15;
  if (grace + kMarginSeconds > options.timeout_seconds) {
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(grace + kMarginSeconds));
  }
}

int Update(const ParsedArgs& args, const ClientOptions& options) {
  if (args.positionals.empty()) return UsageError("update", "missing NAME or PATH");
  const std::string& target = args.positionals[0];
  v1::UpdateRequest request;
  if (IsManifestPath(target)) {
    auto spec = runtime::LoadManifest(target);
    if (!spec.ok()) return InputError(spec.status());
    if (args.Has("version")) spec->version = args.Get("version");
    if (Status s = runtime::ValidateSpec(*spec); !s.ok()) {
      return InputError(absl::InvalidArgumentError(target + ": " + std::string(s.message())));
    }
    runtime::SpecToProto(*spec, request.mutable_service(), request.mutable_options());
  } else {
    request.mutable_service()->set_name(target);
    request.mutable_service()->set_version(args.Get("version"));
  }
  return SendUpdate(request, args, options);
}

// Sends an Update (or a rollback) and reports it; with --wait, follows it to the end.
int SendUpdate(const v1::UpdateRequest& request, const ParsedArgs& args,
               const ClientOptions& options) {
  const bool rollback = request.rollback();
  grpc::ClientContext context;
  PrepareStop(context, args, options, request.service().name(),
              request.service().version().empty() ? "latest" : request.service().version());
  v1::UpdateResponse response;
  grpc::Status status =
      WithProgress((rollback ? "rolling back " : "updating ") + request.service().name(),
                   [&] { return Stub(options)->Update(&context, request, &response); });
  if (!status.ok()) return ReportError(status, options);
  v1::Service s = response.service();
  if (s.name().empty()) s.set_name(request.service().name());
  const bool rolling = s.rollout().state() == v1::ROLLOUT_STATE_RUNNING ||
                       s.rollout().state() == v1::ROLLOUT_STATE_ROLLING_BACK;
  if (options.output != Output::kJson) {
    std::cout << (rollback ? "rolling back " : "updated ") << s.name();
    if (!s.version().empty()) std::cout << " (version " << s.version() << ")";
    if (rolling) {
      std::cout << " to revision " << s.revision() << ": replacing " << s.instances_desired()
                << " instance(s), " << std::max(1, s.options().update().max_parallel())
                << " at a time; see 'micro status " << s.name() << "'";
    } else if (s.instances_desired() > 0) {
      std::cout << ": restarted " << s.instances_desired() << " instance(s) at once";
    }
    std::cout << "\n";
  }
  if (!args.Has("wait")) {
    if (options.output == Output::kJson) PrintJson(response);
    return 0;
  }
  if (rolling) return WaitForRollout(s, rollback, args, options);
  const int code = WaitForDeploy(s.name(), s.version(), args, options);
  if (options.output == Output::kJson && code == 0) PrintJson(response);
  return code;
}

int Rollback(const ParsedArgs& args, const ClientOptions& options) {
  if (args.positionals.empty()) return UsageError("rollback", "missing NAME");
  v1::UpdateRequest request;
  request.mutable_service()->set_name(args.positionals[0]);
  request.mutable_service()->set_version(args.Get("version"));
  request.set_rollback(true);
  return SendUpdate(request, args, options);
}

int Kill(const ParsedArgs& args, const ClientOptions& options) {
  if (args.positionals.empty()) return UsageError("kill", "missing NAME");
  v1::DeleteRequest request;
  request.set_name(args.positionals[0]);
  request.set_version(args.Get("version"));
  grpc::ClientContext context;
  PrepareStop(context, args, options, request.name(), request.version());
  v1::DeleteResponse response;
  grpc::Status status = WithProgress("stopping " + request.name(), [&] {
    return Stub(options)->Delete(&context, request, &response);
  });
  if (!status.ok()) return ReportError(status, options);
  if (options.output == Output::kJson) {
    PrintJson(response);
    return 0;
  }
  std::cout << "stopped and removed " << request.name();
  if (!request.version().empty()) std::cout << " (version " << request.version() << ")";
  std::cout << "\n";
  return 0;
}

// ---- micro status ----

// 5s, 3m12s, 2h5m, 3d4h: two units at most, the second dropped when zero.
std::string Human(int64_t ms) {
  const int64_t s = std::max<int64_t>(ms, 0) / 1000;
  const auto two = [](int64_t big, const char* big_unit, int64_t small, const char* small_unit) {
    return std::to_string(big) + big_unit + (small == 0 ? "" : std::to_string(small) + small_unit);
  };
  if (s < 60) return std::to_string(s) + "s";
  if (s < 3600) return two(s / 60, "m", s % 60, "s");
  if (s < 86400) return two(s / 3600, "h", s / 60 % 60, "m");
  return two(s / 86400, "d", s / 3600 % 24, "h");
}

std::string OrDash(std::string text) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  return text.empty() ? "-" : text;
}

bool HasExited(const v1::Instance& i) {
  return i.last_exit_signal() != 0 || i.last_exit_code() >= 0;
}
bool Failed(const v1::Instance& i) { return i.last_exit_signal() != 0 || i.last_exit_code() > 0; }

// "code 1", "signal SIGKILL", or "-" if it has not exited yet.
std::string LastExit(const v1::Instance& i) {
  if (i.last_exit_signal() != 0) return "signal " + runtime::SignalName(i.last_exit_signal());
  if (i.last_exit_code() >= 0) return "code " + std::to_string(i.last_exit_code());
  return "-";
}

// The last exit worth showing for a service: a failure if any instance had one.
std::string ServiceLastExit(const v1::Service& s) {
  const auto& instances = s.instances();
  auto it = std::find_if(instances.begin(), instances.end(), Failed);
  if (it == instances.end()) it = std::find_if(instances.begin(), instances.end(), HasExited);
  return it == instances.end() ? "-" : LastExit(*it);
}

bool IsUp(const v1::Instance& i) {
  return (i.status() == v1::STATUS_RUNNING || i.status() == v1::STATUS_STARTING) &&
         i.started_unix_ms() > 0;
}

// Since the start of the oldest instance that is up.
std::string Uptime(const v1::Service& s, int64_t now) {
  int64_t oldest = 0;
  for (const v1::Instance& i : s.instances()) {
    if (IsUp(i) && (oldest == 0 || i.started_unix_ms() < oldest)) oldest = i.started_unix_ms();
  }
  return oldest == 0 ? "-" : Human(now - oldest);
}

std::string NextStart(const v1::Instance& i, int64_t now) {
  if (i.status() != v1::STATUS_BACKOFF || i.next_start_unix_ms() == 0) return "-";
  const int64_t wait = i.next_start_unix_ms() - now;
  if (wait <= 0) return "now";
  if (wait < 60'000) {
    char text[32];
    std::snprintf(text, sizeof text, "in %.1fs", static_cast<double>(wait) / 1000);
    return text;
  }
  return "in " + Human(wait);
}

// One line on the service's latest update, or "" when there is nothing to say: "revision 3,
// updating: 1/3 instance(s) healthy" or "revision 2, rolled back: revision 3 failed: ...".
std::string RolloutLine(const v1::Service& s) {
  const v1::Rollout& r = s.rollout();
  const std::string head = "revision " + std::to_string(s.revision());
  switch (r.state()) {
    case v1::ROLLOUT_STATE_RUNNING:
      return head + ", updating: " + std::to_string(r.instances_updated()) + "/" +
             std::to_string(s.instances_desired()) + " instance(s) of it healthy";
    case v1::ROLLOUT_STATE_ROLLING_BACK:
      return head + ", going back to it: " + std::to_string(r.instances_updated()) + "/" +
             std::to_string(s.instances_desired()) + " instance(s) healthy; " + r.reason();
    case v1::ROLLOUT_STATE_SUCCEEDED:
      return head + ", updated";
    case v1::ROLLOUT_STATE_ROLLED_BACK:
      return head + ", rolled back: " + r.reason();
    case v1::ROLLOUT_STATE_FAILED:
      return head + ", update failed: " + r.reason();
    default:
      return s.revision() > 1 ? head : "";
  }
}

void PrintInstances(const v1::Service& s, int64_t now) {
  const std::string rollout = RolloutLine(s);
  if (!rollout.empty()) std::cout << rollout << "\n";
  Table table({"ID", "REVISION", "PID", "STATUS", "RESTARTS", "STARTED", "LAST EXIT", "NEXT START",
               "ERROR"});
  for (const v1::Instance& i : s.instances()) {
    table.Add({i.id(), std::to_string(i.revision()), i.pid() == 0 ? "-" : std::to_string(i.pid()),
               runtime::StatusName(i.status()), std::to_string(i.restarts()),
               i.started_unix_ms() == 0 ? "-" : Human(now - i.started_unix_ms()) + " ago",
               LastExit(i), NextStart(i, now), OrDash(i.error())});
  }
  table.Print(std::cout);
}

void PrintStatus(const v1::ReadResponse& response, bool with_instances) {
  const int64_t now = NowUnixMs();
  Table table(
      {"NAME", "VERSION", "STATUS", "INSTANCES", "RESTARTS", "UPTIME", "LAST EXIT", "ERROR"});
  for (const v1::Service& s : response.services()) {
    table.Add({s.name(), s.version(), runtime::StatusName(s.status()),
               std::to_string(s.instances_running()) + "/" + std::to_string(s.instances_desired()),
               std::to_string(s.restarts()), Uptime(s, now), ServiceLastExit(s),
               OrDash(s.error())});
  }
  table.Print(std::cout);
  if (!with_instances) return;
  for (const v1::Service& s : response.services()) {
    std::cout << "\n";
    if (response.services_size() > 1) {
      std::cout << "instances of " << s.name() << " (version " << s.version() << "):\n";
    }
    PrintInstances(s, now);
  }
}

int StatusBody(const ParsedArgs& args, const ClientOptions& options) {
  v1::ReadRequest request;
  if (!args.positionals.empty()) request.set_name(args.positionals[0]);
  request.set_version(args.Get("version"));
  grpc::ClientContext context;
  Prepare(context, options);
  v1::ReadResponse response;
  grpc::Status status = Stub(options)->Read(&context, request, &response);
  if (!status.ok()) return ReportError(status, options);
  if (options.output == Output::kJson) {
    PrintJson(response);
  } else if (response.services_size() == 0) {
    std::cout << "no services deployed; deploy one with 'micro run PATH'\n";
  } else {
    PrintStatus(response, !request.name().empty());
  }
  return 0;
}

// ---- micro logs ----

// Local time, ISO-8601 with milliseconds and the UTC offset: 2024-05-01T14:03:07.123+02:00.
std::string LocalTime(int64_t unix_ms) {
  const std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000 - (unix_ms % 1000 < 0));
  const int64_t ms = (unix_ms % 1000 + 1000) % 1000;
  std::tm tm{};
  localtime_r(&seconds, &tm);
  char date[32], zone[8];
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
  std::strftime(zone, sizeof zone, "%z", &tm);  // +0200
  char out[64];
  std::snprintf(out, sizeof out, "%s.%03d%.3s:%.2s", date, static_cast<int>(ms), zone, zone + 3);
  return out;
}

void PrintRecord(const v1::LogRecord& record, bool json) {
  if (json) {
    google::protobuf::util::JsonPrintOptions options;
    options.preserve_proto_field_names = true;
    options.always_print_primitive_fields = true;
    std::string line;
    (void)google::protobuf::util::MessageToJsonString(record, &line, options);
    std::cout << line << "\n";
    return;
  }
  std::string message = record.message();
  if (!message.empty() && message.back() == '\n') message.pop_back();
  std::cout << LocalTime(record.timestamp_unix_ms()) << " " << record.instance() << " ["
            << record.stream() << "] " << message << "\n";
}

// ---- micro run --wait, micro update --wait ----

const char* StatusWord(v1::Status status) {
  switch (status) {
    case v1::STATUS_PENDING:
      return "pending";
    case v1::STATUS_BUILDING:
      return "building";
    case v1::STATUS_STARTING:
      return "starting";
    case v1::STATUS_RUNNING:
      return "running";
    case v1::STATUS_STOPPING:
      return "stopping";
    case v1::STATUS_STOPPED:
      return "stopped";
    case v1::STATUS_BACKOFF:
      return "waiting to restart";
    case v1::STATUS_ERROR:
      return "error";
    default:
      return "unknown";
  }
}

// Where PrintNewLogs got to: the newest timestamp printed and the records printed with it
// (several records can share a millisecond).
struct LogCursor {
  int64_t since_ms = 0;
  std::set<std::string> at_since;
};

// Prints the log records of `name` (`instance`: one of them, or "build") not printed yet, at
// most `lines`, and moves the cursor past them. False if the call failed.
bool PrintNewLogs(const std::string& name, const std::string& version, const std::string& instance,
                  int64_t lines, LogCursor* cursor, const ClientOptions& options) {
  v1::LogsRequest request;
  request.set_name(name);
  request.set_version(version);
  request.set_instance(instance);
  request.set_lines(lines);
  request.set_since_unix_ms(cursor->since_ms);
  grpc::ClientContext context;
  Prepare(context, options);
  auto reader = Stub(options)->Logs(&context, request);
  v1::LogRecord record;
  while (reader->Read(&record)) {
    const int64_t ts = record.timestamp_unix_ms();
    const std::string key = record.instance() + '\n' + record.stream() + '\n' + record.message();
    if (ts < cursor->since_ms || (ts == cursor->since_ms && cursor->at_since.count(key) != 0)) {
      continue;
    }
    PrintRecord(record, false);
    if (ts > cursor->since_ms) {
      cursor->since_ms = ts;
      cursor->at_since.clear();
    }
    cursor->at_since.insert(key);
  }
  return reader->Finish().ok();
}

// The service `name` at `version` as the daemon has it now; NOT_FOUND once it is gone.
grpc::Status ReadService(const std::string& name, const std::string& version,
                         const ClientOptions& options, v1::Service* out) {
  v1::ReadRequest request;
  request.set_name(name);
  request.set_version(version);
  grpc::ClientContext context;
  Prepare(context, options);
  v1::ReadResponse response;
  grpc::Status status = Stub(options)->Read(&context, request, &response);
  if (!status.ok()) return status;
  if (response.services_size() == 0) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "service " + name + " is gone");
  }
  *out = response.services(0);
  return grpc::Status::OK;
}

// The --wait-timeout flag in seconds (default 300), or -1 after printing a usage error.
int64_t WaitSeconds(const ParsedArgs& args) {
  int64_t wait_seconds = 300;
  if (!args.Has("wait-timeout")) return wait_seconds;
  const std::string text = args.Get("wait-timeout");
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), wait_seconds);
  if (ec != std::errc() || end != text.data() + text.size() || wait_seconds <= 0) {
    std::cerr << "error: --wait-timeout must be a positive number of seconds\n";
    return -1;
  }
  return wait_seconds;
}

// Follows a deploy until every instance runs, for a second at least (exit 0), it fails (the reason
// and the last log lines, exit 1) or --wait-timeout passes (exit 1). Build output is printed as it
// comes. Progress goes to stderr, so stdout stays the command's own answer.
int WaitForDeploy(const std::string& name, const std::string& version, const ParsedArgs& args,
                  const ClientOptions& options) {
  const int64_t wait_seconds = WaitSeconds(args);
  if (wait_seconds < 0) return kExitUsage;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(wait_seconds);
  LogCursor build{NowUnixMs() - 1000, {}};
  std::map<std::string, v1::Status> seen;
  v1::Status service_seen = v1::STATUS_UNSPECIFIED;
  while (true) {
    v1::Service s;
    if (grpc::Status status = ReadService(name, version, options, &s); !status.ok()) {
      return ReportError(status, options);
    }
    if (s.status() != service_seen) {
      std::cerr << name << ": " << StatusWord(s.status()) << "\n";
      service_seen = s.status();
    }
    if (s.status() == v1::STATUS_BUILDING || s.status() == v1::STATUS_ERROR) {
      (void)PrintNewLogs(name, s.version(), "build", 1000, &build, options);
    }
    int running = 0;
    std::string failed;
    for (const v1::Instance& i : s.instances()) {
      if (seen[i.id()] != i.status()) {
        std::cerr << "  " << i.id() << ": " << StatusWord(i.status())
                  << (i.error().empty() ? "" : " (" + i.error() + ")") << "\n";
        seen[i.id()] = i.status();
      }
      // Running, and for a second at least: a program that exits right after its start
      // fails the wait instead of passing it.
      if (i.status() == v1::STATUS_RUNNING && NowUnixMs() - i.started_unix_ms() >= 1000) {
        ++running;
      }
      const bool crashed = i.status() == v1::STATUS_BACKOFF ||
                           (i.status() == v1::STATUS_STOPPED && i.last_exit_code() != 0) ||
                           i.status() == v1::STATUS_ERROR;
      if (crashed && failed.empty()) failed = i.id();
    }
    const int desired = s.instances_desired() > 0 ? s.instances_desired() : 1;
    if (s.status() == v1::STATUS_ERROR || !failed.empty()) {
      std::cerr << "error: " << name << " did not start"
                << (s.error().empty() ? "" : ": " + s.error()) << "\n";
      if (!failed.empty()) {
        std::cerr << "last lines of " << failed << ":\n";
        LogCursor from_start;
        (void)PrintNewLogs(name, s.version(), failed, 20, &from_start, options);
      }
      return kExitError;
    }
    if (running >= desired) {
      std::cerr << name << ": " << running << "/" << desired << " instance(s) running\n";
      return kExitOk;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      std::cerr << "error: " << name << " has " << running << "/" << desired
                << " instance(s) running after " << wait_seconds << " s (--wait-timeout)\n";
      return kExitError;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

// Follows a rolling update (or a rollback) until it ends: each instance as it changes, and the
// count of new instances that hold. Exit 0 when it succeeded (for a rollback: when the service is
// back), 1 when it failed or went back by itself (the reason on stderr) or on --wait-timeout.
// With -o json, the service as it ended is printed on stdout.
int WaitForRollout(const v1::Service& started, bool rollback, const ParsedArgs& args,
                   const ClientOptions& options) {
  const int64_t wait_seconds = WaitSeconds(args);
  if (wait_seconds < 0) return kExitUsage;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(wait_seconds);
  const std::string& name = started.name();
  std::map<std::string, v1::Status> seen;
  v1::RolloutState state_seen = v1::ROLLOUT_STATE_UNSPECIFIED;
  int updated_seen = -1;
  LogCursor build{NowUnixMs() - 1000, {}};
  while (true) {
    v1::Service s;
    if (grpc::Status status = ReadService(name, started.version(), options, &s); !status.ok()) {
      return ReportError(status, options);
    }
    const v1::Rollout& rollout = s.rollout();
    if (rollout.state() != state_seen) {
      std::cerr << name << ": "
                << (rollout.state() == v1::ROLLOUT_STATE_RUNNING
                        ? "updating to revision " + std::to_string(s.revision())
                    : rollout.state() == v1::ROLLOUT_STATE_ROLLING_BACK
                        ? "going back to revision " + std::to_string(s.revision()) +
                              (rollout.reason().empty() ? "" : ": " + rollout.reason())
                        : std::string(runtime::RolloutStateName(
                              static_cast<runtime::RolloutState>(rollout.state()))))
                << "\n";
      state_seen = rollout.state();
      updated_seen = -1;
    }
    if (s.status() == v1::STATUS_BUILDING) {
      (void)PrintNewLogs(name, s.version(), "build", 1000, &build, options);
    }
    for (const v1::Instance& i : s.instances()) {
      if (seen[i.id()] != i.status()) {
        std::cerr << "  " << i.id() << " (revision " << i.revision()
                  << "): " << StatusWord(i.status())
                  << (i.error().empty() ? "" : " (" + i.error() + ")") << "\n";
        seen[i.id()] = i.status();
      }
    }
    const bool active = rollout.state() == v1::ROLLOUT_STATE_RUNNING ||
                        rollout.state() == v1::ROLLOUT_STATE_ROLLING_BACK;
    if (active && rollout.instances_updated() != updated_seen) {
      updated_seen = rollout.instances_updated();
      std::cerr << name << ": " << updated_seen << "/" << s.instances_desired()
                << " instance(s) of revision " << s.revision() << " healthy\n";
    }
    if (!active) {
      const bool ok = rollout.state() == v1::ROLLOUT_STATE_SUCCEEDED ||
                      (rollback && rollout.state() == v1::ROLLOUT_STATE_ROLLED_BACK);
      if (options.output == Output::kJson) PrintJson(s);
      if (ok) {
        std::cerr << name << ": revision " << s.revision() << " runs on " << s.instances_running()
                  << "/" << s.instances_desired() << " instance(s)\n";
        return kExitOk;
      }
      std::cerr << "error: " << name << ": the update "
                << (rollout.state() == v1::ROLLOUT_STATE_ROLLED_BACK
                        ? "failed and was rolled back to revision " + std::to_string(s.revision())
                        : std::string("failed"))
                << (rollout.reason().empty() ? "" : ": " + rollout.reason()) << "\n";
      return kExitError;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      std::cerr << "error: " << name << " is still updating after " << wait_seconds
                << " s (--wait-timeout); see 'micro status " << name << "'\n";
      return kExitError;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

Result<v1::LogsRequest> BuildLogsRequest(const ParsedArgs& args) {
  v1::LogsRequest request;
  request.set_name(args.positionals[0]);
  request.set_version(args.Get("version"));
  request.set_follow(args.Has("follow"));
  request.set_instance(args.Get("instance"));
  if (args.Has("since")) {
    auto since = runtime::ParseDuration(args.Get("since"));
    if (!since.ok())
      return absl::InvalidArgumentError("--since: " + std::string(since.status().message()));
    request.set_since_unix_ms(NowUnixMs() - since->count());
  }
  if (args.Has("lines") || args.Has("tail")) {
    const std::string text = args.Get(args.Has("lines") ? "lines" : "tail");
    int64_t lines = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), lines);
    if (text == "all") {
      lines = -1;
    } else if (ec != std::errc() || end != text.data() + text.size() || lines < 0) {
      return absl::InvalidArgumentError("--lines must be a whole number or 'all', not '" + text +
                                        "'");
    } else if (lines == 0) {  // none of the past: only what comes from now on
      request.set_no_history(true);
      // What a daemon that predates no_history understands: all lines since now.
      lines = -1;
      request.set_since_unix_ms(std::max(request.since_unix_ms(), NowUnixMs()));
    }
    request.set_lines(lines);
  }
  return request;
}

int Logs(const ParsedArgs& args, const ClientOptions& options) {
  if (args.positionals.empty()) return UsageError("logs", "missing NAME");
  auto request = BuildLogsRequest(args);
  if (!request.ok()) return UsageError("logs", std::string(request.status().message()));
  if (request->follow()) BlockStopSignals();
  grpc::ClientContext context;
  Prepare(context, options);
  std::unique_ptr<CancelOnSignal> cancel;
  if (request->follow()) {
    context.set_deadline(std::chrono::system_clock::time_point::max());  // until Ctrl-C
    cancel = std::make_unique<CancelOnSignal>(context);
  }
  auto reader = Stub(options)->Logs(&context, *request);
  const bool json = options.output == Output::kJson;
  v1::LogRecord record;
  while (reader->Read(&record)) {
    PrintRecord(record, json);
    if (request->follow()) std::cout.flush();
  }
  grpc::Status status = reader->Finish();
  if (cancel != nullptr && cancel->cancelled()) return 0;  // Ctrl-C: the normal end of -f
  if (!status.ok()) return ReportError(status, options);
  return 0;
}

}  // namespace

// ---- Commands ----

int RunCommand(const std::vector<std::string>& args, const Env& env) {
  const CommandSpec spec{
      "micro run PATH [flags]",
      "Deploys a service to the daemon, which builds it (if the manifest has a build command),\n"
      "starts its instances and restarts them when they exit.\n\n"
      "PATH is a folder holding micro.yaml (or micro.yml), or a manifest file; see\n"
      "docs/runtime.md for its fields. The flags override the manifest.\n\n"
      "A prebuilt program in any language needs no manifest:\n"
      "  micro run --name NAME [flags] -- COMMAND [ARGS...]\n"
      "COMMAND with a '/' is made absolute against the current directory, which is also the\n"
      "working directory unless --working-dir says otherwise.\n\n"
      "The service is validated here first: a bad manifest is an error (exit 2) naming the\n"
      "field, and nothing is sent.\n\n"
      "Examples:\n"
      "  micro run ./hello\n"
      "  micro run ./hello --instances 3 --env LOG_LEVEL=debug\n"
      "  micro run ./hello --env-secret DB_PASSWORD=db.password\n"
      "  micro run --name web --restart on-failure -- ./bin/web --port 9000",
      {{"name", 0, "NAME", "service name (required with -- COMMAND)"},
       {"version", 0, "VERSION", "version (default: the manifest's, else latest)"},
       {"instances", 0, "N", "how many instances to run (1 to 1000; default 1)"},
       {"restart", 0, "POLICY", "always, on-failure or never (default always)"},
       {"env", 'e', "KEY=VALUE", "environment variable for the service", true},
       {"env-secret", 0, "KEY=PATH",
        "environment variable read from config PATH (a secret) at each start; never stored", true},
       {"working-dir", 0, "DIR", "working directory (default: the manifest's folder, or here)"},
       {"wait", 'w', "", "follow the deploy: build output, then each instance until it runs"},
       {"wait-timeout", 0, "SECONDS", "give up waiting after this long (default 300)"}},
      1};
  return RunClientCommand(spec, args, env, &Run);
}

int UpdateCommand(const std::vector<std::string>& args, const Env& env) {
  const CommandSpec spec{
      "micro update NAME|PATH [flags]",
      "Replaces every instance of a deployed service. With PATH (a folder holding micro.yaml,\n"
      "or a manifest file) the service named there gets the manifest's options; with NAME it\n"
      "keeps the options it has (a restart).\n"
      "An argument with a '/', ending in .yaml/.yml, or a folder holding micro.yaml is a PATH.\n\n"
      "By default this is a rolling update (the manifest's update section): one new instance\n"
      "at a time starts beside the old ones, and once it has been healthy for\n"
      "update.min_healthy_time (10s) an old one stops. A new instance that exits first, or is\n"
      "not healthy within update.healthy_deadline (5m), fails the update, and the service goes\n"
      "back to its previous options (update.auto_revert). update.max_parallel: 0 replaces\n"
      "every instance at once. The command returns once the new options are saved; --wait\n"
      "follows the update to its end (exit 1 if it failed or was rolled back).\n\n"
      "Examples:\n"
      "  micro update hello\n"
      "  micro update ./hello --wait\n"
      "  micro update ./hello --version 1.1.0",
      {{"version", 0, "VERSION", "the version to update (default: the manifest's, or latest)"},
       {"wait", 'w', "", "follow the update: each step, then its outcome"},
       {"wait-timeout", 0, "SECONDS", "give up waiting after this long (default 300)"}},
      1};
  return RunClientCommand(spec, args, env, &Update);
}

int RollbackCommand(const std::vector<std::string>& args, const Env& env) {
  const CommandSpec spec{
      "micro rollback NAME [flags]",
      "Goes back to the options a service ran with before its latest update, replacing its\n"
      "instances the way an update does (the update section of those options). A second\n"
      "rollback goes forward again. An update that fails its health gates goes back by\n"
      "itself (update.auto_revert); 'micro status NAME' shows the revision and why.\n\n"
      "Examples:\n"
      "  micro rollback hello\n"
      "  micro rollback hello --wait",
      {{"version", 0, "VERSION", "the version to roll back (default latest)"},
       {"wait", 'w', "", "follow it until every instance of the earlier options is healthy"},
       {"wait-timeout", 0, "SECONDS", "give up waiting after this long (default 300)"}},
      1};
  return RunClientCommand(spec, args, env, &Rollback);
}

int KillCommand(const std::vector<std::string>& args, const Env& env) {
  const CommandSpec spec{
      "micro kill NAME [flags]",
      "Stops every instance of a deployed service (its stop signal, then SIGKILL after the\n"
      "grace period) and removes the service, so it does not come back. Without --version,\n"
      "every version of NAME.\n\n"
      "Example:\n"
      "  micro kill hello",
      {{"version", 0, "VERSION", "only this version"}},
      1};
  return RunClientCommand(spec, args, env, &Kill);
}

int StatusCommand(const std::vector<std::string>& args, const Env& env) {
  const CommandSpec spec{
      "micro status [NAME] [flags]",
      "Shows the deployed services: NAME VERSION STATUS INSTANCES (running/desired) RESTARTS\n"
      "UPTIME (of the oldest running instance) LAST EXIT ERROR. With NAME, also the revision\n"
      "and the latest update (rolling, rolled back and why), and one row per instance:\n"
      "ID REVISION PID STATUS RESTARTS STARTED LAST EXIT NEXT START (when in backoff) ERROR.\n\n"
      "Examples:\n"
      "  micro status\n"
      "  micro status hello -o json",
      {{"version", 0, "VERSION", "with NAME: only this version"}},
      1};
  return RunClientCommand(spec, args, env, &StatusBody);
}

int LogsCommand(const std::vector<std::string>& args, const Env& env) {
  const CommandSpec spec{
      "micro logs NAME [flags]",
      "Prints the log records of a deployed service, oldest first, one per line:\n"
      "TIMESTAMP INSTANCE [stream] message (stream: stdout, stderr, or system for the\n"
      "daemon's own notes). -o json prints one JSON object per line. With -f it keeps\n"
      "printing new records until Ctrl-C.\n\n"
      "Examples:\n"
      "  micro logs hello -f\n"
      "  micro logs hello --lines 500 --since 10m --instance hello-1\n"
      "  micro logs hello --instance build",
      {{"version", 0, "VERSION", "only this version"},
       {"follow", 'f', "", "keep printing new records until Ctrl-C"},
       {"lines", 0, "N", "the last N records (default 100; all: every record kept; 0: none)"},
       {"tail", 0, "N", "the same as --lines"},
       {"since", 0, "DURATION", "only records of the last DURATION (10m, 1h, 2d)"},
       {"instance", 0, "ID", "only this instance (NAME-N, or N), or 'build' for build output"}},
      1};
  return RunClientCommand(spec, args, env, &Logs);
}

}  // namespace micro::cli
