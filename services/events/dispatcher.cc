#include "services/events/dispatcher.h"

#include <fmt/format.h>
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <unordered_set>

namespace micro::events {
namespace {

constexpr auto kIdleWake = std::chrono::seconds(1);
// Events handed out per pass of the dispatcher, so one busy group cannot starve the others'
// acknowledgements of the lock for long.
constexpr size_t kDeliveriesPerPass = 1024;
constexpr size_t kRememberedPositions = 100000;

std::string TopicKey(const std::string& ns, const std::string& topic) {
  std::string key = ns;
  key.push_back('\0');
  key += topic;
  return key;
}

size_t EventBytes(const Event& event) {
  size_t bytes = 64 + event.id.size() + event.topic.size() + event.payload.size();
  for (const auto& [k, v] : event.metadata) bytes += k.size() + v.size() + 8;
  return bytes;
}

}  // namespace

struct Dispatcher::Core {
  uint64_t serial = 0;
  std::shared_ptr<Group> group;
  Subscription sub;  // defaults resolved
  std::deque<Event> queue;
  bool blocked = false;  // the daemon's stream budget refused its last event: wait for a pop
  size_t queued_bytes = 0;
  uint32_t in_flight = 0;  // unacknowledged events held by this consumer (queued ones too)
  std::unordered_map<std::string, uint64_t> ids;  // delivered, not yet acknowledged
  Status status;
  bool left = false;
  std::mutex notify_mu;  // held while notify runs; the consumer's destructor takes it last
  std::function<void()> notify;
};

struct Dispatcher::Group {
  struct Pending {
    uint64_t owner = 0;  // the serial of the consumer holding it
    Clock::TimePoint deadline;
    uint32_t count = 0;  // deliveries so far, this one included
    std::string id;      // known once the event is read
  };

  std::string key, ns, topic, name;
  bool durable = false;
  Subscription start;  // the subscription that created the group in memory
  bool attached = false;
  bool attaching = false;
  Status error;
  uint64_t first = 1, last = 0;
  uint64_t floor = 1;   // every event below is done
  uint64_t next = 1;    // the next event never delivered to this group
  uint64_t stored = 0;  // the last position handed to the log
  std::map<uint64_t, Pending> pending;
  std::set<std::pair<Clock::TimePoint, uint64_t>> deadlines;
  std::map<uint64_t, uint32_t> redeliver;  // sequence -> deliveries so far
  std::set<uint64_t> done;                 // done above floor
  std::set<uint64_t> dead;                 // on their way to the dead-letter topic
  std::vector<std::shared_ptr<Core>> consumers;
  size_t turn = 0;
};

class Dispatcher::ConsumerHandle final : public Consumer {
 public:
  ConsumerHandle(Dispatcher& dispatcher, std::shared_ptr<Core> core)
      : dispatcher_(dispatcher), core_(std::move(core)) {}
  ~ConsumerHandle() override { dispatcher_.Leave(core_); }

  std::optional<Event> Next() override { return dispatcher_.Next(*core_); }
  void Ack(const std::string& id, bool success) override { dispatcher_.Ack(*core_, id, success); }
  Status status() override {
    std::lock_guard lock(dispatcher_.mu_);
    return core_->status;
  }
  bool attached() override {
    std::lock_guard lock(dispatcher_.mu_);
    return core_->group && core_->group->attached;
  }

