#pragma once

#include <grpcpp/server.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/serial_executor.h"
#include "rpc/call_context.h"
#include "runtime/asio_timers.h"
#include "runtime/driver.h"
#include "runtime/process_driver.h"
#include "runtime/supervisor.h"
#include "server/config.h"
#include "server/data_dir.h"
#include "server/gateway.h"
#include "server/proxy.h"
#include "server/server_info_service.h"
#include "server/tls.h"
#include "services/auth/auth_guard.h"
#include "services/auth/auth_service.h"
#include "services/auth/rocksdb_auth.h"
#include "services/broker/broker.h"
#include "services/broker/broker_service.h"
#include "services/config/config.h"
#include "services/config/config_service.h"
#include "services/events/events.h"
#include "services/events/events_service.h"
#include "services/registry/registry.h"
#include "services/registry/registry_service.h"
#include "services/runtime/runtime_service.h"
#include "services/store/store.h"
#include "services/store/store_service.h"
#include "storage/rocks_db.h"

namespace micro::server {

// The composition root of `micro server`: builds every service and backend, serves them on one
// gRPC port, and tears them down in reverse order. The only place that names concrete types.
class Daemon {
 public:
  // Opens the data dir, builds the backends and starts serving. `launched` is when the process
  // started, for the cold-start time in the log.
  // Errors: the data dir is locked or unwritable, the port is busy, a backend failed to open.
  [[nodiscard]] static Result<std::unique_ptr<Daemon>> Start(const DaemonConfig& config,
                                                             Clock::TimePoint launched);
  ~Daemon();

  // Serves until SIGINT or SIGTERM, then shuts down gracefully: health turns NOT_SERVING,
  // watch streams end, in-flight calls get the grace period, the data dir is released.
  // Returns the process exit code.
  int Run();

  // The bound gRPC address, HOST:PORT with the real port.
  const std::string& grpc_address() const { return grpc_address_; }
  // The bound HTTP gateway address; empty when the gateway is off.
  std::string http_address() const { return gateway_ ? gateway_->address() : ""; }

 private:
  explicit Daemon(const DaemonConfig& config);

  // Open's steps, in order.
  [[nodiscard]] Status Open(Clock::TimePoint launched);
  [[nodiscard]] Status OpenStorage();
  [[nodiscard]] Status MakeServices();
  [[nodiscard]] Status PrepareTls();
  void MakeRuntime(const runtime::FdBudget& fd_budget);
  void EnsureServiceAccounts();
  [[nodiscard]] Status Serve();
  [[nodiscard]] Status StartGateway();
  void AddMetricCollectors();
  [[nodiscard]] Status Announce(Clock::TimePoint launched);
  void ScheduleExpiry(std::chrono::nanoseconds after);
  void ScheduleSweep();
  void WaitForReload();
  void Shutdown();

  // Members in construction order; destruction runs in reverse, so the gRPC server is gone
  // before the services and backends it calls.
  DaemonConfig config_;
  SystemClock clock_;
  // Before the backends: their watch queues charge the stream byte account it owns.
  CallContexts contexts_;
  Metrics metrics_;  // what /metrics shows; the interceptor and the gateway record into it
  std::unique_ptr<DataDir> data_dir_;
  std::unique_ptr<storage::RocksDb> rocks_db_;
  std::unique_ptr<registry::Registry> registry_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<config::Config> settings_;
  std::unique_ptr<broker::Broker> broker_;
  std::unique_ptr<events::Events> events_;
  std::unique_ptr<auth::RocksDbAuth> auth_;
  std::unique_ptr<auth::AuthGuard> auth_guard_;
  std::unique_ptr<auth::AuthServices> auth_services_;
  std::unique_ptr<registry::RegistryService> registry_service_;
  std::unique_ptr<store::StoreService> store_service_;
  std::unique_ptr<config::ConfigService> config_service_;
  std::unique_ptr<broker::BrokerService> broker_service_;
  std::unique_ptr<events::EventsService> events_service_;
  std::unique_ptr<ServerInfoService> info_service_;
  std::unique_ptr<Proxy> proxy_;  // calls to user services through the daemon's port
  std::unique_ptr<grpc::Server> server_;
  std::string grpc_address_;
  std::optional<TlsIdentity> tls_;  // what the server presents, when it serves TLS

  boost::asio::io_context io_;
  runtime::AsioTimers timers_{io_};  // the supervisor's, on io_
  boost::asio::signal_set signals_;
  boost::asio::signal_set reload_signal_;  // SIGHUP: read the signing keys again
  boost::asio::steady_timer expiry_timer_;
  boost::asio::steady_timer sweep_timer_;
  std::atomic<bool> sweeping_{false};
  std::unique_ptr<Gateway> gateway_;             // on io_, so after it: stopped first
  SerialExecutor store_sweeper_{"store-sweep"};  // runs ExpireRecords off the loop

  // The runtime after the io_context it runs on: destroyed first.
  std::unique_ptr<runtime::ProcessDriver> process_driver_;
  std::unique_ptr<runtime::Driver> container_driver_;
  std::string containers_error_;  // why there is no container driver
  std::unique_ptr<runtime::DesiredState> desired_state_;
  std::unique_ptr<runtime::Supervisor> supervisor_;
  std::unique_ptr<runtime::ServiceAccounts> service_accounts_;
  std::unique_ptr<runtime::RuntimeService> runtime_service_;
};

// `micro server [flags]`: everything from flag parsing to exit code. `env` is the environment.
int RunServerCommand(const std::vector<std::string>& args,
                     const std::map<std::string, std::string>& env);

}  // namespace micro::server
