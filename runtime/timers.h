#pragma once

#include <chrono>
#include <functional>
#include <memory>

namespace micro::runtime {

// One restartable timer of the engine. Not thread-safe: the engine calls it on its io_context
// thread only, and `fire` runs there.
class Timer {
 public:
  // Destroying a timer cancels its wait.
  virtual ~Timer() = default;

  // Runs `fire` once, `delay` from now by the engine's clock, unless the timer is cancelled or
  // started again first: after Cancel or a new Start, an earlier `fire` never runs.
  virtual void Start(std::chrono::nanoseconds delay, std::function<void()> fire) = 0;

  // Forgets the pending wait, if any.
  virtual void Cancel() = 0;
};

// Makes timers that follow the engine's clock: the daemon's run in real time on its io_context
// (AsioTimers), a test's fire when it advances a FakeClock (tests/runtime/fake_timers.h).
class Timers {
 public:
  virtual ~Timers() = default;

  // A new, idle timer. Thread-safe.
  virtual std::unique_ptr<Timer> NewTimer() = 0;
};

}  // namespace micro::runtime