 private:
  Dispatcher& dispatcher_;
  std::shared_ptr<Core> core_;
};

Dispatcher::Dispatcher(EventLog& log, const Clock& clock, Limits limits, StreamBytes* stream_bytes)
    : log_(log), clock_(clock), limits_(limits), stream_bytes_(stream_bytes), thread_([this] {
        pthread_setname_np(pthread_self(), "events-deliver");
        Loop();
      }) {}

Dispatcher::~Dispatcher() { Stop(); }

void Dispatcher::Stop() {
  CloseAll();
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

std::unique_ptr<Consumer> Dispatcher::Join(const std::string& ns, const Subscription& subscription,
                                           std::function<void()> notify) {
  auto core = std::make_shared<Core>();
  core->sub = subscription;
  if (core->sub.ack_wait_ms == 0) core->sub.ack_wait_ms = limits_.default_ack_wait_ms;
  if (core->sub.max_in_flight == 0) core->sub.max_in_flight = limits_.default_in_flight;
  core->sub.dead_letter_topic = DeadLetterTopic(subscription);
  core->notify = std::move(notify);
  {
    std::lock_guard lock(mu_);
    core->serial = next_serial_++;
    std::string key = TopicKey(ns, subscription.topic);
    key.push_back('\0');
    // A consumer without a group gets one of its own; '\x01' is in no valid group name.
    key += subscription.group.empty() ? fmt::format("\x01{}", core->serial) : subscription.group;
    std::shared_ptr<Group>& group = groups_[key];
    if (!group) {
      group = std::make_shared<Group>();
      group->key = key;
      group->ns = ns;
      group->topic = subscription.topic;
      group->name = subscription.group;
      group->durable = !subscription.group.empty();
      group->start = subscription;
    }
    if (!group->error.ok()) core->status = group->error;
    if (closed_) core->status = absl::UnavailableError("the events service is stopping");
    group->consumers.push_back(core);
    core->group = group;
    work_ = true;
  }
  cv_.notify_one();
  return std::make_unique<ConsumerHandle>(*this, core);
}

void Dispatcher::Appended(const std::string& ns, const std::string& topic, uint64_t last) {
  {
    std::lock_guard lock(mu_);
    const std::string key = TopicKey(ns, topic);
    const std::string prefix = key + std::string(1, '\0');
    auto it = groups_.lower_bound(prefix);
    if (it == groups_.end() || it->first.compare(0, prefix.size(), prefix) != 0) return;
    // Only topics with a group in memory are remembered (an attaching group reads it), so a
    // flood of topics costs the dispatcher nothing.
    uint64_t& known = topic_last_[key];
    known = std::max(known, last);
    for (; it != groups_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
      it->second->last = std::max(it->second->last, last);
    }
    work_ = true;
  }
  cv_.notify_one();
}

void Dispatcher::Trimmed(const std::string& ns, const std::string& topic, uint64_t first) {
  {
    std::lock_guard lock(mu_);
    const std::string prefix = TopicKey(ns, topic) + std::string(1, '\0');
    for (auto it = groups_.lower_bound(prefix);
         it != groups_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
      Group& group = *it->second;
      group.first = std::max(group.first, first);
      if (!group.attached || group.floor >= first) continue;
      while (!group.pending.empty() && group.pending.begin()->first < first) {
        Release(group, group.pending.begin()->first);
      }
      group.redeliver.erase(group.redeliver.begin(), group.redeliver.lower_bound(first));
      group.done.erase(group.done.begin(), group.done.lower_bound(first));
      group.floor = first;
      group.next = std::max(group.next, first);
      Advance(group);
    }
    work_ = true;
  }
  cv_.notify_one();
}

void Dispatcher::CloseAll() {
  std::vector<std::shared_ptr<Core>> cores;
  {
    std::lock_guard lock(mu_);
    closed_ = true;  // and every consumer that joins later
    for (auto& [key, group] : groups_) {
      for (auto& core : group->consumers) {
        if (core->status.ok())
          core->status = absl::UnavailableError("the events service is stopping");
        cores.push_back(core);
      }
    }
  }
  Notify(std::move(cores));
}

size_t Dispatcher::groups() const {
  std::lock_guard lock(mu_);
  return groups_.size();
}

size_t Dispatcher::consumers() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [key, group] : groups_) n += group->consumers.size();
  return n;
}

