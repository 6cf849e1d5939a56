#include "runtime/asio_timers.h"

#include <boost/asio/steady_timer.hpp>
#include <cstdint>

namespace micro::runtime {
namespace {

namespace asio = boost::asio;

class AsioTimer final : public Timer {
 public:
  explicit AsioTimer(asio::io_context& io) : timer_(io) {}

  void Start(std::chrono::nanoseconds delay, std::function<void()> fire) override {
    // A handler that already expired is queued and cannot be cancelled any more: the generation
    // tells it that it is stale, and the shared pointer that the timer is gone.
    const uint64_t generation = ++*generation_;
    timer_.expires_after(delay);
    timer_.async_wait([weak = std::weak_ptr<uint64_t>(generation_), generation,
                       fire = std::move(fire)](const boost::system::error_code& ec) {
      const auto current = weak.lock();
      if (ec || !current || *current != generation) return;
      fire();
    });
  }

  void Cancel() override {
    ++*generation_;
    timer_.cancel();
  }

 private:
  asio::steady_timer timer_;
  std::shared_ptr<uint64_t> generation_ = std::make_shared<uint64_t>(0);
};

}  // namespace

std::unique_ptr<Timer> AsioTimers::NewTimer() { return std::make_unique<AsioTimer>(io_); }

}  // namespace micro::runtime
