#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace micro::runtime {

using Env = std::map<std::string, std::string>;

enum class RestartPolicy { kAlways, kOnFailure, kNever };
enum class DriverKind { kProcess, kContainer };
enum class HealthCheckKind { kNone, kGrpc, kHttp, kTcp, kCommand };

// Delays between restarts: `initial`, times `multiplier` after each failed run, at most `max`,
// minus up to `jitter` of it at random. A run of `reset_after` or longer starts again at initial.
struct BackoffPolicy {
  std::chrono::milliseconds initial{1000};
  std::chrono::milliseconds max{60000};
  double multiplier = 2.0;
  std::chrono::seconds reset_after{60};
  double jitter = 0.2;
};

struct HealthCheck {
  HealthCheckKind kind = HealthCheckKind::kNone;
  std::string address;               // HOST:PORT; empty: the instance's service address
  std::string path = "/";            // http
  std::string service;               // grpc
  std::vector<std::string> command;  // command: argv
  std::chrono::milliseconds interval{10000};
  std::chrono::milliseconds timeout{2000};
  int failure_threshold = 3;
  std::chrono::milliseconds start_period{0};
};

// How `micro update` replaces the instances (the names of Nomad's update stanza): at most
// `max_parallel` new instances at a time are started beside the old ones; one counts once it has
// been running and healthy for `min_healthy_time`, and then an old one is stopped. A new instance
// that exits first, or is not counted within `healthy_deadline`, fails the update, which then
// goes back to the options that ran before if `auto_revert`. max_parallel 0: every instance is
// stopped and started again at once.
struct UpdatePolicy {
  int max_parallel = 1;
  std::chrono::milliseconds min_healthy_time{10000};
  std::chrono::milliseconds healthy_deadline{300000};
  bool auto_revert = true;
};

struct LogPolicy {
  int64_t max_file_bytes = 10 << 20;
  int max_files = 5;
};

// Everything a deployed service is: its identity and its manifest. Plain data, no proto.
struct ServiceSpec {
  std::string ns;  // namespace
  std::string name;
  std::string version = "latest";
  std::string source;  // where it was deployed from, for display
  std::map<std::string, std::string> metadata;

  std::string command;
  std::vector<std::string> args;
  Env env;
  // Variables whose values are config paths in the service's namespace (normally secrets), read
  // at each start of an instance: the clear value is never kept here nor shown.
  std::map<std::string, std::string> env_secrets;
  std::string working_dir;
  std::string build;  // shell command; empty: none
  int instances = 1;
  RestartPolicy restart = RestartPolicy::kAlways;
  BackoffPolicy backoff;
  HealthCheck health;
  int stop_signal = 15;  // SIGTERM
  std::chrono::seconds grace{10};
  int64_t memory_bytes = 0;   // 0: no limit
  int64_t max_processes = 0;  // 0: no limit
  DriverKind driver = DriverKind::kProcess;
  std::string image;
  std::string network_mode;  // container; empty: host
  LogPolicy logs;
  UpdatePolicy update;
};

}  // namespace micro::runtime
