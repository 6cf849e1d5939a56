#include "runtime/backoff.h"

#include <algorithm>
#include <cmath>

namespace micro::runtime {

std::chrono::milliseconds Backoff::NextDelay(std::chrono::milliseconds run_time) {
  if (run_time >= policy_.reset_after) failures_ = 0;
  const double initial = static_cast<double>(policy_.initial.count());
  const double max = static_cast<double>(std::max(policy_.max, policy_.initial).count());
  // Capped exponent: the product overflows nothing and stays at max once it gets there.
  const double delay =
      std::min(max, initial * std::pow(policy_.multiplier, std::min(failures_, 64)));
  ++failures_;
  const double jitter = std::uniform_real_distribution<double>(0, policy_.jitter)(rng_);
  return std::chrono::milliseconds(static_cast<int64_t>(delay * (1.0 - jitter)));
}

}  // namespace micro::runtime
