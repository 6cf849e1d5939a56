#pragma once

#include <boost/asio/io_context.hpp>
#include <functional>
#include <string>

#include "core/status.h"
#include "runtime/driver.h"
#include "runtime/spec.h"
#include "runtime/timers.h"

namespace micro::runtime {

// Runs one health check probe at a time per call: gRPC health, HTTP GET, TCP connect, or a
// command. Everything is asynchronous on the io_context; `done` runs there, within the check's
// timeout, with OK or the reason the probe failed. The timeouts of socket and command probes
// are waited for with `timers` (the engine's clock); a gRPC probe's is the call's deadline.
class HealthProber {
 public:
  // `commands` runs command probes (the process driver). All must outlive the prober.
  HealthProber(boost::asio::io_context& io, Timers& timers, Driver& commands)
      : io_(io), timers_(timers), commands_(commands) {}

  // `address` is where grpc/http/tcp probes go when the check names none; `probe_id` is a
  // unique name for a command probe's process; `working_dir` and `env` are the instance's.
  void Probe(const HealthCheck& check, const std::string& address, const std::string& probe_id,
             const std::string& working_dir, const Env& env, std::function<void(Status)> done);

 private:
  void ProbeGrpc(const HealthCheck& check, const std::string& address,
                 std::function<void(Status)> done);
  void ProbeSocket(const HealthCheck& check, const std::string& address, bool http,
                   std::function<void(Status)> done);
  void ProbeCommand(const HealthCheck& check, const std::string& probe_id,
                    const std::string& working_dir, const Env& env,
                    std::function<void(Status)> done);

  boost::asio::io_context& io_;
  Timers& timers_;
  Driver& commands_;
};

}  // namespace micro::runtime