void Dispatcher::Loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    work_ = false;
    std::vector<std::shared_ptr<Group>> to_attach;
    for (auto& [key, group] : groups_) {
      if (!group->attached && !group->attaching && group->error.ok()) to_attach.push_back(group);
    }
    for (auto& group : to_attach) Attach(group, lock);
    std::vector<Delivery> deliveries;
    Clock::TimePoint wake = clock_.Now() + kIdleWake;
    for (auto& [key, group] : groups_) {
      if (!group->attached) continue;
      if (deliveries.size() < kDeliveriesPerPass) Plan(*group, group, &deliveries);
      StorePosition(*group);
      if (!group->deadlines.empty()) wake = std::min(wake, group->deadlines.begin()->first);
    }
    if (!deliveries.empty()) {
      Deliver(std::move(deliveries), lock);
      if (backoff_) {
        backoff_ = false;
        cv_.wait_for(lock, std::chrono::milliseconds(100), [&] { return stopping_; });
      }
      continue;  // there may be room for more
    }
    if (work_) continue;
    // The fake clock of tests does not move by itself: they wake the loop with every change.
    const auto timeout =
        std::max<Clock::TimePoint::duration>(wake - clock_.Now(), std::chrono::milliseconds(1));
    cv_.wait_for(lock, std::min<Clock::TimePoint::duration>(timeout, kIdleWake),
                 [&] { return work_ || stopping_; });
  }
  for (auto& [key, group] : groups_) StorePosition(*group);
}

// Loads or creates the group's position. Runs with the lock released around the reads.
void Dispatcher::Attach(const std::shared_ptr<Group>& group, std::unique_lock<std::mutex>& lock) {
  group->attaching = true;
  const std::string ns = group->ns, topic = group->topic, name = group->name;
  const Subscription start = group->start;
  const bool durable = group->durable;
  lock.unlock();
  Status error;
  EventLog::Bounds bounds;
  std::optional<uint64_t> position;
  bool from_now = false;
  [&] {
    auto got_bounds = log_.TopicBounds(ns, topic);
    if (!got_bounds.ok()) return void(error = got_bounds.status());
    bounds = *got_bounds;
    if (durable) {
      auto stored = log_.LoadPosition(ns, topic, name);
      if (!stored.ok()) return void(error = stored.status());
      position = *stored;
    }
    if (position) return;
    if (start.start_sequence != 0) {
      position = start.start_sequence;
    } else if (start.start_unix_ms != 0) {
      // Timestamps never go back within a topic: a binary search over the stored range.
      uint64_t lo = bounds.first, hi = bounds.last + 1;
      while (lo < hi) {
        const uint64_t mid = lo + (hi - lo) / 2;
        auto event = log_.ReadOne(ns, topic, mid);
        if (!event.ok()) return void(error = event.status());
        if (!*event || (*event)->timestamp_unix_ms < start.start_unix_ms) {
          lo = mid + 1;
        } else {
          hi = mid;
        }
      }
      position = lo;
    } else {
      from_now = true;
    }
  }();
  lock.lock();
  group->attaching = false;
  if (!error.ok()) {
    spdlog::warn("events: group '{}' of topic '{}' cannot start: {}", name, topic,
                 std::string(error.message()));
    group->error = error;
    std::vector<std::shared_ptr<Core>> cores = group->consumers;
    for (auto& core : cores) core->status = error;
    lock.unlock();
    Notify(std::move(cores));
    lock.lock();
    return;
  }
  if (auto it = topic_last_.find(TopicKey(ns, topic)); it != topic_last_.end()) {
    bounds.last = std::max(bounds.last, it->second);
  }
  if (auto it = positions_.find(group->key); durable && it != positions_.end()) {
    position = std::max(position.value_or(0), it->second);
    from_now = false;
  }
  group->first = bounds.first;
  group->last = std::max(group->last, bounds.last);
  uint64_t floor = from_now ? group->last + 1 : *position;
  floor = std::max(floor, group->first);
  group->floor = floor;
  group->next = floor;
  group->stored = 0;  // a new group's position is stored by the next pass; a stored one again
  group->attached = true;
  work_ = true;
  // Its consumers can tell their clients they are in the group now.
  std::vector<std::shared_ptr<Core>> cores = group->consumers;
  lock.unlock();
  Notify(std::move(cores));
  lock.lock();
}

