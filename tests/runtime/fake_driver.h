#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "runtime/driver.h"

namespace micro::runtime {

// A driver without processes: it records what the engine starts and signals, and the test says
// when an instance has started and how it ends. Thread-safe; the test calls Launch and End on
// the io thread (its own when it polls the io_context), as a real driver's callbacks run there.
class FakeDriver final : public Driver {
 public:
  struct Signalled {
    std::string id;
    int signal = 0;
    bool operator==(const Signalled& o) const { return id == o.id && signal == o.signal; }
  };

  explicit FakeDriver(boost::asio::io_context& io) : io_(io) {}

  void Start(const LaunchRequest& request, LaunchCallbacks callbacks) override {
    std::lock_guard lock(mu_);
    starts_.push_back({request, std::move(callbacks)});
  }
  void Signal(const std::string& instance_id, int signal) override {
    std::lock_guard lock(mu_);
    signals_.push_back({instance_id, signal});
  }
  void RemoveLeftovers(const std::set<std::string>&, std::function<void()> done) override {
    boost::asio::post(io_, std::move(done));
  }

  // How many starts of `id` the engine asked for so far.
  size_t Starts(const std::string& id) {
    std::lock_guard lock(mu_);
    size_t n = 0;
    for (const auto& s : starts_) n += s.first.instance_id == id;
    return n;
  }
  // The latest start of `id`; it must exist.
  LaunchRequest Request(const std::string& id) {
    std::lock_guard lock(mu_);
    return Latest(id).first;
  }
  // The latest start of `id` succeeded, with `pid`.
  void Launch(const std::string& id, int pid = 4242) {
    auto on_started = Callbacks(id).on_started;
    on_started(Launched{pid, ""});
  }
  // The latest start of `id` failed to start with `error`.
  void FailLaunch(const std::string& id, Status error) { Callbacks(id).on_started(error); }
  // The latest start of `id` ended: exit `code`, or killed by `signal`.
  void End(const std::string& id, int code, int signal = 0) {
    auto on_exit = Callbacks(id).on_exit;
    on_exit(Exit{signal ? -1 : code, signal, ""});
  }
  std::vector<Signalled> signals() {
    std::lock_guard lock(mu_);
    return signals_;
  }

 private:
  std::pair<LaunchRequest, LaunchCallbacks>& Latest(const std::string& id) {
    for (auto it = starts_.rbegin(); it != starts_.rend(); ++it) {
      if (it->first.instance_id == id) return *it;
    }
    throw std::logic_error("the engine never started " + id);
  }
  LaunchCallbacks Callbacks(const std::string& id) {
    std::lock_guard lock(mu_);
    return Latest(id).second;
  }

  boost::asio::io_context& io_;
  std::mutex mu_;
  std::vector<std::pair<LaunchRequest, LaunchCallbacks>> starts_;
  std::vector<Signalled> signals_;
};

}  // namespace micro::runtime
