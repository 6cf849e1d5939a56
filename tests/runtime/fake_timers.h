#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include "core/fake_clock.h"
#include "runtime/timers.h"

namespace micro::runtime {

// Timers that fire when a test advances a FakeClock, at their exact deadlines. Advance runs on
// the thread that runs the engine's io_context (the test's own, polling it), so `fire` runs on
// the io thread as the Timer contract says.
class FakeTimers final : public Timers {
 public:
  explicit FakeTimers(FakeClock& clock) : clock_(clock) {}  // `clock` must outlive the timers

  // Destroys the waits that never fired, as an io_context destroys its pending handlers: a wait
  // may hold the last reference to the object that owns its timer, a cycle only this breaks.
  ~FakeTimers() override {
    std::vector<std::function<void()>> unfired;
    {
      std::lock_guard lock(mu_);
      for (const auto& wait : waits_) {
        if (wait->fire) unfired.push_back(std::move(wait->fire));
        wait->fire = nullptr;
      }
    }
    // Outside the lock: what they hold may cancel its own timer here.
  }

  std::unique_ptr<Timer> NewTimer() override { return std::make_unique<FakeTimer>(*this); }

  // Moves the clock forward by `d`. Every wait due by then fires in deadline order (ties in the
  // order they were started), with the clock reading its deadline; `settle` runs before time
  // moves and after each firing (a test polls its io_context there), so waits that a firing
  // starts fire within the same Advance when they fall due.
  void Advance(
      std::chrono::nanoseconds d, const std::function<void()>& settle = [] {}) {
    const Clock::TimePoint target = clock_.Now() + d;
    settle();
    for (;;) {
      std::shared_ptr<Wait> next = NextDue(target);
      if (!next) break;
      if (next->deadline > clock_.Now()) clock_.Advance(next->deadline - clock_.Now());
      std::function<void()> fire = std::move(next->fire);
      next->fire = nullptr;
      fire();
      settle();
    }
    if (target > clock_.Now()) clock_.Advance(target - clock_.Now());
    settle();
  }

  // Waits started and neither fired nor cancelled.
  size_t pending() {
    std::lock_guard lock(mu_);
    size_t n = 0;
    for (const auto& wait : waits_) n += wait->fire != nullptr;
    return n;
  }

 private:
  struct Wait {
    Clock::TimePoint deadline;
    uint64_t sequence = 0;
    std::function<void()> fire;  // null once fired or cancelled
  };

  class FakeTimer final : public Timer {
   public:
    explicit FakeTimer(FakeTimers& timers) : timers_(timers) {}
    ~FakeTimer() override { Cancel(); }
    void Start(std::chrono::nanoseconds delay, std::function<void()> fire) override {
      Cancel();
      wait_ = timers_.Add(delay, std::move(fire));
    }
    void Cancel() override {
      if (wait_) timers_.Drop(*wait_);
      wait_ = nullptr;
    }

   private:
    FakeTimers& timers_;
    std::shared_ptr<Wait> wait_;
  };

  std::shared_ptr<Wait> Add(std::chrono::nanoseconds delay, std::function<void()> fire) {
    std::lock_guard lock(mu_);
    auto wait =
        std::make_shared<Wait>(Wait{clock_.Now() + delay, next_sequence_++, std::move(fire)});
    waits_.push_back(wait);
    return wait;
  }

  void Drop(Wait& wait) {
    std::lock_guard lock(mu_);
    wait.fire = nullptr;
  }

  std::shared_ptr<Wait> NextDue(Clock::TimePoint target) {
    std::lock_guard lock(mu_);
    std::shared_ptr<Wait> best;
    std::vector<std::shared_ptr<Wait>> live;
    for (const auto& wait : waits_) {
      if (!wait->fire) continue;
      live.push_back(wait);
      if (wait->deadline > target) continue;
      if (!best ||
          std::tie(wait->deadline, wait->sequence) < std::tie(best->deadline, best->sequence))
        best = wait;
    }
    waits_.swap(live);
    return best;
  }

  FakeClock& clock_;
  std::mutex mu_;
  std::vector<std::shared_ptr<Wait>> waits_;
  uint64_t next_sequence_ = 0;
};

}  // namespace micro::runtime
