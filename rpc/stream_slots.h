#pragma once

#include <fmt/format.h>

#include <atomic>
#include <cstddef>

#include "core/status.h"

namespace micro {

// The number of server streams that stay open until their client goes (config and registry
// watches, followed logs), counted for the whole daemon so that many clients together cannot
// pin unbounded memory: each such stream may buffer up to its own byte budget. Thread-safe.
class StreamSlots {
 public:
  // The default cap; docs/architecture.md and docs/configuration.md (`max_streams`) list it.
  static constexpr size_t kDefaultMax = 1024;

  // Held by one open stream; destroying it frees the slot.
  class Slot {
   public:
    Slot() = default;
    explicit Slot(StreamSlots* owner) : owner_(owner) {}
    Slot(Slot&& other) noexcept : owner_(other.owner_) { other.owner_ = nullptr; }
    Slot& operator=(Slot&& other) noexcept {
      if (this != &other) {
        Release();
        owner_ = other.owner_;
        other.owner_ = nullptr;
      }
      return *this;
    }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() { Release(); }

   private:
    void Release() {
      if (owner_ != nullptr) owner_->open_.fetch_sub(1, std::memory_order_relaxed);
      owner_ = nullptr;
    }
    StreamSlots* owner_ = nullptr;
  };

  explicit StreamSlots(size_t max = kDefaultMax) : max_(max) {}
  StreamSlots(const StreamSlots&) = delete;
  StreamSlots& operator=(const StreamSlots&) = delete;

  // Changes the cap for streams opened from now on (start-up configuration).
  void set_max(size_t max) { max_.store(max, std::memory_order_relaxed); }
  size_t max() const { return max_.load(std::memory_order_relaxed); }
  size_t open() const { return open_.load(std::memory_order_relaxed); }

  // A slot for one more stream, or RESOURCE_EXHAUSTED naming the cap when it is reached.
  [[nodiscard]] Result<Slot> Acquire() {
    const size_t max = max_.load(std::memory_order_relaxed);
    size_t open = open_.load(std::memory_order_relaxed);
    do {
      if (open >= max) {
        return absl::ResourceExhaustedError(fmt::format(
            "{} watch and log streams are open on this server, the limit (max_streams); close "
            "one or raise max_streams",
            open));
      }
    } while (!open_.compare_exchange_weak(open, open + 1, std::memory_order_relaxed));
    return Slot(this);
  }

 private:
  std::atomic<size_t> max_;
  std::atomic<size_t> open_{0};
};

}  // namespace micro
