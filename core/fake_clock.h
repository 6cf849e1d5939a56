#pragma once

#include <atomic>

#include "core/clock.h"

namespace micro {

// A clock that moves only when told to. Thread-safe.
class FakeClock final : public Clock {
 public:
  TimePoint Now() const override { return TimePoint(std::chrono::nanoseconds(now_ns_.load())); }
  int64_t UnixMillis() const override { return kEpochMillis + now_ns_.load() / 1'000'000; }

  void Advance(std::chrono::nanoseconds d) { now_ns_ += d.count(); }

 private:
  static constexpr int64_t kEpochMillis = 1'700'000'000'000;
  std::atomic<int64_t> now_ns_{1'000'000'000};
};

}  // namespace micro
