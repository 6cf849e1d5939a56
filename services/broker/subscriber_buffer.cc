#include "services/broker/subscriber_buffer.h"

namespace micro::broker {

SubscriberBuffer::~SubscriberBuffer() {
  if (shared_ != nullptr) shared_->Refund(bytes_);
}

bool SubscriberBuffer::TryPush(const std::shared_ptr<const Message>& message, size_t bytes) {
  bool was_empty = false;
  {
    std::lock_guard lock(mu_);
    if (!status_.ok()) return true;  // closed: nothing more is delivered, and nothing counted
    was_empty = items_.empty();
    // An empty buffer takes one message whatever its size, so no message is too big for it.
    if (!was_empty && bytes_ + bytes > max_bytes_) return false;
    if (shared_ != nullptr) {
      if (was_empty) {
        shared_->Charge(bytes);
      } else if (!shared_->TryCharge(bytes)) {
        return false;
      }
    }
    items_.emplace_back(message, bytes);
    bytes_ += bytes;
  }
  if (was_empty) notify_();
  return true;
}

size_t SubscriberBuffer::PushMany(
    const std::vector<std::pair<std::shared_ptr<const Message>, size_t>>& items) {
  bool was_empty = false;
  size_t dropped = 0;
  {
    std::lock_guard lock(mu_);
    if (!status_.ok() || items.empty()) return 0;
    was_empty = items_.empty();
    for (const auto& [message, bytes] : items) {
      const bool empty = items_.empty();
      if (!empty && bytes_ + bytes > max_bytes_) {
        ++dropped;
        continue;
      }
      if (shared_ != nullptr) {
        if (empty) {
          shared_->Charge(bytes);
        } else if (!shared_->TryCharge(bytes)) {
          ++dropped;
          continue;
        }
      }
      items_.emplace_back(message, bytes);
      bytes_ += bytes;
    }
    dropped_ += dropped;
    was_empty = was_empty && !items_.empty();
  }
  if (was_empty) notify_();
  return dropped;
}

void SubscriberBuffer::CountDrop() {
  std::lock_guard lock(mu_);
  if (status_.ok()) ++dropped_;
}

bool SubscriberBuffer::Take(size_t max_messages, size_t max_bytes, Delivery* out) {
  out->messages.clear();
  out->dropped = 0;
  std::lock_guard lock(mu_);
  if (items_.empty() || max_messages == 0) return false;
  size_t taken_bytes = 0;
  while (!items_.empty() && out->messages.size() < max_messages) {
    const size_t bytes = items_.front().second;
    if (!out->messages.empty() && taken_bytes + bytes > max_bytes) break;
    out->messages.push_back(std::move(items_.front().first));
    items_.pop_front();
    taken_bytes += bytes;
  }
  bytes_ -= taken_bytes;
  if (shared_ != nullptr) shared_->Refund(taken_bytes);
  out->dropped = dropped_;
  dropped_ = 0;
  return true;
}

void SubscriberBuffer::Close(Status why) {
  {
    std::lock_guard lock(mu_);
    if (!status_.ok()) return;
    status_ = std::move(why);
  }
  notify_();
}

Status SubscriberBuffer::status() const {
  std::lock_guard lock(mu_);
  return status_;
}

size_t SubscriberBuffer::buffered_bytes() const {
  std::lock_guard lock(mu_);
  return bytes_;
}

}  // namespace micro::broker
