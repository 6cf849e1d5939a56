#include "services/broker/memory_broker.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <vector>

#include "services/broker/subscriber_buffer.h"
#include "services/broker/validation.h"

namespace micro::broker {

// Where a queue group's round robin stands, shared by its members (all patterns).
struct MemoryBroker::GroupCursor {
  size_t members = 0;  // changed under the exclusive lock
  std::atomic<uint64_t> next{0};
};

// One subscription as the trie knows it.
struct MemoryBroker::Sub {
  Sub(std::string ns, std::vector<std::string> tokens, std::string queue, const Limits& limits,
      std::function<void()> notify)
      : ns(std::move(ns)),
        tokens(std::move(tokens)),
        queue(std::move(queue)),
        buffer(limits.subscriber_buffer_bytes, limits.stream_bytes, std::move(notify)) {}

  const std::string ns;
  const std::vector<std::string> tokens;  // the topic pattern, split at the dots
  const std::string queue;                // empty: a plain subscriber
  SubscriberBuffer buffer;
  GroupCursor* group = nullptr;  // the queue group's round robin (null: a plain subscriber)
};

namespace {

using Sub = MemoryBroker::Sub;

// The subscriptions whose pattern ends at one place of the trie.
struct Members {
  std::vector<Sub*> plain;
  std::map<std::string, std::vector<Sub*>> queues;

  bool empty() const { return plain.empty() && queues.empty(); }

  void Add(Sub* sub) {
    if (sub->queue.empty()) {
      plain.push_back(sub);
    } else {
      queues[sub->queue].push_back(sub);
    }
  }

  void Remove(Sub* sub) {
    const auto erase = [sub](std::vector<Sub*>& subs) {
      subs.erase(std::remove(subs.begin(), subs.end(), sub), subs.end());
    };
    if (sub->queue.empty()) {
      erase(plain);
      return;
    }
    auto it = queues.find(sub->queue);
    if (it == queues.end()) return;
    erase(it->second);
    if (it->second.empty()) queues.erase(it);
  }
};

std::string GroupKey(const std::string& ns, const std::string& queue) {
  std::string key = ns;
  key.append(1, '\0').append(queue);
  return key;
}

std::vector<std::string> SplitTopic(const std::string& topic) {
  std::vector<std::string> tokens;
  size_t start = 0;
  while (true) {
    const size_t dot = topic.find('.', start);
    tokens.push_back(topic.substr(start, dot == std::string::npos ? dot : dot - start));
    if (dot == std::string::npos) return tokens;
    start = dot + 1;
  }
}

}  // namespace

// One level of a namespace's subject trie: the children by token (`*` among them), the
// subscriptions whose pattern ends here, and those whose pattern ends here with `>` (which match
// one or more further tokens).
struct MemoryBroker::Node {
  std::unordered_map<std::string, std::unique_ptr<Node>> children;
  Members here;
  Members rest;

  bool empty() const { return children.empty() && here.empty() && rest.empty(); }
};

// The subscriptions one publish reaches: plain ones, and queue groups as (name, members) pairs,
// possibly several pairs per name when patterns at different places share a queue name.
struct MemoryBroker::Matched {
  std::vector<Sub*> plain;
  std::vector<std::pair<const std::string*, const std::vector<Sub*>*>> groups;

  void Clear() {
    plain.clear();
    groups.clear();
  }
  void Add(const Members& members) {
    plain.insert(plain.end(), members.plain.begin(), members.plain.end());
    for (const auto& [name, subs] : members.queues) groups.emplace_back(&name, &subs);
  }
};

namespace {

// The queue groups a publish reaches (matched.groups sorted by name): one copy each.
uint64_t Groups(const MemoryBroker::Matched& matched) {
  uint64_t n = 0;
  for (size_t i = 0; i < matched.groups.size(); ++i) {
    if (i == 0 || *matched.groups[i].first != *matched.groups[i - 1].first) ++n;
  }
  return n;
}

void Collect(const MemoryBroker::Node& node, const std::vector<std::string>& tokens, size_t i,
             MemoryBroker::Matched* out);

}  // namespace

class MemoryBroker::MemorySubscription final : public Subscription {
 public:
  MemorySubscription(MemoryBroker& broker, std::unique_ptr<Sub> sub)
      : broker_(broker), sub_(std::move(sub)) {}
  ~MemorySubscription() override { broker_.Unsubscribe(sub_.get()); }

  bool Take(size_t max_messages, size_t max_bytes, Delivery* out) override {
    return sub_->buffer.Take(max_messages, max_bytes, out);
  }
  Status status() const override { return sub_->buffer.status(); }
  size_t buffered_bytes() const override { return sub_->buffer.buffered_bytes(); }

