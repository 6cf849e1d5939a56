#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "core/status.h"
#include "core/stream_bytes.h"
#include "services/broker/broker.h"

namespace micro::broker {

// The undelivered messages of one subscriber, bounded in bytes. Push never blocks and never
// waits for the reader: a message that does not fit is dropped for this subscriber and counted,
// and the count goes to the reader with its next Take. The bytes also count against the
// daemon-wide `shared` account (may be null): a push it refuses is a drop too, except that an
// empty buffer always takes one message, so a reader that keeps up never loses messages to the
// others' backlog. Bytes are refunded as messages are taken or the buffer is destroyed.
// `notify` runs outside the lock when the buffer goes from empty to non-empty, and on Close.
// Thread-safe.
class SubscriberBuffer {
 public:
  SubscriberBuffer(size_t max_bytes, StreamBytes* shared, std::function<void()> notify)
      : max_bytes_(max_bytes), shared_(shared), notify_(std::move(notify)) {}
  SubscriberBuffer(const SubscriberBuffer&) = delete;
  SubscriberBuffer& operator=(const SubscriberBuffer&) = delete;
  ~SubscriberBuffer();

  // Queues `message` (counted as `bytes`) if it fits; false, and nothing counted, if not.
  [[nodiscard]] bool TryPush(const std::shared_ptr<const Message>& message, size_t bytes);

  // Records one message lost for this subscriber.
  void CountDrop();

  // Queues `message`, or counts it dropped when it does not fit (then returns false).
  bool Push(const std::shared_ptr<const Message>& message, size_t bytes) {
    if (TryPush(message, bytes)) return true;
    CountDrop();
    return false;
  }

  // Queues each of `items` (message, bytes) as Push does, under one lock. Returns how many
  // were dropped.
  size_t PushMany(const std::vector<std::pair<std::shared_ptr<const Message>, size_t>>& items);

  // As Subscription::Take.
  bool Take(size_t max_messages, size_t max_bytes, Delivery* out);

  // Ends the subscription with `why` (once); buffered messages may still be taken.
  void Close(Status why);

  Status status() const;
  size_t buffered_bytes() const;

 private:
  const size_t max_bytes_;
  StreamBytes* const shared_;
  const std::function<void()> notify_;

  mutable std::mutex mu_;
  std::deque<std::pair<std::shared_ptr<const Message>, size_t>> items_;  // with their bytes
  size_t bytes_ = 0;
  uint64_t dropped_ = 0;  // since the last Take
  Status status_;
};

}  // namespace micro::broker
