#include "server/daemon.h"

#include <absl/synchronization/mutex.h>
#include <fmt/format.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "core/version.h"
#include "runtime/container/container_driver.h"
#include "runtime/fd_budget.h"
#include "server/grpc_logging.h"
#include "server/notify.h"
#include "services/broker/make_broker.h"
#include "services/config/documents.h"
#include "services/config/make_config.h"
#include "services/events/rocksdb_events.h"
#include "services/registry/make_registry.h"
#include "services/runtime/rocksdb_desired_state.h"
#include "services/store/make_store.h"
#include "services/store/rocksdb_store.h"

namespace micro::server {
namespace {

// The runtime's service accounts, kept by the auth engine.
class ServiceAccountsOfAuth final : public runtime::ServiceAccounts {
 public:
  explicit ServiceAccountsOfAuth(auth::RocksDbAuth& auth) : auth_(auth) {}
  Status Ensure(const std::string& ns, const std::string& name) override {
    return auth_.EnsureServiceAccount(ns, name);
  }
  Status Remove(const std::string& ns, const std::string& name) override {
    return auth_.RemoveServiceAccount(ns, name);
  }

 private:
  auth::RocksDbAuth& auth_;
};

// Nodes expire at most this late; registry TTLs are whole seconds.
constexpr std::chrono::milliseconds kMaxExpiryDelay{500};
// Expired store records are unreadable at once; this is how often their space is reclaimed.
constexpr std::chrono::seconds kStoreSweepInterval{1};
// How long the shutdown still waits after the second SIGINT/SIGTERM before the daemon exits.
constexpr std::chrono::seconds kHardStopAfterSecondSignal{5};

// Names this data dir's supervisor: its processes and containers carry it, which is how a
// restarted daemon finds what its predecessor left running.
std::string SupervisorId(const std::string& data_dir) {
  uint64_t hash = 1469598103934665603ULL;  // FNV-1a
  for (unsigned char c : data_dir) hash = (hash ^ c) * 1099511628211ULL;
  return fmt::format("{:016x}", hash);
}

// What supervised processes inherit: the daemon's environment without its MICRO_* settings and
// without NOTIFY_SOCKET (the service manager's socket is the daemon's, not its services').
runtime::Env InheritedEnv() {
  runtime::Env env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string entry(*e);
    const size_t eq = entry.find('=');
    if (eq == std::string::npos || entry.rfind("MICRO_", 0) == 0 ||
        entry.rfind("NOTIFY_SOCKET=", 0) == 0) {
      continue;
    }
    env[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  return env;
}

// Tells systemd (Type=notify, packaging/deb/micro.service) what the daemon is doing, when it
// was started by one.
void TellServiceManager(const char* state) {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  if (Status s = NotifyServiceManager(socket != nullptr ? socket : "", state); !s.ok()) {
    spdlog::warn("{}", std::string(s.message()));
  }
}

}  // namespace

Daemon::Daemon(const DaemonConfig& config)
    : config_(config),
      signals_(io_, SIGINT, SIGTERM),
      reload_signal_(io_, SIGHUP),
      expiry_timer_(io_),
      sweep_timer_(io_) {}

Daemon::~Daemon() {
  // The server calls into the services: it goes first, whatever state Open left it in.
  if (server_) {
    server_->Shutdown(std::chrono::system_clock::now());
    server_.reset();
  }
}

Result<std::unique_ptr<Daemon>> Daemon::Start(const DaemonConfig& config,
                                              Clock::TimePoint launched) {
  std::unique_ptr<Daemon> daemon(new Daemon(config));
  if (Status s = daemon->Open(launched); !s.ok()) return s;
  return daemon;
}

Status Daemon::Open(Clock::TimePoint launched) {
  contexts_.streams().set_max(config_.max_streams);
  contexts_.stream_bytes().set_max(config_.max_stream_bytes);
  // First, before RocksDB, gRPC and the supervised instances take descriptors.
  const runtime::FdBudget fd_budget = runtime::RaiseOpenFileLimit();
  spdlog::info("open-file limit {}: {} kept for the daemon, room for {} supervised instances",
               fd_budget.limit, fd_budget.reserved, fd_budget.instances);
  if (Status s = OpenStorage(); !s.ok()) return s;
  if (Status s = MakeServices(); !s.ok()) return s;
  if (Status s = PrepareTls(); !s.ok()) return s;
  MakeRuntime(fd_budget);
  if (Status s = Serve(); !s.ok()) return s;
  if (Status s = StartGateway(); !s.ok()) return s;
  return Announce(launched);
}

// The data dir (locked), an interrupted restore finished or rolled back, and the one RocksDB.
Status Daemon::OpenStorage() {
  auto data_dir = DataDir::Open(config_.data_dir);
  if (!data_dir.ok()) return data_dir.status();
  data_dir_ = std::move(*data_dir);

  const std::string db_path = data_dir_->path() + "/db";
  auto recovered = storage::RocksDb::RecoverRestore(db_path);
  if (!recovered.ok()) return recovered.status();
  if (!recovered->empty()) spdlog::warn("store: {}", *recovered);
  storage::RocksDb::Options db_options{
      db_path,
      {store::RocksDbStore::kRecordsFamily, store::RocksDbStore::kExpiryFamily,
       config::RocksDbDocuments::kFamily, runtime::RocksDbDesiredState::kFamily,
       events::RocksDbEvents::kFamily, auth::RocksDbAuth::kFamily}};
  db_options.created_marker = data_dir_->path() + "/db.created";
  auto rocks_db = storage::RocksDb::Open(db_options);
  if (!rocks_db.ok()) return rocks_db.status();
  rocks_db_ = std::move(*rocks_db);
  return absl::OkStatus();
}

// The registry, store, config and broker backends the configuration names, and their gRPC services.
Status Daemon::MakeServices() {
  auto registry = registry::MakeRegistry(config_.registry, clock_, &contexts_.stream_bytes());
  if (!registry.ok()) return registry.status();
  registry_ = std::move(*registry);
  registry_service_ = std::make_unique<registry::RegistryService>(*registry_, contexts_, clock_);
  auto store = store::MakeStore(config_.store, *rocks_db_, clock_);
  if (!store.ok()) return store.status();
  store_ = std::move(*store);
  store_service_ = std::make_unique<store::StoreService>(*store_, contexts_);
  auto settings =
      config::MakeConfig(config_.config, *rocks_db_, data_dir_->path(), &contexts_.stream_bytes());
  if (!settings.ok()) return settings.status();
  settings_ = std::move(*settings);
  config_service_ = std::make_unique<config::ConfigService>(*settings_, contexts_);
  auto broker = broker::MakeBroker(config_.broker, &contexts_.stream_bytes());
  if (!broker.ok()) return broker.status();
  broker_ = std::move(*broker);
  broker_service_ = std::make_unique<broker::BrokerService>(*broker_, contexts_);
  auto events = events::MakeEvents(config_.events, *rocks_db_, clock_, &contexts_.stream_bytes());
  if (!events.ok()) return events.status();
  events_ = std::move(*events);
  events_service_ = std::make_unique<events::EventsService>(*events_, contexts_);
  auth::RocksDbAuth::Options auth_options;
  auth_options.keys_dir = data_dir_->path() + "/auth";
  auto auth = auth::RocksDbAuth::Open(*rocks_db_, clock_, auth_options);
  if (!auth.ok()) return auth.status();
  auth_ = std::move(*auth);
  const std::string secret_path = data_dir_->path() + "/admin.secret";
  auto admin = auth_->Bootstrap(
      [&](const std::string& secret) { return auth::WriteSecretFile(secret_path, secret + "\n"); });
  if (!admin.ok()) return admin.status();
  if (admin->has_value()) {
    // Once, on the first start. The secret goes to a terminal only, never into a log that a
    // service manager or a redirect keeps: the file is where to find it.
    spdlog::warn(
        "auth: created the account 'admin' (namespace micro); its secret is in {} "
        "(mode 0600). Log in with: micro login --admin",
        secret_path);
    if (::isatty(STDERR_FILENO) == 1) {
      std::fprintf(stderr, "\n  admin secret (shown once): %s\n\n", (*admin)->c_str());
    }
  }
  auth_guard_ = std::make_unique<auth::AuthGuard>(*auth_);
  auth_services_ = std::make_unique<auth::AuthServices>(*auth_, contexts_);
  if (!config_.auth_enabled) {
    spdlog::warn(
        "auth: DISABLED (auth.enabled false): every caller can do everything, in every "
        "namespace; use this only for development and benchmarks");
  }
  info_service_ = std::make_unique<ServerInfoService>(contexts_);
  info_service_->set_alarms([store = store_.get()] {
    std::vector<std::string> alarms;
    if (std::string alarm = store->Alarm(); !alarm.empty()) alarms.push_back("store: " + alarm);
    return alarms;
  });
  return absl::OkStatus();
}

// The certificate the server presents: the operator's, or the automatic one (docs/security.md).
Status Daemon::PrepareTls() {
  if (!config_.tls.enabled()) return absl::OkStatus();
  auto identity = config_.tls.automatic
                      ? AutomaticTls(data_dir_->path() + "/tls",
                                     CertificateHosts(config_.address, config_.tls.hosts))
                      : LoadTlsFiles(config_.tls.cert_file, config_.tls.key_file);
  if (!identity.ok()) return identity.status();
  tls_ = std::move(*identity);
  return absl::OkStatus();
}

// The drivers (the container one only if its engine answers), the supervisor and its service.
void Daemon::MakeRuntime(const runtime::FdBudget& fd_budget) {
  const std::string supervisor_id = SupervisorId(data_dir_->path());
  // Instances' output is spooled under <data dir>/runtime, where a next daemon finds it.
  process_driver_ = std::make_unique<runtime::ProcessDriver>(io_, supervisor_id, true,
                                                             data_dir_->path() + "/runtime");
  auto containers = std::make_unique<runtime::ContainerDriver>(
      io_, config_.docker_socket, supervisor_id,
      std::chrono::seconds(config_.docker_timeout_seconds));
  if (Status s = containers->Ping(); s.ok()) {
    container_driver_ = std::move(containers);
  } else {
    containers_error_ = std::string(s.message());
  }
  desired_state_ = std::make_unique<runtime::RocksDbDesiredState>(*rocks_db_);
  runtime::SupervisorOptions runtime_options;
  runtime_options.fd_budget = fd_budget;
  runtime_options.open_log_files =
      std::make_shared<runtime::OpenFileBudget>(fd_budget.open_log_files);
  runtime_options.logs_dir = data_dir_->path() + "/logs";
  runtime_options.base_env = InheritedEnv();
  // Each instance logs in as its service's account with these (docs/auth.md), and verifies
  // the daemon against the automatic CA.
  const std::string ca_file = tls_ ? tls_->ca_file : "";
  if (config_.auth_enabled || !ca_file.empty()) {
    runtime_options.credentials = [auth = config_.auth_enabled ? auth_.get() : nullptr, ca_file](
                                      const std::string& ns, const std::string& name) {
      runtime::Env env;
      if (auth != nullptr) {
        env["MICRO_AUTH_ID"] = auth::RocksDbAuth::ServiceAccountId(name);
        env["MICRO_AUTH_SECRET"] = auth->ServiceSecret(ns, name);
      }
      if (!ca_file.empty()) env["MICRO_TLS_CA"] = ca_file;
      return env;
    };
  }
  // env_secrets: a string gives its text, a number or true/false its JSON form.
  runtime_options.resolve_secret = [settings = settings_.get()](
                                       const std::string& ns,
                                       const std::string& path) -> Result<std::string> {
    auto text = settings->Get(ns, path, /*reveal_secrets=*/true);
    if (!text.ok()) return text.status();
    auto value = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (value.is_string()) return value.get<std::string>();
    if (value.is_number() || value.is_boolean()) return value.dump();
    return absl::InvalidArgumentError("it holds an object, an array or null; name one value");
  };
  runtime_options.seed = static_cast<uint64_t>(clock_.UnixMillis());
  supervisor_ = std::make_unique<runtime::Supervisor>(io_, clock_, timers_, *desired_state_,
                                                      *process_driver_, container_driver_.get(),
                                                      containers_error_, runtime_options);
  if (config_.auth_enabled) service_accounts_ = std::make_unique<ServiceAccountsOfAuth>(*auth_);
  runtime_service_ =
      std::make_unique<runtime::RuntimeService>(*supervisor_, contexts_, service_accounts_.get());
}

// Before the deployed services start again: each has its account, also when it was deployed
// while auth was off or the service key has changed since (a data dir restored from elsewhere).
void Daemon::EnsureServiceAccounts() {
  auto deployed = desired_state_->LoadAll();
  if (!deployed.ok()) return;  // Restore reports it
  std::set<std::pair<std::string, std::string>> done;
  for (const runtime::DeployedService& service : *deployed) {
    if (!done.emplace(service.spec.ns, service.spec.name).second) continue;
    if (Status s = service_accounts_->Ensure(service.spec.ns, service.spec.name); !s.ok()) {
      spdlog::error("auth: service {}/{} has no account and cannot log in: {}", service.spec.ns,
                    service.spec.name, std::string(s.message()));
    }
  }
}

// One gRPC server on one port for every service, with health, reflection and the interceptor
// that resolves each call's context.
Status Daemon::Serve() {
  grpc::EnableDefaultHealthCheckService(true);
  // Without this call the linker drops the reflection library (--as-needed) and clients get
  // UNIMPLEMENTED.
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // gRPC sets SO_REUSEPORT by default, which would let a second daemon share our port silently.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  int port = 0;
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (tls_) {
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({tls_->private_key_pem, tls_->cert_chain_pem});
    credentials = grpc::SslServerCredentials(ssl);
  }
  builder.AddListeningPort(config_.address, credentials, &port);
  builder.RegisterService(registry_service_.get());
  builder.RegisterService(store_service_.get());
  builder.RegisterService(config_service_.get());
  builder.RegisterService(info_service_.get());
  builder.RegisterService(runtime_service_.get());
  builder.RegisterService(broker_service_.get());
  builder.RegisterService(events_service_.get());
  builder.RegisterService(auth_services_->auth());
  builder.RegisterService(auth_services_->accounts());
  builder.RegisterService(auth_services_->rules());
  proxy_ = std::make_unique<Proxy>(*registry_, contexts_);
  builder.RegisterCallbackGenericService(proxy_.get());
  const char* const kServiceNames[] = {"micro.registry.v1.Registry", "micro.store.v1.Store",
                                       "micro.config.v1.Config",     "micro.server.v1.Server",
                                       "micro.runtime.v1.Runtime",   "micro.broker.v1.Broker",
                                       "micro.events.v1.Events"};
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<CallContextInterceptorFactory>(
      contexts_, clock_, config_.auth_enabled ? auth_guard_.get() : nullptr, &metrics_));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  server_ = builder.BuildAndStart();
  if (!server_ || port == 0) {
    server_.reset();
    return absl::UnavailableError(fmt::format(
        "cannot listen on {}: the port is in use or the address is not on this machine; "
        "choose another with --address (port 0 picks a free one)",
        config_.address));
  }
  grpc_address_ = fmt::format("{}:{}", HostOf(config_.address), port);
  for (const char* name : kServiceNames) {
    server_->GetHealthCheckService()->SetServingStatus(name, true);
  }
  return absl::OkStatus();
}

// The HTTP gateway and /metrics on the daemon's loop.
Status Daemon::StartGateway() {
  if (!config_.gateway.enabled()) return absl::OkStatus();
  AddMetricCollectors();
  auto& requests = metrics_.AddCounter("micro_http_requests_total",
                                       "HTTP requests to the gateway, by route and HTTP status",
                                       {"route", "status"});
  auto& durations =
      metrics_.AddHistogram("micro_http_request_duration_seconds",
                            "from a whole HTTP request read to its response, by route", {"route"});
  Gateway::Deps deps{
      *registry_,
      *proxy_,
      contexts_,
      config_.auth_enabled ? auth_guard_.get() : nullptr,
      [this] { return metrics_.Render(); },
      [&requests, &durations](const char* route, int status, std::chrono::nanoseconds took) {
        requests.Add({route, std::to_string(status)});
        durations.Observe({route}, std::chrono::duration<double>(took).count());
      }};
  auto gateway = Gateway::Start(io_, config_.gateway, std::move(deps));
  if (!gateway.ok()) return gateway.status();
  gateway_ = std::move(*gateway);
  return absl::OkStatus();
}

// The figures computed at each scrape (docs/metrics.md). Render runs on the io_context
// thread (the gateway's), where the supervisor's summary may be read.
void Daemon::AddMetricCollectors() {
  using Type = MetricsWriter::Type;
  metrics_.AddCollector([this](MetricsWriter& out) {
    out.Family("micro_build_info", "the daemon's version", Type::kGauge);
    out.Sample({{"version", Version()}}, 1);
    out.Family("micro_rpc_in_flight", "gRPC calls in flight (long-lived streams excepted)",
               Type::kGauge);
    out.Sample({}, static_cast<double>(contexts_.InFlight()));

    const runtime::RuntimeSummary runtime = supervisor_->Summary();
    std::map<std::string, int> services_by_status;
    for (const auto& service : runtime.services) {
      ++services_by_status[runtime::PhaseName(service.status)];
    }
    out.Family("micro_runtime_services", "deployed services, by status", Type::kGauge);
    for (const auto& [status, n] : services_by_status) out.Sample({{"status", status}}, n);
    out.Family("micro_runtime_instances", "instances of deployed services, by status",
               Type::kGauge);
    for (const auto& [phase, n] : runtime.instances) {
      out.Sample({{"status", runtime::PhaseName(phase)}}, n);
    }
    out.Family("micro_runtime_service_instances_running", "a service's instances running now",
               Type::kGauge);
    for (const auto& s : runtime.services) {
      out.Sample({{"namespace", s.ns}, {"service", s.name}, {"version", s.version}}, s.running);
    }
    out.Family("micro_runtime_service_instances_desired", "the instances a service's spec asks for",
               Type::kGauge);
    for (const auto& s : runtime.services) {
      out.Sample({{"namespace", s.ns}, {"service", s.name}, {"version", s.version}}, s.desired);
    }
    out.Family("micro_runtime_service_restarts_total",
               "restarts of a service's instances since the daemon started them", Type::kCounter);
    for (const auto& s : runtime.services) {
      out.Sample({{"namespace", s.ns}, {"service", s.name}, {"version", s.version}}, s.restarts);
    }

    const store::StoreStats store = store_->Stats();
    out.Family("micro_store_records", "records in the store (RocksDB: an estimate)", Type::kGauge);
    out.Sample({}, static_cast<double>(store.records));
    out.Family("micro_store_bytes", "bytes of the records, as the quotas count them", Type::kGauge);
    out.Sample({}, static_cast<double>(store.bytes));
    out.Family("micro_store_disk_bytes", "SST files of the store", Type::kGauge);
    out.Sample({}, static_cast<double>(store.disk_bytes));

    const broker::BrokerStats broker = broker_->Stats();
    out.Family("micro_broker_subscriptions", "broker subscriptions open", Type::kGauge);
    out.Sample({}, static_cast<double>(broker.subscriptions));
    out.Family("micro_broker_published_total", "messages published", Type::kCounter);
    out.Sample({}, static_cast<double>(broker.published));
    out.Family("micro_broker_delivered_total", "message copies queued for a subscriber",
               Type::kCounter);
    out.Sample({}, static_cast<double>(broker.delivered));
    out.Family("micro_broker_dropped_total",
               "message copies lost to a full subscriber buffer (slow consumers)", Type::kCounter);
    out.Sample({}, static_cast<double>(broker.dropped));

    const events::EventsStats events = events_->Stats();
    out.Family("micro_events_published_total", "events appended", Type::kCounter);
    out.Sample({}, static_cast<double>(events.published));
    out.Family("micro_events_consumer_groups", "consumer groups with a consumer connected",
               Type::kGauge);
    out.Sample({}, static_cast<double>(events.groups));
    out.Family("micro_events_consumers", "event consumers connected", Type::kGauge);
    out.Sample({}, static_cast<double>(events.consumers));
    out.Family("micro_events_disk_bytes", "SST files of the events", Type::kGauge);
    out.Sample({}, static_cast<double>(events.disk_bytes));
  });
}

// server.json for clients and scripts, the deployed services back, and the start-up log lines.
Status Daemon::Announce(Clock::TimePoint launched) {
  const int64_t started = clock_.UnixMillis();
  info_service_->set_info(
      {Version(), static_cast<int>(::getpid()), started, grpc_address_, data_dir_->path()});
  nlohmann::json info = {{"pid", ::getpid()},
                         {"grpc_address", grpc_address_},
                         {"http_address", http_address()},
                         {"tls", tls_.has_value()},
                         {"tls_ca_file", tls_ ? tls_->ca_file : ""},
                         {"version", Version()},
                         {"data_dir", data_dir_->path()},
                         {"started_unix_ms", started}};
  if (Status s = data_dir_->WriteFile("server.json", info.dump(2) + "\n"); !s.ok()) return s;

  supervisor_->set_daemon_address(grpc_address_);
  if (service_accounts_) EnsureServiceAccounts();
  spdlog::info("runtime: processes isolated by {}; containers: {}", process_driver_->isolation(),
               container_driver_ ? "Docker engine at " + config_.docker_socket
                                 : "unavailable (" + containers_error_ + ")");
  supervisor_->Restore([](Status status) {
    if (!status.ok())
      spdlog::error("runtime: cannot restore the deployed services: {}",
                    std::string(status.message()));
  });

  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - launched);
  spdlog::info("micro server {} serving gRPC on {}{} (data dir {}) after {} ms", Version(),
               grpc_address_, gateway_ ? ", HTTP on " + gateway_->address() : "", data_dir_->path(),
               elapsed.count());
  if (tls_) {
    spdlog::info("TLS: {}", tls_->ca_file.empty()
                                ? "with the certificate " + config_.tls.cert_file
                                : "automatic; clients verify against " + tls_->ca_file);
  } else if (!IsLoopbackAddress(config_.address)) {
    spdlog::warn(
        "--insecure: serving on {} without TLS; tokens and secrets cross the network in clear",
        grpc_address_);
  }
  TellServiceManager("READY=1");
  return absl::OkStatus();
}