 private:
  MemoryBroker& broker_;
  std::unique_ptr<Sub> sub_;
};

size_t MessageBytes(const Message& message) {
  size_t bytes = 64 + message.topic.size() + message.body.size();
  for (const auto& [key, value] : message.header) bytes += 32 + key.size() + value.size();
  return bytes;
}

MemoryBroker::MemoryBroker(const Limits& limits) : limits_(limits) {}

MemoryBroker::~MemoryBroker() = default;

Status MemoryBroker::Publish(const std::string& ns, Message message) {
  if (Status s = CheckPublish(message, limits_); !s.ok()) return s;
  // Reused by each publishing thread: a publish allocates only the shared message.
  thread_local std::vector<std::string> tokens;
  thread_local Matched matched;
  tokens = SplitTopic(message.topic);
  const size_t bytes = MessageBytes(message);
  auto shared = std::make_shared<const Message>(std::move(message));

  std::shared_lock lock(mu_);
  auto space = spaces_.find(ns);
  if (space == spaces_.end()) {
    Count(1, 0, 0);
    return absl::OkStatus();
  }
  matched.Clear();
  Collect(*space->second, tokens, 0, &matched);
  uint64_t dropped = 0;
  for (Sub* sub : matched.plain) dropped += sub->buffer.Push(shared, bytes) ? 0 : 1;
  SortGroups(matched);
  dropped += DeliverToGroups(matched, shared, bytes);
  Count(1, matched.plain.size() + Groups(matched), dropped);
  return absl::OkStatus();
}

void MemoryBroker::Count(uint64_t published, uint64_t copies, uint64_t dropped) {
  published_.fetch_add(published, std::memory_order_relaxed);
  if (copies > dropped) delivered_.fetch_add(copies - dropped, std::memory_order_relaxed);
  if (dropped > 0) dropped_.fetch_add(dropped, std::memory_order_relaxed);
}

BrokerStats MemoryBroker::Stats() const {
  BrokerStats stats;
  {
    std::shared_lock lock(mu_);
    stats.subscriptions = subs_.size();
  }
  stats.published = published_.load(std::memory_order_relaxed);
  stats.delivered = delivered_.load(std::memory_order_relaxed);
  stats.dropped = dropped_.load(std::memory_order_relaxed);
  return stats;
}

// Members of one queue group may sit at several places of the trie: sorted by name, each
// group's members are adjacent, so one delivery per name follows.
void MemoryBroker::SortGroups(Matched& matched) {
  std::sort(matched.groups.begin(), matched.groups.end(),
            [](const auto& a, const auto& b) { return *a.first < *b.first; });
}

uint64_t MemoryBroker::DeliverToGroups(const Matched& matched,
                                       const std::shared_ptr<const Message>& message,
                                       size_t bytes) {
  uint64_t dropped = 0;
  for (size_t first = 0; first < matched.groups.size();) {
    size_t last = first + 1;
    while (last < matched.groups.size() &&
           *matched.groups[last].first == *matched.groups[first].first) {
      ++last;
    }
    dropped += DeliverToGroup(matched, first, last, message, bytes);
    first = last;
  }
  return dropped;
}

Status MemoryBroker::PublishMany(const std::string& ns, std::vector<Message>& messages,
                                 size_t* published) {
  *published = 0;
  Status refused;
  size_t count = messages.size();
  for (size_t i = 0; i < messages.size(); ++i) {
    if (Status s = CheckPublish(messages[i], limits_); !s.ok()) {
      refused = s;
      count = i;
      break;
    }
  }
  thread_local std::vector<std::string> tokens;
  thread_local Matched matched;
  thread_local std::vector<std::pair<std::shared_ptr<const Message>, size_t>> run;
  uint64_t copies = 0, dropped = 0;
  {
    std::shared_lock lock(mu_);
    auto space = spaces_.find(ns);
    for (size_t i = 0; i < count && space != spaces_.end();) {
      size_t end = i + 1;
      while (end < count && messages[end].topic == messages[i].topic) ++end;
      tokens = SplitTopic(messages[i].topic);
      matched.Clear();
      Collect(*space->second, tokens, 0, &matched);
      if (!matched.plain.empty() || !matched.groups.empty()) {
        run.clear();
        for (size_t j = i; j < end; ++j) {
          const size_t bytes = MessageBytes(messages[j]);
          run.emplace_back(std::make_shared<const Message>(std::move(messages[j])), bytes);
        }
        for (Sub* sub : matched.plain) dropped += sub->buffer.PushMany(run);
        SortGroups(matched);
        for (const auto& [message, bytes] : run)
          dropped += DeliverToGroups(matched, message, bytes);
        copies += run.size() * (matched.plain.size() + Groups(matched));
        run.clear();  // the shared messages go with the buffers that hold them
      }
      i = end;
    }
  }
  Count(count, copies, dropped);
  *published = count;
  return refused;
}

// One member of the group formed by matched.groups[first, last) gets the message: the next in
// round robin, or after it the first with room; if none has room, the round-robin one counts
// the drop.
uint64_t MemoryBroker::DeliverToGroup(const Matched& matched, size_t first, size_t last,
                                      const std::shared_ptr<const Message>& message, size_t bytes) {
  size_t total = 0;
  for (size_t g = first; g < last; ++g) total += matched.groups[g].second->size();
  if (total == 0) return 0;
  const auto member = [&](size_t index) {
    for (size_t g = first;; ++g) {
      const std::vector<Sub*>& subs = *matched.groups[g].second;
      if (index < subs.size()) return subs[index];
      index -= subs.size();
    }
  };
  std::atomic<uint64_t>& next = member(0)->group->next;
  const size_t start = next.fetch_add(1, std::memory_order_relaxed) % total;
  for (size_t k = 0; k < total; ++k) {
    if (member((start + k) % total)->buffer.TryPush(message, bytes)) return 0;
  }
  member(start)->buffer.CountDrop();
  return 1;
}

Result<std::unique_ptr<Subscription>> MemoryBroker::Subscribe(const std::string& ns,
                                                              const std::string& topic,
                                                              const std::string& queue,
                                                              std::function<void()> notify) {
  if (Status s = CheckSubscribe(topic, queue, limits_); !s.ok()) return s;
  auto sub = std::make_unique<Sub>(ns, SplitTopic(topic), queue, limits_, std::move(notify));
  std::unique_lock lock(mu_);
  if (closed_) return absl::UnavailableError("the server is shutting down; retry shortly");
  if (subs_.size() >= limits_.max_subscriptions) {
    return absl::ResourceExhaustedError(
        fmt::format("{} subscriptions are open on this broker, the limit (max_subscriptions); "
                    "close one first",
                    subs_.size()));
  }
  std::unique_ptr<Node>& root = spaces_[ns];
  if (!root) root = std::make_unique<Node>();
  Node* node = root.get();
  const std::vector<std::string>& tokens = sub->tokens;
  const bool rest = tokens.back() == ">";
  for (size_t i = 0; i + (rest ? 1 : 0) < tokens.size(); ++i) {
    std::unique_ptr<Node>& child = node->children[tokens[i]];
    if (!child) child = std::make_unique<Node>();
    node = child.get();
  }
  (rest ? node->rest : node->here).Add(sub.get());
  subs_.insert(sub.get());
  if (!sub->queue.empty()) {
    std::unique_ptr<GroupCursor>& group = groups_[GroupKey(ns, sub->queue)];
    if (!group) group = std::make_unique<GroupCursor>();
    ++group->members;
    sub->group = group.get();
  }
  return std::unique_ptr<Subscription>(new MemorySubscription(*this, std::move(sub)));
}

namespace {

// Removes `sub` below `node` along its tokens from `i`, and the nodes it leaves empty. Returns
// whether `node` itself is empty now.
bool RemoveFrom(MemoryBroker::Node& node, Sub* sub, size_t i) {
  const std::vector<std::string>& tokens = sub->tokens;
  if (i + 1 == tokens.size() && tokens[i] == ">") {
    node.rest.Remove(sub);
  } else if (i == tokens.size()) {
    node.here.Remove(sub);
  } else if (auto it = node.children.find(tokens[i]); it != node.children.end()) {
    if (RemoveFrom(*it->second, sub, i + 1)) node.children.erase(it);
  }
  return node.empty();
}

void Collect(const MemoryBroker::Node& node, const std::vector<std::string>& tokens, size_t i,
             MemoryBroker::Matched* out) {
  if (i == tokens.size()) {
    out->Add(node.here);
    return;
  }
  out->Add(node.rest);
  if (auto it = node.children.find(tokens[i]); it != node.children.end()) {
    Collect(*it->second, tokens, i + 1, out);
  }
  if (auto it = node.children.find("*"); it != node.children.end()) {
    Collect(*it->second, tokens, i + 1, out);
  }
}

}  // namespace

void MemoryBroker::Unsubscribe(Sub* sub) {
  std::unique_lock lock(mu_);
  if (subs_.erase(sub) == 0) return;
  if (sub->group != nullptr && --sub->group->members == 0) {
    groups_.erase(GroupKey(sub->ns, sub->queue));
  }
  auto space = spaces_.find(sub->ns);
  if (space == spaces_.end()) return;
  if (RemoveFrom(*space->second, sub, 0)) spaces_.erase(space);
}

void MemoryBroker::CloseSubscriptions() {
  std::unique_lock lock(mu_);
  closed_ = true;
  for (Sub* sub : subs_) {
    sub->buffer.Close(absl::UnavailableError("the server is shutting down; subscribe again"));
  }
}

}  // namespace micro::broker
