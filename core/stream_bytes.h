#pragma once

#include <atomic>
#include <cstddef>

namespace micro {

// The bytes queued in every watch and log stream of the daemon together, against one budget
// (`max_stream_bytes`): each stream's own byte budget times the number of streams is far more
// than a daemon should hold, so a push that would take the total past the budget fails, and
// the queue that tried closes (the slow reader pays, not the writer or the other streams). A
// queue that holds nothing always takes one item: the total may go past the budget by at most
// one item per stream, and a reader that keeps up is never closed by the others' backlog.
// WatchQueue charges a push here and refunds it when the item is delivered, dropped or the queue
// is destroyed. Thread-safe; must outlive the queues that charge it.
class StreamBytes {
 public:
  // The default budget; docs/architecture.md and docs/configuration.md list it.
  static constexpr size_t kDefaultMax = size_t{256} << 20;

  explicit StreamBytes(size_t max = kDefaultMax) : max_(max) {}
  StreamBytes(const StreamBytes&) = delete;
  StreamBytes& operator=(const StreamBytes&) = delete;

  // Changes the budget (start-up configuration).
  void set_max(size_t max) { max_.store(max, std::memory_order_relaxed); }
  size_t max() const { return max_.load(std::memory_order_relaxed); }
  size_t used() const { return used_.load(std::memory_order_relaxed); }

  // Counts `bytes` more, unless that would take the total past the budget (then false).
  [[nodiscard]] bool TryCharge(size_t bytes) {
    const size_t max = max_.load(std::memory_order_relaxed);
    size_t used = used_.load(std::memory_order_relaxed);
    do {
      if (bytes > max || used > max - bytes) return false;
    } while (!used_.compare_exchange_weak(used, used + bytes, std::memory_order_relaxed));
    return true;
  }

  // Counts `bytes` more whatever the budget says (the one item of a stream that holds nothing
  // else: a reader that keeps up is never the one closed).
  void Charge(size_t bytes) { used_.fetch_add(bytes, std::memory_order_relaxed); }

  // Returns bytes TryCharge or Charge counted.
  void Refund(size_t bytes) { used_.fetch_sub(bytes, std::memory_order_relaxed); }

 private:
  std::atomic<size_t> max_;
  std::atomic<size_t> used_{0};
};

}  // namespace micro