bool Dispatcher::HasRoom(const Core& core) const {
  return !core.left && !core.blocked && core.status.ok() &&
         core.in_flight < core.sub.max_in_flight &&
         (core.queue.empty() || core.queued_bytes < limits_.consumer_queue_bytes);
}

// Expires what waited past ack_wait and hands out what the group's consumers have room for.
void Dispatcher::Plan(Group& group, const std::shared_ptr<Group>& self,
                      std::vector<Delivery>* out) {
  const Clock::TimePoint now = clock_.Now();
  while (!group.deadlines.empty() && group.deadlines.begin()->first <= now) {
    const uint64_t sequence = group.deadlines.begin()->second;
    const uint32_t count = group.pending.at(sequence).count;
    Release(group, sequence);
    group.redeliver[sequence] = count;
  }
  if (group.consumers.empty()) return;
  while (out->size() < kDeliveriesPerPass) {
    std::shared_ptr<Core> to;
    for (size_t i = 0; i < group.consumers.size() && !to; ++i) {
      const auto& candidate = group.consumers[(group.turn + i) % group.consumers.size()];
      if (HasRoom(*candidate)) {
        to = candidate;
        group.turn = (group.turn + i + 1) % group.consumers.size();
      }
    }
    if (!to) return;
    uint64_t sequence;
    uint32_t count = 0;
    if (!group.redeliver.empty()) {
      sequence = group.redeliver.begin()->first;
      count = group.redeliver.begin()->second;
      group.redeliver.erase(group.redeliver.begin());
    } else if (group.next <= group.last) {
      sequence = group.next++;
    } else {
      return;
    }
    if (to->sub.retry_limit > 0 && count >= 1 + static_cast<uint32_t>(to->sub.retry_limit)) {
      group.dead.insert(sequence);
      out->push_back({to, self, sequence, count, true});
      continue;
    }
    Group::Pending& pending = group.pending[sequence];
    pending.owner = to->serial;
    pending.deadline = now + std::chrono::milliseconds(to->sub.ack_wait_ms);
    pending.count = count + 1;
    group.deadlines.emplace(pending.deadline, sequence);
    ++to->in_flight;
    out->push_back({to, self, sequence, count + 1, false});
  }
}

// Reads the planned events (lock released) and queues them to their consumers.
void Dispatcher::Deliver(std::vector<Delivery> deliveries, std::unique_lock<std::mutex>& lock) {
  std::vector<Result<std::optional<Event>>> events;
  events.reserve(deliveries.size());
  lock.unlock();
  for (const Delivery& d : deliveries) {
    events.push_back(log_.ReadOne(d.group->ns, d.group->topic, d.sequence));
  }
  lock.lock();
  std::vector<std::shared_ptr<Core>> to_notify;
  std::vector<std::pair<size_t, Event>> dead;
  for (size_t i = 0; i < deliveries.size(); ++i) {
    const Delivery& d = deliveries[i];
    Group& group = *d.group;
    auto& event = events[i];
    if (!event.ok()) {
      spdlog::warn("events: cannot read event {} of '{}': {}", d.sequence, group.topic,
                   std::string(event.status().message()));
      if (d.dead) group.dead.erase(d.sequence);
      if (group.pending.count(d.sequence) != 0) Release(group, d.sequence);
      group.redeliver[d.sequence] = d.dead ? d.count : d.count - 1;
      backoff_ = true;  // the disk fails: do not spin on it
      continue;
    }
    if (!event->has_value()) {  // trimmed by retention: nothing left to deliver
      if (d.dead) group.dead.erase(d.sequence);
      if (group.pending.count(d.sequence) != 0) Release(group, d.sequence);
      Done(group, d.sequence);
      continue;
    }
    Event& ev = **event;
    ev.topic = group.topic;
    if (d.dead) {
      dead.emplace_back(i, std::move(ev));
      continue;
    }
    auto pending = group.pending.find(d.sequence);
    if (pending == group.pending.end() || pending->second.owner != d.to->serial) continue;
    Core& core = *d.to;
    if (core.left || !core.status.ok()) continue;  // expires and goes to another consumer
    const size_t bytes = EventBytes(ev);
    if (stream_bytes_ != nullptr) {
      if (core.queue.empty()) {
        stream_bytes_->Charge(bytes);
      } else if (!stream_bytes_->TryCharge(bytes)) {
        // The daemon's stream budget is spent: hand it out again once this consumer reads.
        core.blocked = true;
        Release(group, d.sequence);
        group.redeliver[d.sequence] = d.count - 1;
        continue;
      }
    }
    pending->second.id = ev.id;
    ev.delivery_count = d.count;
    core.ids[ev.id] = d.sequence;
    core.queued_bytes += bytes;
    core.queue.push_back(std::move(ev));
    to_notify.push_back(d.to);
  }
  lock.unlock();
  Notify(std::move(to_notify));
  for (auto& [i, ev] : dead) DeadLetter(deliveries[i], std::move(ev));
  lock.lock();
}