int Daemon::Run() {
  signals_.async_wait([this](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    spdlog::info("received {}, shutting down (grace period {} s)", ::strsignal(signal),
                 config_.shutdown_grace_seconds);
    expiry_timer_.cancel();
    sweep_timer_.cancel();
    io_.stop();
  });
  ScheduleExpiry(kMaxExpiryDelay);
  ScheduleSweep();
  WaitForReload();
  io_.run();
  Shutdown();
  return 0;
}

// `micro auth rotate-keys` puts a new signing key in the data dir and sends SIGHUP.
void Daemon::WaitForReload() {
  reload_signal_.async_wait([this](const boost::system::error_code& ec, int) {
    if (ec) return;
    auto id = auth_->ReloadSigningKeys();
    if (id.ok()) {
      spdlog::info("auth: signing keys reloaded (SIGHUP); new tokens are signed with key {}", *id);
    } else {
      spdlog::error("auth: cannot reload the signing keys, the ones in use stay: {}",
                    std::string(id.status().message()));
    }
    WaitForReload();
  });
}

void Daemon::ScheduleExpiry(std::chrono::nanoseconds after) {
  expiry_timer_.expires_after(std::min<std::chrono::nanoseconds>(after, kMaxExpiryDelay));
  expiry_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    std::optional<std::chrono::nanoseconds> next = registry_->ExpireNodes();
    ScheduleExpiry(next.value_or(kMaxExpiryDelay));
  });
}

