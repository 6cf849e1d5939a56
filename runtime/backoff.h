#pragma once

#include <chrono>
#include <cstdint>
#include <random>

#include "runtime/spec.h"

namespace micro::runtime {

// The restart delays of one instance. Each failed run makes the next delay longer (times the
// multiplier, at most the max); a run of at least `reset_after` starts again from the initial
// delay. Jitter takes up to policy.jitter of each delay off at random, so instances that fail
// together do not restart in lockstep. Not thread-safe.
class Backoff {
 public:
  Backoff(const BackoffPolicy& policy, uint64_t seed) : policy_(policy), rng_(seed) {}

  // The delay before the next start, given how long the run that just ended lasted.
  std::chrono::milliseconds NextDelay(std::chrono::milliseconds run_time);

  // Forgets past failures: the next delay is the initial one. An explicit restart calls this.
  void Reset() { failures_ = 0; }

  // Failed runs since the last reset.
  int failures() const { return failures_; }

 private:
  BackoffPolicy policy_;
  std::mt19937_64 rng_;
  int failures_ = 0;
};

}  // namespace micro::runtime
