#include "runtime/manifest.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include "core/names.h"

namespace micro::runtime {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
template <typename T>
using Choices = std::pair<const char*, T>[];
const Choices<RestartPolicy> kRestartPolicies = {{"always", RestartPolicy::kAlways},
                                                 {"on-failure", RestartPolicy::kOnFailure},
                                                 {"never", RestartPolicy::kNever}};
const Choices<DriverKind> kDrivers = {{"process", DriverKind::kProcess},
                                      {"container", DriverKind::kContainer}};
const Choices<HealthCheckKind> kHealthCheckKinds = {{"grpc", HealthCheckKind::kGrpc},
                                                    {"http", HealthCheckKind::kHttp},
                                                    {"tcp", HealthCheckKind::kTcp},
                                                    {"command", HealthCheckKind::kCommand}};
const Choices<bool> kBooleans = {{"true", true}, {"false", false}};

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// "Did you mean": the edit distance of two words.
size_t EditDistance(std::string_view a, std::string_view b) {  // Levenshtein, one row
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The candidate closest to `word`, if it is close enough to be a likely typo.
std::string Suggest(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = std::max<size_t>(2, word.size() / 3) + 1;
  for (const std::string& candidate : candidates) {
    const size_t distance = EditDistance(Lower(word), candidate);
    if (distance < best_distance) std::tie(best, best_distance) = std::tie(candidate, distance);
  }
  return best;
}

// One `key: value` of a mapping, with what error messages need.
struct Field {
  std::string path;  // "health_check.interval"
  int line = 0;
  YAML::Node value;
};

using Handler = std::function<Status(const Field&)>;
using Handlers = std::vector<std::pair<std::string, Handler>>;

class ManifestReader {
 public:
  explicit ManifestReader(std::string file) : file_(std::move(file)) {}

  Status Error(const Field& field, std::string_view what) const {
    return absl::InvalidArgumentError(
        fmt::format("{}:{}: {}: {}", file_, field.line, field.path, what));
  }
  Status Error(int line, std::string_view what) const {
    return absl::InvalidArgumentError(fmt::format("{}:{}: {}", file_, line, what));
  }

  // Calls the handler of every key of the mapping `node`; unknown and repeated keys are errors.
  Status ForEach(const YAML::Node& node, const Field& parent, const Handlers& handlers) const {
    if (!node.IsMap()) {
      return parent.path.empty() ? Error(parent.line, "the manifest must be a mapping of fields")
                                 : Error(parent, "must be a mapping of fields");
    }
    std::set<std::string> seen;
    for (const auto& entry : node) {
      Field field{"", entry.first.Mark().line + 1, entry.second};
      const std::string key = entry.first.IsScalar() ? entry.first.Scalar() : "?";
      field.path = parent.path.empty() ? key : parent.path + "." + key;
      auto it = std::find_if(handlers.begin(), handlers.end(),
                             [&](const auto& h) { return h.first == key; });
      if (it == handlers.end()) return Unknown(field, key, parent, handlers);
      if (!seen.insert(key).second) return Error(field, "is given twice; keep one");
      if (field.value.IsNull()) {
        return Error(field, "has no value; give one, or remove the field to use the default");
      }
      if (Status s = it->second(field); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  Result<std::string> Text(const Field& f) const {
    if (!f.value.IsScalar()) return Error(f, "must be a single value, not a list or mapping");
    return f.value.Scalar();
  }

  Result<int64_t> Integer(const Field& f) const {
    auto text = Text(f);
    if (!text.ok()) return text.status();
    int64_t n = 0;
    if (!ParseWhole(*text, n))
      return Error(f, fmt::format("must be a whole number, not '{}'", *text));
    return n;
  }

  // An integer that fits an int; the range proper is ValidateSpec's business.
  Status Assign(const Field& f, int& out) const {
    auto n = Integer(f);
    if (!n.ok()) return n.status();
    if (*n < -1'000'000'000 || *n > 1'000'000'000)
      return Error(f, fmt::format("{} is too large", *n));
    out = static_cast<int>(*n);
    return absl::OkStatus();
  }
  Status Assign(const Field& f, int64_t& out) const { return Store(Integer(f), out); }
  Status Assign(const Field& f, std::string& out) const { return Store(Text(f), out); }

  Status AssignNumber(const Field& f, double& out) const {
    return AssignParsed(f, ParseNumber, out);
  }

  // The value read by `parse` (ParseDuration, ParseSize, ParseSignal), its error with the line.
  template <typename T, typename Parser>
  Status AssignParsed(const Field& f, Parser parse, T& out) const {
    auto text = Text(f);
    if (!text.ok()) return text.status();
    auto value = parse(*text);
    if (!value.ok()) return Error(f, std::string(value.status().message()));
    out = *value;
    return absl::OkStatus();
  }
  Status AssignDuration(const Field& f, milliseconds& out) const {
    return AssignParsed(f, ParseDuration, out);
  }

  Status AssignSeconds(const Field& f, std::chrono::seconds& out) const {
    milliseconds ms{0};
    if (Status s = AssignDuration(f, ms); !s.ok()) return s;
    if (ms.count() % 1000 != 0) {
      return Error(f, fmt::format("must be whole seconds, not {}", FormatDuration(ms)));
    }
    out = std::chrono::duration_cast<std::chrono::seconds>(ms);
    return absl::OkStatus();
  }

  Status AssignSize(const Field& f, int64_t& out) const { return AssignParsed(f, ParseSize, out); }

  Status AssignList(const Field& f, std::vector<std::string>& out) const {
    if (!f.value.IsSequence()) {
      return Error(f, "must be a list, such as [--port, \"8080\"] or one '- item' per line");
    }
    out.clear();
    for (const YAML::Node& item : f.value) {
      if (!item.IsScalar()) {
        return Error(item.Mark().line + 1,
                     fmt::format("{}: every item must be a single value", f.path));
      }
      out.push_back(item.Scalar());
    }
    return absl::OkStatus();
  }

  Status AssignMap(const Field& f, std::map<std::string, std::string>& out) const {
    if (!f.value.IsMap()) return Error(f, "must be a mapping of KEY: value");
    out.clear();
    for (const auto& entry : f.value) {
      const int line = entry.first.Mark().line + 1;
      if (!entry.first.IsScalar()) return Error(line, f.path + ": every key must be a string");
      const std::string key = entry.first.Scalar();
      if (!entry.second.IsScalar()) {
        return Error(line, fmt::format("{}.{}: must be a single value (write '' for an empty one)",
                                       f.path, key));
      }
      if (!out.emplace(key, entry.second.Scalar()).second) {
        return Error(line, fmt::format("{}.{}: is given twice; keep one", f.path, key));
      }
    }
    return absl::OkStatus();
  }

  template <typename T, size_t N>
  Status AssignChoice(const Field& f, const std::pair<const char*, T> (&choices)[N], T& out) const {
    auto text = Text(f);
    if (!text.ok()) return text.status();
    std::string valid;
    for (const auto& [name, value] : choices) {
      if (*text == name) {
        out = value;
        return absl::OkStatus();
      }
      valid += (valid.empty() ? "" : ", ") + std::string(name);
    }
    return Error(f, fmt::format("must be one of {}, not '{}'", valid, *text));
  }

 private:
  template <typename T, typename U>
  static Status Store(Result<T> result, U& out) {
    if (!result.ok()) return result.status();
    out = std::move(*result);
    return absl::OkStatus();
  }

  Status Unknown(const Field& field, const std::string& key, const Field& parent,
                 const Handlers& handlers) const {
    std::vector<std::string> names;
    for (const auto& h : handlers) names.push_back(h.first);
    const std::string suggestion = Suggest(key, names);
    const std::string hint =
        suggestion.empty() ? "; see docs/runtime.md for the fields"
                           : fmt::format(" (did you mean '{}{}'?)",
                                         parent.path.empty() ? "" : parent.path + ".", suggestion);
    return Error(field.line, fmt::format("unknown field '{}'{}", field.path, hint));
  }

  std::string file_;
};

// The handlers of each section of the manifest, filling `spec`.
class ManifestParser {
 public:
  ManifestParser(const ManifestReader& reader, ServiceSpec& spec) : r_(reader), s_(spec) {}

  Status Parse(const YAML::Node& root) {
    return r_.ForEach(root, Field{"", root.Mark().line + 1, root}, TopLevel());
  }

 private:
  Handlers TopLevel() {
    return {
        {"name", [this](const Field& f) { return r_.Assign(f, s_.name); }},
        {"version", [this](const Field& f) { return r_.Assign(f, s_.version); }},
        {"metadata", [this](const Field& f) { return r_.AssignMap(f, s_.metadata); }},
        {"command", [this](const Field& f) { return Command(f); }},
        {"args", [this](const Field& f) { return r_.AssignList(f, s_.args); }},
        {"build", [this](const Field& f) { return r_.Assign(f, s_.build); }},
        {"env", [this](const Field& f) { return EnvSection(f); }},
        {"working_dir", [this](const Field& f) { return r_.Assign(f, s_.working_dir); }},
        {"instances", [this](const Field& f) { return r_.Assign(f, s_.instances); }},
        {"restart",
         [this](const Field& f) { return r_.AssignChoice(f, kRestartPolicies, s_.restart); }},
        {"backoff", [this](const Field& f) { return r_.ForEach(f.value, f, Backoff()); }},
        {"health_check", [this](const Field& f) { return HealthCheckSection(f); }},
        {"stop_signal",
         [this](const Field& f) { return r_.AssignParsed(f, ParseSignal, s_.stop_signal); }},
        {"grace_period", [this](const Field& f) { return r_.AssignSeconds(f, s_.grace); }},
        {"limits", [this](const Field& f) { return r_.ForEach(f.value, f, Limits()); }},
        {"driver", [this](const Field& f) { return r_.AssignChoice(f, kDrivers, s_.driver); }},
        {"image", [this](const Field& f) { return r_.Assign(f, s_.image); }},
        {"network_mode", [this](const Field& f) { return r_.Assign(f, s_.network_mode); }},
        {"logs", [this](const Field& f) { return r_.ForEach(f.value, f, Logs()); }},
        {"update", [this](const Field& f) { return r_.ForEach(f.value, f, Update()); }},
    };
  }

  Handlers Update() {
    UpdatePolicy& u = s_.update;
    return {
        {"max_parallel", [this, &u](const Field& f) { return r_.Assign(f, u.max_parallel); }},
        {"min_healthy_time",
         [this, &u](const Field& f) { return r_.AssignDuration(f, u.min_healthy_time); }},
        {"healthy_deadline",
         [this, &u](const Field& f) { return r_.AssignDuration(f, u.healthy_deadline); }},
        {"auto_revert",
         [this, &u](const Field& f) { return r_.AssignChoice(f, kBooleans, u.auto_revert); }},
    };
  }

  Handlers Backoff() {
    BackoffPolicy& b = s_.backoff;
    return {
        {"initial", [this, &b](const Field& f) { return r_.AssignDuration(f, b.initial); }},
        {"max", [this, &b](const Field& f) { return r_.AssignDuration(f, b.max); }},
        {"multiplier", [this, &b](const Field& f) { return r_.AssignNumber(f, b.multiplier); }},
        {"reset_after", [this, &b](const Field& f) { return r_.AssignSeconds(f, b.reset_after); }},
    };
  }

  Handlers Health() {
    HealthCheck& h = s_.health;
    return {
        {"type",
         [this, &h](const Field& f) { return r_.AssignChoice(f, kHealthCheckKinds, h.kind); }},
        {"address", [this, &h](const Field& f) { return r_.Assign(f, h.address); }},
        {"path", [this, &h](const Field& f) { return r_.Assign(f, h.path); }},
        {"service", [this, &h](const Field& f) { return r_.Assign(f, h.service); }},
        {"command", [this, &h](const Field& f) { return r_.AssignList(f, h.command); }},
        {"interval",
         [this, &h](const Field& f) {
           Status s = r_.AssignDuration(f, h.interval);
           // A default follows the fields the user set: an interval shorter than the default
           // timeout shortens the timeout, unless the manifest gives one itself.
           if (s.ok() && !health_timeout_set_)
             h.timeout = std::min(HealthCheck().timeout, h.interval);
           return s;
         }},
        {"timeout",
         [this, &h](const Field& f) {
           health_timeout_set_ = true;
           return r_.AssignDuration(f, h.timeout);
         }},
        {"failure_threshold",
         [this, &h](const Field& f) { return r_.Assign(f, h.failure_threshold); }},
        {"start_period",
         [this, &h](const Field& f) { return r_.AssignDuration(f, h.start_period); }},
    };
  }

  Handlers Limits() {
    return {
        {"memory", [this](const Field& f) { return r_.AssignSize(f, s_.memory_bytes); }},
        {"processes", [this](const Field& f) { return r_.Assign(f, s_.max_processes); }},
    };
  }

  Handlers Logs() {
    return {
        {"max_file_size",
         [this](const Field& f) { return r_.AssignSize(f, s_.logs.max_file_bytes); }},
        {"max_files", [this](const Field& f) { return r_.Assign(f, s_.logs.max_files); }},
    };
  }

  Status Command(const Field& f) {
    if (f.value.IsSequence()) {
      return r_.Error(f, "must be a single string, the program; put its arguments in 'args'");
    }
    return r_.Assign(f, s_.command);
  }

  // KEY: value, or KEY: {secret: config.path} for a value read from config at each start.
  Status EnvSection(const Field& f) {
    if (!f.value.IsMap()) return r_.Error(f, "must be a mapping of KEY: value");
    s_.env.clear();
    s_.env_secrets.clear();
    for (const auto& entry : f.value) {
      const int line = entry.first.Mark().line + 1;
      if (!entry.first.IsScalar()) return r_.Error(line, "env: every key must be a string");
      const std::string key = entry.first.Scalar();
      if (s_.env.count(key) || s_.env_secrets.count(key)) {
        return r_.Error(line, fmt::format("env.{}: is given twice; keep one", key));
      }
      const YAML::Node& value = entry.second;
      if (value.IsScalar()) {
        s_.env.emplace(key, value.Scalar());
        continue;
      }
      if (!value.IsMap() || value.size() != 1 || !value["secret"] || !value["secret"].IsScalar()) {
        return r_.Error(line, fmt::format("env.{}: must be a single value (write '' for an empty "
                                          "one) or {{secret: config.path}}",
                                          key));
      }
      s_.env_secrets.emplace(key, value["secret"].Scalar());
    }
    return absl::OkStatus();
  }

  Status HealthCheckSection(const Field& f) {
    if (Status s = r_.ForEach(f.value, f, Health()); !s.ok()) return s;
    if (s_.health.kind == HealthCheckKind::kNone) {
      return r_.Error(f, "has no 'type'; add one of grpc, http, tcp or command");
    }
    return absl::OkStatus();
  }

  const ManifestReader& r_;
  ServiceSpec& s_;
  bool health_timeout_set_ = false;  // the manifest names health_check.timeout
};

constexpr size_t kMaxManifestBytes = 1 << 20;

// The manifest file for `path`: `path` itself, or micro.yaml / micro.yml in the folder `path`.
Result<fs::path> FindManifest(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    for (const char* name : {"micro.yaml", "micro.yml"}) {
      if (fs::is_regular_file(fs::path(path) / name, ec)) return fs::path(path) / name;
    }
    return absl::NotFoundError(fmt::format(
        "{} has no micro.yaml (or micro.yml); write one (see docs/runtime.md), or deploy a "
        "prebuilt program with 'micro run --name NAME -- COMMAND'",
        path));
  }
  if (fs::is_regular_file(path, ec)) return fs::path(path);
  return absl::NotFoundError(
      fmt::format("{} does not exist; give a folder holding micro.yaml, or a manifest file", path));
}

Result<std::string> ReadFile(const fs::path& file) {
  std::error_code ec;
  const auto size = fs::file_size(file, ec);
  if (!ec && size > kMaxManifestBytes) {
    return absl::InvalidArgumentError(fmt::format("{} is {} bytes; a manifest may have at most {}",
                                                  file.string(), size, kMaxManifestBytes));
  }
  std::ifstream in(file, std::ios::binary);
  std::string text(std::istreambuf_iterator<char>(in), {});
  if (in.bad()) return absl::InvalidArgumentError(fmt::format("cannot read {}", file.string()));
  return text;
}

Status Invalid(std::string message) { return absl::InvalidArgumentError(std::move(message)); }

// The first error of `checks` (all evaluated: they are cheap), or OK.
Status First(std::initializer_list<Status> checks) {
  for (const Status& s : checks) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

// `status` with `hint` appended to its message when it is an error.
Status WithHint(const Status& status, const std::string& hint) {
  return status.ok() ? status : Invalid(std::string(status.message()) + " (" + hint + ")");
}

template <typename Duration>
Status CheckDuration(std::string_view field, Duration value, Duration min, Duration max) {
  if (value < min || value > max) {
    return Invalid(fmt::format("{} must be {} to {}, not {}", field,
                               FormatDuration(std::chrono::duration_cast<milliseconds>(min)),
                               FormatDuration(std::chrono::duration_cast<milliseconds>(max)),
                               FormatDuration(std::chrono::duration_cast<milliseconds>(value))));
  }
  return absl::OkStatus();
}

Status CheckRange(std::string_view field, int64_t value, int64_t min, int64_t max) {
  if (value < min || value > max) {
    return Invalid(fmt::format("{} must be {} to {}, not {}", field, min, max, value));
  }
  return absl::OkStatus();
}

bool IsEnvKey(std::string_view key) {
  if (key.empty() || std::isdigit(static_cast<unsigned char>(key[0]))) return false;
  return std::all_of(key.begin(), key.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

bool HasNul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

// HOST:PORT with a port of 1..65535 (HOST may be a bracketed IPv6 address).
bool IsHostPort(std::string_view address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  int port = 0;
  return ParseWhole(address.substr(colon + 1), port) && port >= 1 && port <= 65535;
}

Status ValidateIdentity(const ServiceSpec& spec) {
  if (Status s = First({spec.ns.empty() ? absl::OkStatus() : CheckNamespace(spec.ns),
                        CheckName("name", spec.name, kMaxServiceNameBytes, Charset::kName),
                        CheckName("version", spec.version, kMaxVersionBytes, Charset::kVersion)});
      !s.ok()) {
    return s;
  }
  // The version names a folder of the service's logs.
  if (spec.version == "." || spec.version == "..") {
    return Invalid(fmt::format("version may not be '{}'", spec.version));
  }
  if (spec.metadata.size() > kMaxMetadataEntries) {
    return Invalid(fmt::format("metadata has {} entries; the limit is {}", spec.metadata.size(),
                               kMaxMetadataEntries));
  }
  for (const auto& [key, value] : spec.metadata) {
    if (Status s = CheckName("metadata key", key, kMaxMetadataKeyBytes, Charset::kPrintable);
        !s.ok()) {
      return s;
    }
    if (value.size() > kMaxMetadataValueBytes) {
      return Invalid(fmt::format("metadata.{} is {} bytes; the limit is {}", key, value.size(),
                                 kMaxMetadataValueBytes));
    }
  }
  return absl::OkStatus();
}

Status ValidateProgram(const ServiceSpec& spec) {
  if (spec.driver == DriverKind::kContainer) {
    if (spec.image.empty()) {
      return Invalid("image is missing; driver container runs an image (image: repo/name:tag)");
    }
  } else {
    if (spec.command.empty()) {
      return Invalid(
          "command is missing; set the program to run (or driver: container and an "
          "image)");
    }
    if (!spec.image.empty())
      return Invalid("image is set but driver is process; add 'driver: container'");
    if (!spec.network_mode.empty()) {
      return Invalid("network_mode applies only to driver: container");
    }
  }
  if (!spec.working_dir.empty() && spec.working_dir[0] != '/') {
    return Invalid(fmt::format("working_dir must be an absolute path, not '{}'", spec.working_dir));
  }
  if (HasNul(spec.command) || HasNul(spec.build) || HasNul(spec.working_dir)) {
    return Invalid("command, build and working_dir must not contain NUL characters");
  }
  if (spec.args.size() > kMaxArgs) {
    return Invalid(fmt::format("args has {} items; the limit is {}", spec.args.size(), kMaxArgs));
  }
  size_t bytes = spec.command.size() + spec.build.size() + 2;
  for (const std::string& arg : spec.args) {
    if (HasNul(arg)) return Invalid("args must not contain NUL characters");
    bytes += arg.size() + 1;
  }
  for (const auto& [key, value] : spec.env) bytes += key.size() + value.size() + 2;
  if (bytes > kMaxCommandLineBytes) {
    return Invalid(
        fmt::format("command, args, env and build are {} bytes together; the limit is "
                    "{} (pass large data in a file)",
                    bytes, kMaxCommandLineBytes));
  }
  return CheckRange("instances", spec.instances, kMinInstances, kMaxInstances);
}

Status ValidateEnv(const ServiceSpec& spec) {
  const Env& env = spec.env;
  if (env.size() + spec.env_secrets.size() > kMaxEnvEntries) {
    return Invalid(fmt::format("env has {} entries; the limit is {}",
                               env.size() + spec.env_secrets.size(), kMaxEnvEntries));
  }
  auto check_key = [](const std::string& key) -> Status {
    if (!IsEnvKey(key)) {
      return Invalid(fmt::format(
          "env key '{}' is not valid: use letters, digits and '_', not starting with a digit",
          key));
    }
    for (const char* prefix : kReservedEnvPrefixes) {
      if (key.rfind(prefix, 0) == 0) {
        return Invalid(fmt::format(
            "env key '{}' is reserved: the daemon sets {}* for every instance; rename it", key,
            prefix));
      }
    }
    return absl::OkStatus();
  };
  for (const auto& [key, value] : env) {
    if (Status s = check_key(key); !s.ok()) return s;
    if (HasNul(value)) return Invalid(fmt::format("env.{} must not contain NUL characters", key));
  }
  for (const auto& [key, path] : spec.env_secrets) {
    if (Status s = check_key(key); !s.ok()) return s;
    if (env.count(key) != 0) {
      return Invalid(fmt::format("env.{} is both a value and a secret; keep one", key));
    }
    if (path.empty() || path.size() > kMaxSecretPathBytes || HasNul(path) || path.front() == '.' ||
        path.back() == '.') {
      return Invalid(fmt::format(
          "env.{}: secret '{}' is not a config path: use 1 to {} bytes of dot-separated names "
          "(db.password)",
          key, path, kMaxSecretPathBytes));
    }
  }
  return absl::OkStatus();
}

Status ValidateBackoff(const ServiceSpec& spec) {
  const BackoffPolicy& b = spec.backoff;
  if (Status s =
          First({CheckDuration("backoff.initial", b.initial, milliseconds(0), kMaxBackoffInitial),
                 WithHint(CheckDuration("backoff.max", b.max, b.initial, kMaxBackoffMax),
                          "it may not be less than backoff.initial")});
      !s.ok()) {
    return s;
  }
  if (!(b.multiplier >= kMinBackoffMultiplier && b.multiplier <= kMaxBackoffMultiplier)) {
    return Invalid(fmt::format("backoff.multiplier must be {} to {}, not {}", kMinBackoffMultiplier,
                               kMaxBackoffMultiplier, b.multiplier));
  }
  if (!(b.jitter >= 0 && b.jitter <= 1)) {
    return Invalid(fmt::format("backoff jitter must be 0 to 1, not {}", b.jitter));
  }
  return CheckDuration("backoff.reset_after", b.reset_after, std::chrono::seconds(0),
                       kMaxBackoffResetAfter);
}

Status ValidateHealth(const ServiceSpec& spec) {
  const HealthCheck& h = spec.health;
  if (h.kind == HealthCheckKind::kNone) return absl::OkStatus();
  if (Status s = First(
          {CheckDuration("health_check.interval", h.interval, kMinHealthInterval,
                         kMaxHealthInterval),
           WithHint(CheckDuration("health_check.timeout", h.timeout, kMinHealthTimeout, h.interval),
                    "it may not exceed health_check.interval"),
           CheckRange("health_check.failure_threshold", h.failure_threshold, 1,
                      kMaxFailureThreshold),
           CheckDuration("health_check.start_period", h.start_period, milliseconds(0),
                         kMaxStartPeriod)});
      !s.ok()) {
    return s;
  }
  if (!h.address.empty() && !IsHostPort(h.address)) {
    return Invalid(fmt::format("health_check.address must be HOST:PORT, not '{}'", h.address));
  }
  if (h.kind == HealthCheckKind::kHttp && (h.path.empty() || h.path[0] != '/')) {
    return Invalid(fmt::format("health_check.path must start with '/', not '{}'", h.path));
  }
  if (h.kind == HealthCheckKind::kCommand) {
    if (h.command.empty() || h.command[0].empty()) {
      return Invalid("health_check.command is missing; type command needs the argv to run");
    }
    for (const std::string& arg : h.command) {
      if (HasNul(arg)) return Invalid("health_check.command must not contain NUL characters");
    }
  }
  return absl::OkStatus();
}

Status ValidateStop(const ServiceSpec& spec) {
  const std::string name = SignalName(spec.stop_signal);
  std::string valid;
  for (const char* allowed : kStopSignals) {
    if (name == allowed)
      return CheckDuration("grace_period", spec.grace, std::chrono::seconds(0), kMaxGrace);
    valid += (valid.empty() ? "" : ", ") + std::string(allowed);
  }
  return Invalid(fmt::format("stop_signal {} is not allowed; use one of {}", name, valid));
}

Status ValidateResources(const ServiceSpec& spec) {
  if (spec.memory_bytes != 0 && spec.memory_bytes < kMinMemoryBytes) {
    return Invalid(fmt::format("limits.memory must be 0 (no limit) or at least 4MiB, not {} bytes",
                               spec.memory_bytes));
  }
  if (spec.logs.max_file_bytes < kMinLogFileBytes || spec.logs.max_file_bytes > kMaxLogFileBytes) {
    return Invalid(fmt::format("logs.max_file_size must be 4KiB to 1GiB, not {} bytes",
                               spec.logs.max_file_bytes));
  }
  return First({CheckRange("limits.processes", spec.max_processes, 0, kMaxProcesses),
                CheckRange("logs.max_files", spec.logs.max_files, 0, kMaxLogFiles)});
}

Status ValidateUpdate(const ServiceSpec& spec) {
  const UpdatePolicy& u = spec.update;
  return First(
      {CheckRange("update.max_parallel", u.max_parallel, 0, kMaxInstances),
       CheckDuration("update.min_healthy_time", u.min_healthy_time, milliseconds(0),
                     kMaxMinHealthyTime),
       WithHint(CheckDuration("update.healthy_deadline", u.healthy_deadline,
                              std::max(kMinHealthyDeadline, u.min_healthy_time + milliseconds(1)),
                              kMaxHealthyDeadline),
                "it must be longer than update.min_healthy_time")});
}

}  // namespace

Result<ServiceSpec> LoadManifest(const std::string& path) {
  auto file = FindManifest(path);
  if (!file.ok()) return file.status();
  auto text = ReadFile(*file);
  if (!text.ok()) return text.status();
  const std::string label = file->string();
  const ManifestReader reader(label);
  ServiceSpec spec;
  try {
    const YAML::Node root = YAML::Load(*text);
    if (root.IsNull()) {
      return absl::InvalidArgumentError(
          fmt::format("{} is empty; a manifest needs at least 'name' and 'command'", label));
    }
    ManifestParser parser(reader, spec);
    if (Status s = parser.Parse(root); !s.ok()) return s;
    if (!root["name"]) {
      return absl::InvalidArgumentError(
          fmt::format("{}: name is missing; add 'name: my-service'", label));
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(fmt::format("{}:{}: {}", label, e.mark.line + 1, e.msg));
  }
  std::error_code ec;
  const fs::path folder = fs::absolute(*file, ec).lexically_normal().parent_path();
  spec.source = folder.string();
  fs::path working_dir = (folder / spec.working_dir).lexically_normal();
  spec.working_dir =
      (working_dir.has_filename() ? working_dir : working_dir.parent_path()).string();
  return spec;
}

Status ValidateSpec(const ServiceSpec& spec) {
  for (const auto& check : {ValidateIdentity, ValidateProgram, ValidateEnv, ValidateBackoff,
                            ValidateHealth, ValidateStop, ValidateResources, ValidateUpdate}) {
    if (Status s = check(spec); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace micro::runtime
