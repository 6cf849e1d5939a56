#pragma once

#include <boost/asio/io_context.hpp>

#include "runtime/timers.h"

namespace micro::runtime {

// Timers on an io_context's steady clock: real time, for the daemon.
class AsioTimers final : public Timers {
 public:
  explicit AsioTimers(boost::asio::io_context& io) : io_(io) {}  // `io` must outlive the timers

  std::unique_ptr<Timer> NewTimer() override;

 private:
  boost::asio::io_context& io_;
};

}  // namespace micro::runtime