void Daemon::ScheduleSweep() {
  sweep_timer_.expires_after(kStoreSweepInterval);
  sweep_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    // The sweep walks a RocksDB iterator (a bounded number of entries per pass): on a thread of
    // its own, never on the loop, and one pass at a time.
    if (!sweeping_.exchange(true)) {
      store_sweeper_.Submit([this] {
        store_->ExpireRecords();  // queues the deletes; the store's committer writes them
        sweeping_ = false;
      });
    }
    ScheduleSweep();
  });
}

void Daemon::Shutdown() {
  // Drain first, then stop: gRPC's own graceful shutdown also waits on idle client connections
  // (seconds, whatever the calls), so the daemon counts its in-flight calls itself and stops the
  // server once they are done or the grace period is over. A second signal stops at once.
  TellServiceManager("STOPPING=1");
  server_->GetHealthCheckService()->Shutdown();
  contexts_.StartDraining();
  registry_->CloseWatchers();
  settings_->CloseWatchers();
  broker_->CloseSubscriptions();
  events_->CloseConsumers();
  bool forced = false;
  io_.restart();
  signals_.async_wait([&forced](const boost::system::error_code& ec, int) {
    if (!ec) forced = true;
  });
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(config_.shutdown_grace_seconds);
  const auto in_flight = [this] {
    return contexts_.InFlight() + (gateway_ ? gateway_->InFlight() : 0);
  };
  while (!forced && in_flight() > 0 && std::chrono::steady_clock::now() < deadline) {
    io_.run_for(std::chrono::milliseconds(5));
  }
  if (gateway_) gateway_->Stop();
  if (size_t left = in_flight(); left > 0) {
    spdlog::warn("{} calls still in flight {}; cancelling them", left,
                 forced ? "at the second signal" : "after the grace period");
  }
  // Supervised services stop with the daemon (stop signal, their grace period, SIGKILL) and
  // start again with the next one. A second signal cuts their grace period short: SIGKILL.
  // After the second signal the wait has a hard end: what still hangs then (an engine that
  // does not answer, say) is left to the next daemon's clean-up of leftovers.
  bool runtime_stopped = false;
  bool killed = false;
  auto hard_deadline = std::chrono::steady_clock::time_point::max();
  auto past_hard_deadline = [&] {
    if (forced && !killed) {
      spdlog::warn("runtime: SIGKILL to every supervised process at the second signal");
      supervisor_->KillAll();
      killed = true;
      hard_deadline = std::chrono::steady_clock::now() + kHardStopAfterSecondSignal;
    }
    return std::chrono::steady_clock::now() >= hard_deadline;
  };
  if (config_.keep_services && !forced) {
    spdlog::info("runtime: leaving the services running for the next daemon (keep_services)");
    supervisor_->LeaveRunning([&runtime_stopped] { runtime_stopped = true; });
  } else {
    supervisor_->StopAll([&runtime_stopped] { runtime_stopped = true; });
  }
  while (!runtime_stopped && !past_hard_deadline()) io_.run_for(std::chrono::milliseconds(5));
  if (!runtime_stopped) {
    spdlog::error(
        "runtime: supervised services still stopping {} s after the second signal; "
        "exiting without them (the next daemon removes what is left)",
        kHardStopAfterSecondSignal.count());
    std::_Exit(1);
  }
  signals_.cancel();
  reload_signal_.cancel();
  // The gRPC server waits for every call to finish, and runtime calls finish from the event
  // loop: keep it running while the server stops.
  std::atomic<bool> server_down{false};
  std::thread stopper([this, &server_down] {
    server_->Shutdown(std::chrono::system_clock::now());
    server_->Wait();
    server_down = true;
  });
  while (!server_down) {
    if (past_hard_deadline()) {
      spdlog::error("calls still in flight {} s after the second signal; exiting",
                    kHardStopAfterSecondSignal.count());
      std::_Exit(1);
    }
    if (io_.run_for(std::chrono::milliseconds(5)) == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  stopper.join();
  server_.reset();
  spdlog::info("micro server stopped");
}

namespace {

// SIGINT or SIGTERM received before the daemon's own handling is in place.
volatile sig_atomic_t g_early_signal = 0;
extern "C" void RecordEarlySignal(int signal) { g_early_signal = signal; }

}  // namespace

int RunServerCommand(const std::vector<std::string>& args,
                     const std::map<std::string, std::string>& env) {
  const Clock::TimePoint launched = std::chrono::steady_clock::now();
  ::signal(SIGINT, RecordEarlySignal);
  ::signal(SIGTERM, RecordEarlySignal);
  const CommandSpec spec{
      "micro server [flags]",
      "Runs the micro daemon in the foreground: the platform's core services on one gRPC port.\n"
      "SIGINT or SIGTERM stops it gracefully; a second signal stops it at once.\n"
      "Configuration: defaults < micro.yaml (--config) < MICRO_* environment < flags.",
      DaemonFlags(), 0};
  auto parsed = ParseCommandLine(spec, args);
  if (const int* exit_code = std::get_if<int>(&parsed)) return *exit_code;
  const ParsedArgs& flags = std::get<ParsedArgs>(parsed);
  auto config = LoadDaemonConfig(flags, env);
  if (!config.ok()) {
    std::cerr << "error: " << config.status().message() << "\n";
    return 2;
  }
  SetUpLogging(config->log_level, config->log_format);
  RouteGrpcLogsToSpdlog();
  // Debian's abseil runs its mutex deadlock detector in every build, a few percent of CPU on
  // every lock gRPC takes. Lock order in our own code is documented and tested instead.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  ::signal(SIGPIPE, SIG_IGN);
  auto daemon = Daemon::Start(*config, launched);
  if (!daemon.ok()) {
    // Straight to stderr, so the reason shows whatever the log level or format.
    std::cerr << "error: " << daemon.status().message() << "\n";
    return 1;
  }
  // A signal that came while the daemon was starting is handled now, gracefully.
  if (const int early = g_early_signal; early != 0) ::raise(early);
  const int code = (*daemon)->Run();
  // Destroying the daemon gives SIGINT and SIGTERM their default action back: a late signal
  // must not turn a clean exit into death by signal.
  daemon->reset();
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGTERM, SIG_IGN);
  return code;
}

}  // namespace micro::server