// Appends the event to the consumer's dead-letter topic; once that is durable the event is done
// in its group (and delivered again if the append failed).
void Dispatcher::DeadLetter(const Delivery& delivery, Event event) {
  Metadata metadata = std::move(event.metadata);
  metadata["dead-letter-topic"] = delivery.group->topic;
  metadata["dead-letter-sequence"] = std::to_string(delivery.sequence);
  metadata["dead-letter-group"] = delivery.group->name;
  metadata["dead-letter-id"] = event.id;
  metadata["dead-letter-deliveries"] = std::to_string(delivery.count);
  std::shared_ptr<Group> group = delivery.group;
  const uint64_t sequence = delivery.sequence;
  const uint32_t count = delivery.count;
  log_.Append(group->ns, delivery.to->sub.dead_letter_topic, std::move(event.payload),
              std::move(metadata), [this, group, sequence, count](Result<Published> result) {
                {
                  std::lock_guard lock(mu_);
                  group->dead.erase(sequence);
                  if (result.ok()) {
                    Done(*group, sequence);
                    // A group whose last consumer left meanwhile is no longer stored by the
                    // loop: store its position here.
                    if (group->consumers.empty()) StorePosition(*group);
                  } else {
                    spdlog::warn(
                        "events: cannot move event {} of '{}' to its dead-letter topic: {}",
                        sequence, group->topic, std::string(result.status().message()));
                    group->redeliver[sequence] = count;
                  }
                  work_ = true;
                }
                cv_.notify_one();
              });
}

// Hands the group's position to the log if it moved, and remembers it: a consumer that joins
// the group again before the log has committed it resumes from here, not from the disk.
void Dispatcher::StorePosition(Group& group) {
  if (!group.durable || !group.attached || group.floor <= group.stored) return;
  group.stored = group.floor;
  // Only the last moments matter (a position not committed yet): a flood of group names must
  // not grow this without bound.
  if (positions_.size() > kRememberedPositions) positions_.clear();
  uint64_t& known = positions_[group.key];
  known = std::max(known, group.floor);
  log_.StorePosition(group.ns, group.topic, group.name, group.floor);
}

void Dispatcher::Done(Group& group, uint64_t sequence) {
  if (sequence < group.floor) return;
  group.done.insert(sequence);
  Advance(group);
}

void Dispatcher::Advance(Group& group) {
  while (!group.done.empty() && *group.done.begin() <= group.floor) {
    if (*group.done.begin() == group.floor) ++group.floor;
    group.done.erase(group.done.begin());
  }
}

// Drops a pending event from its holder's count.
void Dispatcher::Release(Group& group, uint64_t sequence) {
  auto it = group.pending.find(sequence);
  if (it == group.pending.end()) return;
  group.deadlines.erase({it->second.deadline, sequence});
  for (auto& core : group.consumers) {
    if (core->serial != it->second.owner) continue;
    --core->in_flight;
    if (!it->second.id.empty()) {
      auto id = core->ids.find(it->second.id);
      if (id != core->ids.end() && id->second == sequence) core->ids.erase(id);
    }
  }
  group.pending.erase(it);
}

