#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "core/status.h"
#include "core/stream_bytes.h"

namespace micro {

// The status a watcher closes with when its stream ends normally rather than by an error:
// WatchStream finishes such a stream with OK.
inline Status EndOfStream() { return absl::OutOfRangeError("end of stream"); }

// The undelivered events of one watcher. Push never blocks: a watcher that falls more than
// `max_items` events (or `max_bytes`, as the pusher counts them) behind is closed with
// RESOURCE_EXHAUSTED instead of pinning memory or holding up the writer. With a `shared`
// account, the queued bytes also count against the daemon-wide budget of all streams: a push
// that would take it past its max closes this queue (RESOURCE_EXHAUSTED naming
// max_stream_bytes) and no other (an empty queue always takes one item). Bytes are refunded as
// items are delivered, dropped on overflow, or the queue is destroyed. `notify` runs after every
// change, outside the queue's lock. Thread-safe.
template <typename T>
class WatchQueue {
 public:
  // `what` names the items in the overflow message ("events", "changes"). `shared` (may be
  // null: no daemon-wide budget) must outlive the queue.
  WatchQueue(size_t max_items, size_t max_bytes, std::string what, std::function<void()> notify,
             StreamBytes* shared = nullptr)
      : max_items_(max_items),
        max_bytes_(max_bytes),
        what_(std::move(what)),
        notify_(std::move(notify)),
        shared_(shared) {}
  WatchQueue(const WatchQueue&) = delete;
  WatchQueue& operator=(const WatchQueue&) = delete;
  ~WatchQueue() { DropLocked(); }

  void Push(const T& item, size_t bytes = 0) {
    {
      std::lock_guard lock(mu_);
      if (!status_.ok()) return;
      if (items_.size() >= max_items_ || bytes_ + bytes > max_bytes_) {
        DropLocked();
        status_ = absl::ResourceExhaustedError(
            max_bytes_ == SIZE_MAX
                ? fmt::format("this watcher fell more than {} {} behind and was closed; watch "
                              "again",
                              max_items_, what_)
                : fmt::format("this watcher fell more than {} {} or {} bytes behind and was "
                              "closed; watch again",
                              max_items_, what_, max_bytes_));
      } else if (shared_ != nullptr && !ChargedLocked(bytes)) {
        DropLocked();
        status_ = absl::ResourceExhaustedError(fmt::format(
            "the watch and log streams of this server would hold more than {} bytes not yet read "
            "by their clients, the limit (max_stream_bytes); this stream fell behind and was "
            "closed: read faster and watch again, or raise max_stream_bytes",
            shared_->max()));
      } else {
        items_.emplace_back(item, bytes);
        bytes_ += bytes;
      }
    }
    notify_();
  }

  // Ends the subscription with `why` (once; later calls are ignored).
  void Close(Status why) {
    {
      std::lock_guard lock(mu_);
      if (!status_.ok()) return;
      status_ = std::move(why);
    }
    notify_();
  }

  std::optional<T> Next() {
    std::lock_guard lock(mu_);
    if (items_.empty()) return std::nullopt;
    T item = std::move(items_.front().first);
    const size_t bytes = items_.front().second;
    bytes_ -= bytes;
    if (shared_ != nullptr) shared_->Refund(bytes);
    items_.pop_front();
    return item;
  }

  Status status() const {
    std::lock_guard lock(mu_);
    return status_;
  }

 private:
  // Counts a new item's bytes in the shared account. An empty queue's one item always fits: only
  // a stream that has fallen behind can be closed by the daemon-wide budget.
  bool ChargedLocked(size_t bytes) {
    if (!items_.empty()) return shared_->TryCharge(bytes);
    shared_->Charge(bytes);
    return true;
  }

  // Forgets every undelivered item and gives its bytes back.
  void DropLocked() {
    items_.clear();
    if (shared_ != nullptr) shared_->Refund(bytes_);
    bytes_ = 0;
  }

  const size_t max_items_;
  const size_t max_bytes_;
  const std::string what_;
  const std::function<void()> notify_;
  StreamBytes* const shared_;

  mutable std::mutex mu_;
  std::deque<std::pair<T, size_t>> items_;  // with the bytes counted for each
  size_t bytes_ = 0;
  Status status_;
};

// A service's watcher interface (`Base`: virtual Next() and status()) served from a shared
// WatchQueue. Destroying it runs `unsubscribe`, after which the queue's notify is never called.
template <typename Base, typename T>
class QueueWatcher final : public Base {
 public:
  QueueWatcher(std::shared_ptr<WatchQueue<T>> queue, std::function<void()> unsubscribe)
      : queue_(std::move(queue)), unsubscribe_(std::move(unsubscribe)) {}
  ~QueueWatcher() override { unsubscribe_(); }

  std::optional<T> Next() override { return queue_->Next(); }
  Status status() const override { return queue_->status(); }

 private:
  std::shared_ptr<WatchQueue<T>> queue_;
  std::function<void()> unsubscribe_;
};

}  // namespace micro
