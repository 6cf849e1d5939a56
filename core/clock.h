#pragma once

#include <chrono>
#include <cstdint>

namespace micro {

// Time as seen by TTL and supervision logic. Behind an interface so tests advance time by hand.
class Clock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  virtual ~Clock() = default;

  // Monotonic time, for deadlines and durations. Thread-safe.
  virtual TimePoint Now() const = 0;

  // Wall-clock milliseconds since the Unix epoch, for timestamps shown to users. Thread-safe.
  virtual int64_t UnixMillis() const = 0;
};

// The real clocks of the machine.
class SystemClock final : public Clock {
 public:
  TimePoint Now() const override { return std::chrono::steady_clock::now(); }
  int64_t UnixMillis() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

}  // namespace micro