void Dispatcher::Leave(const std::shared_ptr<Core>& core) {
  {
    std::lock_guard lock(mu_);
    core->left = true;
    if (stream_bytes_ != nullptr) stream_bytes_->Refund(core->queued_bytes);
    std::shared_ptr<Group> group = core->group;
    // A consumer that left can no longer acknowledge: what it held goes to the group's other
    // consumers at once. Events written to its stream count as delivered; the others do not.
    std::unordered_set<uint64_t> sent;
    for (const auto& [id, sequence] : core->ids) sent.insert(sequence);
    for (const Event& event : core->queue) sent.erase(event.sequence);
    core->ids.clear();
    std::vector<std::pair<uint64_t, uint32_t>> held;
    for (const auto& [sequence, pending] : group->pending) {
      if (pending.owner != core->serial) continue;
      held.emplace_back(sequence, sent.count(sequence) != 0 ? pending.count : pending.count - 1);
    }
    for (const auto& [sequence, count] : held) {
      Release(*group, sequence);
      group->redeliver[sequence] = count;
    }
    auto& consumers = group->consumers;
    consumers.erase(std::remove(consumers.begin(), consumers.end(), core), consumers.end());
    if (consumers.empty()) {
      // The group leaves memory; its stored position is where the next consumer resumes.
      StorePosition(*group);
      auto it = groups_.find(group->key);
      if (it != groups_.end() && it->second == group) groups_.erase(it);
      const std::string topic_key = TopicKey(group->ns, group->topic);
      const std::string prefix = topic_key + std::string(1, '\0');
      auto next = groups_.lower_bound(prefix);
      if (next == groups_.end() || next->first.compare(0, prefix.size(), prefix) != 0) {
        topic_last_.erase(topic_key);  // the topic's last group left
      }
    }
    core->queue.clear();
    core->group.reset();
    // Keep the group reachable for Done callbacks through other shared_ptrs only.
    (void)group;
    work_ = true;
  }
  cv_.notify_one();
  std::lock_guard lock(core->notify_mu);  // after this no notify of this consumer runs
  core->notify = nullptr;
}

std::optional<Event> Dispatcher::Next(Core& core) {
  std::optional<Event> event;
  {
    std::lock_guard lock(mu_);
    if (core.queue.empty() || !core.status.ok()) return std::nullopt;
    event = std::move(core.queue.front());
    core.queue.pop_front();
    const size_t bytes = EventBytes(*event);
    core.queued_bytes -= std::min(core.queued_bytes, bytes);
    core.blocked = false;
    if (stream_bytes_ != nullptr) stream_bytes_->Refund(bytes);
    if (core.sub.auto_ack && core.group) {
      Group& group = *core.group;
      auto pending = group.pending.find(event->sequence);
      if (pending != group.pending.end() && pending->second.owner == core.serial) {
        Release(group, event->sequence);
        Done(group, event->sequence);
      }
    }
    work_ = true;
  }
  cv_.notify_one();
  return event;
}

void Dispatcher::Ack(Core& core, const std::string& id, bool success) {
  {
    std::lock_guard lock(mu_);
    auto it = core.ids.find(id);
    if (it == core.ids.end() || !core.group) return;
    const uint64_t sequence = it->second;
    core.ids.erase(it);
    Group& group = *core.group;
    auto pending = group.pending.find(sequence);
    if (pending != group.pending.end()) {
      const uint32_t count = pending->second.count;
      Release(group, sequence);
      if (success) {
        Done(group, sequence);
      } else {
        group.redeliver[sequence] = count;
      }
    } else if (success && group.redeliver.erase(sequence) != 0) {
      Done(group, sequence);  // acknowledged just after its ack_wait: still done
    }
    work_ = true;
  }
  cv_.notify_one();
}

void Dispatcher::Notify(std::vector<std::shared_ptr<Core>> cores) {
  std::sort(cores.begin(), cores.end());
  cores.erase(std::unique(cores.begin(), cores.end()), cores.end());
  for (auto& core : cores) {
    std::lock_guard lock(core->notify_mu);
    if (core->notify) core->notify();
  }
}

}  // namespace micro::events
