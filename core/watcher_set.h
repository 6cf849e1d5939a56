#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "core/watch_queue.h"

namespace micro {

// The budgets of one service's watchers.
struct WatcherBudget {
  size_t max_watchers = 1024;   // open subscriptions, all namespaces together
  size_t max_items = 1024;      // undelivered items before a slow watcher is closed
  size_t max_bytes = 8 << 20;   // ... or undelivered bytes (as the publisher counts them)
  std::string what = "events";  // the items, for the overflow message
  // The daemon-wide account of queued stream bytes (may be null: none); outlives the set.
  StreamBytes* shared_bytes = nullptr;
};

// The subscribers of one service's changes (registry, config): each has a `Filter` (what it
// watches) and its own WatchQueue under `budget`. Publish offers an item to every subscriber
// whose filter matches, in the order Publish is called. Thread-safe; must outlive the
// watchers it hands out.
template <typename Filter, typename T>
class WatcherSet {
 public:
  explicit WatcherSet(WatcherBudget budget) : budget_(std::move(budget)) {}
  WatcherSet(const WatcherSet&) = delete;
  WatcherSet& operator=(const WatcherSet&) = delete;

  // A new subscriber as the service's watcher interface `Base` (see QueueWatcher); destroying
  // it unsubscribes. `notify` runs under this set's lock whenever the watcher may have news.
  // Errors: RESOURCE_EXHAUSTED (max_watchers open), UNAVAILABLE (after CloseAll).
  template <typename Base>
  [[nodiscard]] Result<std::unique_ptr<Base>> Subscribe(Filter filter,
                                                        std::function<void()> notify) {
    auto subscriber = std::make_shared<Subscriber>(Subscriber{
        std::move(filter),
        std::make_shared<WatchQueue<T>>(budget_.max_items, budget_.max_bytes, budget_.what,
                                        std::move(notify), budget_.shared_bytes)});
    std::lock_guard lock(mu_);
    if (!closed_.ok()) return closed_;
    if (subscribers_.size() >= budget_.max_watchers) {
      return absl::ResourceExhaustedError(
          fmt::format("{} watchers are open, the limit; close one first", subscribers_.size()));
    }
    subscribers_.push_back(subscriber);
    return std::unique_ptr<Base>(std::make_unique<QueueWatcher<Base, T>>(
        subscriber->queue, [this, key = subscriber.get()] { Unsubscribe(key); }));
  }

  // Offers `item` (counted as `bytes`) to every subscriber for which `matches(filter)`.
  template <typename Matches>
  void Publish(const Matches& matches, const T& item, size_t bytes) {
    std::lock_guard lock(mu_);
    for (const auto& s : subscribers_) {
      if (matches(s->filter)) s->queue->Push(item, bytes);
    }
  }

  // Closes every subscriber with `why` (shutdown); later Subscribe calls fail with `why`.
  void CloseAll(const Status& why) {
    std::lock_guard lock(mu_);
    closed_ = why;
    for (const auto& s : subscribers_) s->queue->Close(why);
  }

  size_t size() const {
    std::lock_guard lock(mu_);
    return subscribers_.size();
  }

 private:
  struct Subscriber {
    Filter filter;
    std::shared_ptr<WatchQueue<T>> queue;
  };

  void Unsubscribe(const Subscriber* key) {
    std::lock_guard lock(mu_);
    auto it = std::find_if(subscribers_.begin(), subscribers_.end(),
                           [key](const auto& s) { return s.get() == key; });
    if (it != subscribers_.end()) subscribers_.erase(it);
  }

  const WatcherBudget budget_;
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<Subscriber>> subscribers_;
  Status closed_;
};

}  // namespace micro
