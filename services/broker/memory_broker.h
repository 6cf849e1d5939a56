#pragma once

#include <atomic>
#include <memory>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "services/broker/broker.h"

namespace micro::broker {

// The broker in this process's memory. Each namespace has a subject trie (one level per topic
// token, with `*` and `>` subscriptions at their own places), so a publish walks only the
// branches its topic matches: its cost grows with the subscriptions that match, not with the
// unrelated ones. Publishes share the trie's lock; Subscribe and unsubscribe take it alone.
class MemoryBroker final : public Broker {
 public:
  explicit MemoryBroker(const Limits& limits = {});
  ~MemoryBroker() override;

  [[nodiscard]] Status Publish(const std::string& ns, Message message) override;
  // One lock and one topic match for each run of messages to the same topic, and one push per
  // subscriber for the run.
  [[nodiscard]] Status PublishMany(const std::string& ns, std::vector<Message>& messages,
                                   size_t* published) override;
  [[nodiscard]] Result<std::unique_ptr<Subscription>> Subscribe(
      const std::string& ns, const std::string& topic, const std::string& queue,
      std::function<void()> notify) override;
  void CloseSubscriptions() override;
  BrokerStats Stats() const override;

  // The trie's parts, defined in memory_broker.cc.
  struct Sub;
  struct Node;
  struct Matched;
  struct GroupCursor;

 private:
  class MemorySubscription;

  void Unsubscribe(Sub* sub);
  static void SortGroups(Matched& matched);
  // Both return the copies dropped.
  uint64_t DeliverToGroups(const Matched& matched, const std::shared_ptr<const Message>& message,
                           size_t bytes);
  uint64_t DeliverToGroup(const Matched& matched, size_t first, size_t last,
                          const std::shared_ptr<const Message>& message, size_t bytes);
  // Adds one publish call's figures to the totals (once per call, not per copy).
  void Count(uint64_t published, uint64_t copies, uint64_t dropped);

  const Limits limits_;
  std::atomic<uint64_t> published_{0};
  std::atomic<uint64_t> delivered_{0};
  std::atomic<uint64_t> dropped_{0};
  mutable std::shared_mutex mu_;                                   // guards the three below
  std::unordered_map<std::string, std::unique_ptr<Node>> spaces_;  // by namespace
  std::unordered_set<Sub*> subs_;
  // The round robin of each queue group, by namespace and queue name.
  std::unordered_map<std::string, std::unique_ptr<GroupCursor>> groups_;
  bool closed_ = false;
};

}  // namespace micro::broker
